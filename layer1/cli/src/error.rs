//! What can go wrong in a `flynn` command, each saying what to do about it.

use std::path::PathBuf;

use flynn_http::client::ClientError;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `~/.flynnrc` could not be read or written.
    #[error("{path}: {source}")]
    ConfigIo {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `~/.flynnrc` is not valid.
    #[error("{path} is not a valid flynnrc: {message} (fix it, or remove it and run flynn cluster add again)")]
    ConfigSyntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// No cluster is configured, or the one named is unknown.
    #[error("{0}")]
    NoCluster(String),
    /// A cluster of this name is already configured.
    #[error("cluster {0:?} already exists: pass -f to replace it")]
    ClusterExists(String),
    /// No app was named and none follows from the working directory.
    #[error("no app in this directory: run flynn create, or pass -a APP")]
    NoApp,
    /// A command-line value is not valid.
    #[error("{0}")]
    Usage(String),
    /// The controller refused the request or could not be reached.
    #[error("{0}")]
    Api(#[from] ClientError),
    /// An image push failed.
    #[error("pushing the image: {0}")]
    Image(#[source] Box<pinkerton::push::PushError>),
    /// git failed.
    #[error("git {args}: {message}")]
    Git {
        /// What git was asked.
        args: String,
        /// What it said.
        message: String,
    },
    /// A local file or the terminal failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Something did not happen in time.
    #[error("{0}")]
    Timeout(String),
}

impl CliError {
    /// An error for an unusable command-line value.
    pub fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }
}
