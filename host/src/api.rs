//! The host API's wire types, shared by the server, the client and the CLI. `openapi.json` in
//! this crate describes the same shapes; a test keeps the two in step.

use std::collections::BTreeMap;

use runtime::net::PortMap;
use runtime::spec::BindMount;
use runtime::volume::VolumeMount;
use runtime::{NetworkMode, Resources};
use serde::{Deserialize, Serialize};

/// `POST /jobs`: the job to create. Everything but `image` is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// The job id; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The image, as pulled (name, id or id prefix).
    pub image: String,
    /// Command and arguments; empty means the image's Entrypoint + Cmd.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Replaces the image's Entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Extra environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// User: `name`, `uid`, `name:group` or `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Host name in the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Run on a terminal.
    #[serde(default)]
    pub tty: bool,
    /// Keep stdin open for attach.
    #[serde(default)]
    pub stdin: bool,
    /// Resource limits.
    #[serde(default)]
    pub resources: Resources,
    /// Bind mounts of host paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<BindMount>,
    /// Volumes to attach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeMount>,
    /// Network mode.
    #[serde(default)]
    pub network: NetworkMode,
    /// Ports to publish (bridge mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMap>,
    /// Read-only root filesystem.
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// Grant `CAP_NET_RAW` (raw sockets, `ping`); jobs do not hold it by default.
    #[serde(default)]
    pub net_raw: bool,
    /// Register the job in discoverd under this service name while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The job port registered for the service (default: the first published job port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_port: Option<u16>,
    /// Free-form labels, usable as list filters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Being set up.
    Starting,
    /// Its process runs.
    Running,
    /// It ended; `exit` says how.
    Exited,
    /// It could not start, or its monitor died; `error` says why.
    Failed,
}

impl JobState {
    /// True once the job has ended (exited or failed).
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Exited | JobState::Failed)
    }

    /// The state's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Starting => "starting",
            JobState::Running => "running",
            JobState::Exited => "exited",
            JobState::Failed => "failed",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "starting" => Ok(JobState::Starting),
            "running" => Ok(JobState::Running),
            "exited" => Ok(JobState::Exited),
            "failed" => Ok(JobState::Failed),
            _ => Err(format!(
                "unknown job state {s:?}: use starting, running, exited or failed"
            )),
        }
    }
}

/// How a job ended: exit code or signal, and whether the OOM killer struck.
pub type ExitInfo = runtime::ExitStatus;

/// A job as the host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The job id.
    pub id: String,
    /// State.
    pub state: JobState,
    /// What was asked for (with the id filled in).
    pub config: CreateJob,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When its process started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Its init process on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Its address on the job network (bridge mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Published ports, with the host ports actually used.
    #[serde(default)]
    pub ports: Vec<PortMap>,
    /// How it ended (state `exited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
    /// Why it failed (state `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /jobs/{id}/signal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// A signal name (`TERM`, `SIGTERM`) or number.
    pub signal: String,
}

/// One record of a job's log, as `GET /jobs/{id}/logs` streams it (one JSON object a line).
pub type LogLine = runtime::log::LogLine;

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A job changed state.
    Job,
    /// An image was pulled or deleted.
    Image,
}

/// One message of `GET /events` (server-sent events, `event:` is the kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Increasing number within one daemon run.
    pub seq: u64,
    /// When it happened (RFC 3339).
    pub time: String,
    /// What it is about.
    pub kind: EventKind,
    /// The job, for job events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
    /// The image, for image events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    /// `pulled` or `deleted` for image events; `deleted` for a job whose record is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// `POST /images`: what to pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// The image reference, e.g. `127.0.0.1:5000/web:v1` or `busybox`.
    pub image: String,
}

/// One line of a pull's progress stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PullMessage {
    /// The manifest was resolved.
    Resolved {
        /// Manifest digest.
        digest: String,
        /// Number of layers.
        layers: usize,
    },
    /// A layer is already stored.
    Exists {
        /// Layer blob digest.
        layer: String,
    },
    /// A layer download began.
    Downloading {
        /// Layer blob digest.
        layer: String,
        /// Compressed size.
        size: u64,
    },
    /// Bytes of a layer arrived.
    Progress {
        /// Layer blob digest.
        layer: String,
        /// Bytes so far.
        received: u64,
    },
    /// A layer is stored and verified.
    Done {
        /// Layer blob digest.
        layer: String,
    },
    /// The pull finished; the last message of a successful pull.
    Pulled {
        /// The stored image.
        image: Image,
    },
    /// The pull failed; the last message of a failed pull. Nothing was stored.
    Error {
        /// What went wrong.
        error: ErrorBody,
    },
}

/// An image in the host's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The full reference.
    pub name: String,
    /// The image id (config digest).
    pub id: String,
    /// The manifest digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// When it was stored (seconds since the epoch).
    pub created: u64,
}

impl From<&pinkerton::store::ImageRecord> for Image {
    fn from(r: &pinkerton::store::ImageRecord) -> Self {
        Self {
            name: r.name.clone(),
            id: r.id.to_string(),
            digest: r.manifest.as_ref().map(|d| d.to_string()),
            size: r.size,
            created: r.created,
        }
    }
}

/// `POST /volumes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVolume {
    /// The volume name.
    pub name: String,
}

/// A volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// The volume name.
    pub name: String,
    /// Where it is on the host.
    pub path: String,
}

/// `GET /status`: the host, its capacity and use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStatus {
    /// The host id (generated on first start, kept in the state directory).
    pub id: String,
    /// Operator-given tags.
    pub tags: BTreeMap<String, String>,
    /// Daemon version.
    pub version: String,
    /// Seconds the daemon has run.
    pub uptime: u64,
    /// CPUs online.
    pub cpus: usize,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    /// Memory in bytes.
    pub memory: Capacity,
    /// Disk of the state directory in bytes.
    pub disk: Capacity,
    /// Jobs known, by state.
    pub jobs: BTreeMap<String, usize>,
    /// The job network's gateway: the host's address as jobs see it.
    pub gateway: String,
    /// The discoverd this host registers with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discoverd: Option<String>,
}

/// Total and available amounts of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Total.
    pub total: u64,
    /// Available.
    pub available: u64,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `no_such_job`.
    pub code: String,
    /// What went wrong and what to do, for people.
    pub message: String,
}
