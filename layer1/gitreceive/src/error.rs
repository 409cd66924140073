//! What can go wrong receiving, building and deploying a push.

use flynn_http::client::ClientError;

/// A push that could not be received, built or deployed. The message is what the user reads
/// in the push output.
#[derive(Debug, thiserror::Error)]
pub enum GitReceiveError {
    /// A git command could not run.
    #[error("running git {what}: {source}")]
    Git {
        /// Which command.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A git command failed.
    #[error("git {what} failed: {stderr}")]
    GitFailed {
        /// Which command.
        what: String,
        /// What it printed.
        stderr: String,
    },
    /// The repository directory could not be set up.
    #[error("preparing the repository {path}: {source}")]
    Repo {
        /// The repository.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A push updated something other than the deploy branch.
    #[error("{0}")]
    Refused(String),
    /// The controller refused or could not be reached.
    #[error("controller: {0}")]
    Controller(#[source] ClientError),
    /// The build host refused or could not be reached.
    #[error("build host: {0}")]
    Host(#[source] ClientError),
    /// The connection to the build job broke.
    #[error("build job {job}: {message}")]
    BuildIo {
        /// The job.
        job: String,
        /// What happened.
        message: String,
    },
    /// The build ran and failed.
    #[error("{0}")]
    BuildFailed(String),
    /// The release did not come up.
    #[error("{0}")]
    DeployFailed(String),
}
