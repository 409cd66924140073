//! What a host operation can fail with, and the one place that maps each kind of failure to an
//! HTTP status and a stable error code.

use pinkerton::store::StoreError;
use runtime::net::NetError;
use runtime::volume::VolumeError;
use runtime::RuntimeError;

use crate::db::DbError;

/// A host operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No job has this id.
    #[error("no such job: {0}")]
    NoSuchJob(String),
    /// A job with this id exists.
    #[error("job {0} already exists; remove it or choose another id")]
    JobExists(String),
    /// The job has not ended.
    #[error("job {0} is {1}; stop it first (or delete with force=true)")]
    JobRunning(String, &'static str),
    /// The job does not run.
    #[error("job {0} is {1}, not running")]
    JobNotRunning(String, &'static str),
    /// The job has no attach socket (it ended).
    #[error("job {0} cannot be attached to: it is not running")]
    NotAttachable(String),
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
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
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
    pub fn kind(&self) -> (u16, &'static str) {
        use HostError as H;
        match self {
            H::BadRequest(_) => (400, "bad_request"),
            H::NoSuchJob(_) => (404, "no_such_job"),
            H::JobExists(_) => (409, "job_exists"),
            H::JobRunning(..) => (409, "job_running"),
            H::JobNotRunning(..) | H::NotAttachable(_) => (409, "job_not_running"),
            H::ImageInUse { .. } => (409, "image_in_use"),
            H::Store(e) => store_kind(e),
            H::Volume(e) => volume_kind(e),
            H::Runtime(e) => runtime_kind(e),
            H::Db(_) | H::Io { .. } | H::Task(_) => (500, "internal"),
        }
    }
}

fn store_kind(e: &StoreError) -> (u16, &'static str) {
    match e {
        StoreError::NoSuchImage(_) => (404, "no_such_image"),
        StoreError::Ambiguous(_) => (400, "ambiguous_image"),
        StoreError::InUse { .. } => (409, "image_in_use"),
        _ => (500, "store"),
    }
}

fn volume_kind(e: &VolumeError) -> (u16, &'static str) {
    match e {
        VolumeError::BadName(_) => (400, "bad_request"),
        VolumeError::NoSuchVolume(_) => (404, "no_such_volume"),
        VolumeError::Exists(_) => (409, "volume_exists"),
        VolumeError::InUse { .. } => (409, "volume_in_use"),
        VolumeError::Io { .. } => (500, "internal"),
    }
}

fn runtime_kind(e: &RuntimeError) -> (u16, &'static str) {
    use RuntimeError as R;
    match e {
        R::Exists(_) => (409, "job_exists"),
        R::NoSuchJob(_) => (404, "no_such_job"),
        R::Running(_) => (409, "job_running"),
        R::Image { source, .. } => store_kind(source),
        R::Spec(_) => (400, "bad_job"),
        R::Volume(v) => volume_kind(v),
        R::Net(NetError::PortTaken(_) | NetError::HostPortInUse(..)) => (409, "port_in_use"),
        R::Net(NetError::Exhausted) => (503, "network_exhausted"),
        R::StartFailed { .. } => (500, "start_failed"),
        R::Timeout(_) => (504, "timeout"),
        _ => (500, "internal"),
    }
}
