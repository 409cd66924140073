//! The build's errors: each says what the user pushing should change.

use std::path::PathBuf;

/// A build that failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The source tree is not a usable tar.
    #[error("the source is not a tar archive the builder can read: {0}")]
    Source(String),
    /// A source entry points outside the tree.
    #[error("source entry {0:?} points outside the app directory")]
    Escape(String),
    /// No buildpack detected the app.
    #[error("Unable to select a buildpack: none of the built-in buildpacks ({tried}) detected this app; add a Procfile, or set BUILDPACK_URL")]
    NoBuildpack {
        /// The buildpacks tried.
        tried: String,
    },
    /// A buildpack could not be fetched.
    #[error("fetching buildpack {url}: {reason}")]
    Fetch {
        /// Its URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A buildpack's compile failed.
    #[error(
        "Failed to compile app with the {buildpack} buildpack (bin/compile exited with {status})"
    )]
    Compile {
        /// The buildpack.
        buildpack: String,
        /// How it ended.
        status: String,
    },
    /// The Procfile or bin/release output does not parse.
    #[error("{what}: {reason}")]
    Malformed {
        /// Which document.
        what: String,
        /// Why.
        reason: String,
    },
    /// The image could not be pushed.
    #[error("pushing the slug image: {0}")]
    Push(#[from] pinkerton::push::PushError),
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.into();
    move |source| BuildError::Io { path, source }
}
