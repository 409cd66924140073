//! The controller's errors, each with the API error code it is answered with.

use flynn_http::server::ApiError;
use flynn_http::ErrorCode;

use crate::store::StoreError;

/// A controller operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No app by this name or id.
    #[error("no app is named or has the id {0:?}; `GET /apps` lists them")]
    NoSuchApp(String),
    /// The name is taken.
    #[error("application {0:?} already exists; pick another name")]
    AppExists(String),
    /// No such release for this app.
    #[error("no release {0:?}{1}")]
    NoSuchRelease(String, &'static str),
    /// The app has no current release.
    #[error("app {0} has no current release yet; set one with PUT /apps/{0}/release")]
    NoCurrentRelease(String),
    /// No such artifact.
    #[error("no artifact {0:?}; create it with POST /artifacts first")]
    NoSuchArtifact(String),
    /// No formation for this app and release.
    #[error("app {app} has no formation for release {release}")]
    NoSuchFormation {
        /// The app.
        app: String,
        /// The release.
        release: String,
    },
    /// No such deployment for this app.
    #[error("no deployment {0:?} of this app")]
    NoSuchDeployment(String),
    /// The app has an unfinished deployment.
    #[error("cannot create a deployment of {0}: deployment {1} is still in progress; wait for it (GET /apps/{0}/deployments)")]
    DeployInProgress(String, String),
    /// No such job for this app.
    #[error("app {app} has no job {id:?}")]
    NoSuchJob {
        /// The app.
        app: String,
        /// The job id.
        id: String,
    },
    /// No such route for this app.
    #[error("app {app} has no {kind} route {id:?}")]
    NoSuchRoute {
        /// The app.
        app: String,
        /// `http` or `tcp`.
        kind: String,
        /// The route id.
        id: String,
    },
    /// No such event.
    #[error("no event has the id {0}")]
    NoSuchEvent(u64),
    /// A route's domain and path or port is taken, or it has dependent routes.
    #[error("{0}")]
    RouteConflict(String),
    /// A request that does not validate.
    #[error("{0}")]
    Invalid(String),
    /// A user release asking for the host.
    #[error("process type {process} asks for {what}: only system apps (meta {key}=true) may reach the host", key = controller_api::SYSTEM_APP)]
    HostAccess {
        /// The process type.
        process: String,
        /// What it asked for.
        what: &'static str,
    },
    /// A formation for a release without artifacts.
    #[error("release {0} is not deployable: it has no artifact")]
    NotDeployable(String),
    /// The controller was started without a way to reach hosts.
    #[error("this controller cannot reach hosts: start it with --discoverd and HOST_TOKEN")]
    NoHostAccess,
    /// discoverd lists no host that takes jobs.
    #[error("no host takes jobs: none is registered in discoverd (service flynn-host; start flynn-host with --discoverd), or every one is draining (flynn-host undrain)")]
    NoHosts,
    /// The job's host is not registered any more.
    #[error("host {0} is not registered in discoverd (it is down or was removed)")]
    HostGone(String),
    /// discoverd could not be asked.
    #[error("asking discoverd for the hosts")]
    Discoverd(#[source] Box<flynn_http::client::ClientError>),
    /// A host refused or failed a request.
    #[error("host {host}")]
    Host {
        /// The host id.
        host: String,
        /// Its answer.
        #[source]
        source: Box<flynn_http::client::ClientError>,
    },
    /// Commits kept conflicting with other writers.
    #[error("the state kept changing under this request ({0} attempts); retry")]
    Busy(usize),
}

impl From<ControllerError> for ApiError {
    fn from(e: ControllerError) -> Self {
        let code = match &e {
            ControllerError::Store(_) => ErrorCode::Store,
            ControllerError::NoSuchApp(_) => ErrorCode::NoSuchApp,
            ControllerError::AppExists(_) => ErrorCode::AppExists,
            ControllerError::NoSuchRelease(..) | ControllerError::NoCurrentRelease(_) => {
                ErrorCode::NoSuchRelease
            }
            ControllerError::NoSuchArtifact(_) => ErrorCode::NoSuchArtifact,
            ControllerError::NoSuchFormation { .. } => ErrorCode::NoSuchFormation,
            ControllerError::NoSuchRoute { .. } => ErrorCode::NoSuchRoute,
            ControllerError::NoSuchJob { .. } => ErrorCode::NoSuchJob,
            ControllerError::NoSuchDeployment(_) => ErrorCode::NoSuchDeployment,
            ControllerError::DeployInProgress(..) => ErrorCode::DeployInProgress,
            ControllerError::NoSuchEvent(_) => ErrorCode::NoSuchEvent,
            ControllerError::RouteConflict(_) => ErrorCode::RouteConflict,
            ControllerError::Invalid(_) => ErrorCode::BadRequest,
            ControllerError::HostAccess { .. } => ErrorCode::HostAccessDenied,
            ControllerError::NotDeployable(_) => ErrorCode::NotDeployable,
            ControllerError::Busy(_) => ErrorCode::Conflict,
            ControllerError::NoHostAccess
            | ControllerError::NoHosts
            | ControllerError::HostGone(_)
            | ControllerError::Discoverd(_) => ErrorCode::Unavailable,
            // What the host said (a bad command is the caller's; a failed pull, a 502).
            ControllerError::Host { source, .. } => match &**source {
                flynn_http::client::ClientError::Api { body, .. } => body.code,
                _ => ErrorCode::Unavailable,
            },
        };
        ApiError::new(code, flynn_http::error::message_chain(&e))
    }
}
