//! Images of the platform's own services, built without Docker: a TOML recipe per image
//! (`images/recipes/`), the workspace's binaries with exactly the shared libraries they load,
//! a minimal base, written reproducibly as an OCI layout (pushable with skopeo) and imported
//! into pinkerton's store.

pub mod build;
pub mod debian;
pub mod elf;
pub mod layout;
pub mod mirror;
pub mod prune;
pub mod recipe;

pub use build::{build, BuildError, Inputs};
pub use recipe::Recipe;

/// The recipes directory of this workspace.
pub fn recipes_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes")
}

/// An image layout could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The store could not be opened.
    #[error("opening the image store {0}")]
    Store(std::path::PathBuf, #[source] pinkerton::store::StoreError),
    /// The tag is not a reference.
    #[error("tag {0:?}: {1}")]
    Tag(String, String),
    /// The import failed.
    #[error("importing {0} into the store")]
    Import(
        std::path::PathBuf,
        #[source] Box<pinkerton::import::ImportError>,
    ),
}

/// Imports the OCI layout `layout` (as [`build`] writes it) into pinkerton's store at `store`
/// as `tag`, for this host's platform; returns the image records written.
pub fn import(
    layout: &std::path::Path,
    store: &std::path::Path,
    tag: &str,
) -> Result<Vec<pinkerton::store::ImageRecord>, ImportError> {
    let s = pinkerton::store::Store::open(store)
        .map_err(|e| ImportError::Store(store.to_path_buf(), e))?;
    let reference: pinkerton::reference::Reference =
        tag.parse()
            .map_err(|e: pinkerton::reference::ReferenceError| {
                ImportError::Tag(tag.into(), e.to_string())
            })?;
    pinkerton::import::import(
        &s,
        layout,
        Some(&reference),
        &pinkerton::platform::Platform::host(),
        pinkerton::pull::DEFAULT_MAX_LAYER_SIZE,
        None,
    )
    .map_err(|e| ImportError::Import(layout.to_path_buf(), Box::new(e)))
}
