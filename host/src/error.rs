//! What a host operation can fail with, and the one place that maps each kind of failure to an
//! HTTP status and a stable error code.

use flynn_http::server::ApiError;
use flynn_http::ErrorCode;
use host_api::JobId;
use pinkerton::store::StoreError;
use runtime::net::NetError;
use runtime::volume::VolumeError;
use runtime::RuntimeError;

use crate::db::DbError;

/// A host operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The request is malformed; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// No job has this id (or the id is not one a job could have).
    #[error("no such job: {0}")]
    NoSuchJob(String),
    /// A job with this id exists.
    #[error("job {0} already exists; remove it or choose another id")]
    JobExists(JobId),
    /// The host is draining and takes no new jobs.
    #[error("host {0} is draining and takes no new jobs; run the job on another host (or end the drain with `flynn-host undrain`)")]
    Draining(String),
    /// The host belongs to no cluster another host could join.
    #[error("{0}")]
    NotInCluster(String),
    /// The job has not ended.
    #[error("job {0} is {1}; stop it first (or delete with force=true)")]
    JobRunning(JobId, host_api::JobState),
    /// The job does not run.
    #[error("job {0} is {1}, not running")]
    JobNotRunning(JobId, host_api::JobState),
    /// The job has no attach socket (it ended).
    #[error("job {0} cannot be attached to: it is not running")]
    NotAttachable(JobId),
    /// An image is used by a job.
    #[error("image {image} is used by job {job}; remove the job first")]
    ImageInUse {
        /// The image.
        image: String,
        /// A job using it.
        job: String,
    },
    /// The image store failed or has no such image.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A volume operation failed.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A file or process operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A background task died.
    #[error("internal error: a task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl HostError {
    /// True when a runtime error means the request was wrong (a 4xx), not that the host
    /// failed: such a job start is refused and leaves no record.
    pub fn from_refused(e: &RuntimeError) -> bool {
        (400..500).contains(&runtime_kind(e).0) && !matches!(e, RuntimeError::Exists(_))
    }

    /// The HTTP status and the stable error code of this error.
    pub fn kind(&self) -> (u16, ErrorCode) {
        use HostError as H;
        let code = match self {
            H::BadRequest(_) => ErrorCode::BadRequest,
            H::NoSuchJob(_) => ErrorCode::NoSuchJob,
            H::JobExists(_) => ErrorCode::JobExists,
            H::Draining(_) => ErrorCode::HostDraining,
            H::NotInCluster(_) => ErrorCode::NotInCluster,
            H::JobRunning(..) => ErrorCode::JobRunning,
            H::JobNotRunning(..) | H::NotAttachable(_) => ErrorCode::JobNotRunning,
            H::ImageInUse { .. } => ErrorCode::ImageInUse,
            H::Store(e) => return store_kind(e),
            H::Volume(e) => volume_code(e),
            H::Runtime(e) => return runtime_kind(e),
            H::Db(_) | H::Io { .. } | H::Task(_) => ErrorCode::Internal,
        };
        (code.status(), code)
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        let (status, code) = e.kind();
        ApiError::with_status(status, code, flynn_http::error::message_chain(&e))
    }
}

fn store_kind(e: &StoreError) -> (u16, ErrorCode) {
    let code = match e {
        StoreError::NoSuchImage(_) => ErrorCode::NoSuchImage,
        StoreError::Ambiguous(_) => ErrorCode::AmbiguousImage,
        StoreError::InUse { .. } => ErrorCode::ImageInUse,
        _ => return (500, ErrorCode::Store),
    };
    (code.status(), code)
}

fn volume_code(e: &VolumeError) -> ErrorCode {
    match e {
        VolumeError::BadName(_) => ErrorCode::BadRequest,
        VolumeError::NoSuchVolume(_) => ErrorCode::NoSuchVolume,
        VolumeError::Exists(_) => ErrorCode::VolumeExists,
        VolumeError::InUse { .. } => ErrorCode::VolumeInUse,
        VolumeError::Io { .. } => ErrorCode::Internal,
    }
}

fn runtime_kind(e: &RuntimeError) -> (u16, ErrorCode) {
    use RuntimeError as R;
    let code = match e {
        R::Exists(_) => ErrorCode::JobExists,
        R::NoSuchJob(_) => ErrorCode::NoSuchJob,
        R::Running(_) => ErrorCode::JobRunning,
        R::Image { source, .. } => return store_kind(source),
        R::Spec(_) => ErrorCode::BadJob,
        R::Volume(v) => volume_code(v),
        R::Net(NetError::PortTaken(_) | NetError::HostPortInUse(..)) => ErrorCode::PortInUse,
        R::Net(NetError::Exhausted) => ErrorCode::NetworkExhausted,
        R::StartFailed { .. } => ErrorCode::StartFailed,
        R::Timeout(_) => ErrorCode::Timeout,
        _ => ErrorCode::Internal,
    };
    (code.status(), code)
}
