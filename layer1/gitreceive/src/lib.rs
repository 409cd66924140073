//! gitreceive: `git push` deploys.
//!
//! The server ([`http`]) speaks git's smart HTTP protocol by running the real
//! `git receive-pack` / `git upload-pack` on a bare repository kept per app ([`repo`]).
//! Each repository's `pre-receive` hook runs this crate's [`hook`]: it refuses pushes to
//! anything but the app's deploy branch, streams the pushed tree into a build job on a host
//! ([`build`]: the build stack running `flynn-slugbuilder`), then creates the release and
//! deploys it through the controller ([`release`]). Everything the hook prints reaches the
//! user's terminal as `remote:` lines while it runs; a hook that fails rejects the push, so
//! the branch only moves when the new release is deployed.

pub mod build;
pub mod error;
pub mod hook;
pub mod http;
pub mod release;
pub mod repo;
pub mod settings;

pub use error::GitReceiveError;
pub use settings::Settings;
