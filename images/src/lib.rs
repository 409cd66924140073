//! Images of the platform's own services, built without Docker: a TOML recipe per image
//! (`images/recipes/`), the workspace's binaries with exactly the shared libraries they load,
//! a minimal base, written reproducibly as an OCI layout (pushable with skopeo) and imported
//! into pinkerton's store.

pub mod build;
pub mod debian;
pub mod elf;
pub mod layout;
pub mod recipe;

pub use build::{build, BuildError, Inputs};
pub use recipe::Recipe;

/// The recipes directory of this workspace.
pub fn recipes_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes")
}
