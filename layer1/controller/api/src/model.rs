//! The controller's data model as it travels on the wire: apps, artifacts, releases,
//! formations, routes (router-api's), and events. Names follow Flynn's controller.

use std::collections::BTreeMap;

use flynn_http::{Proto, Timestamp};
use serde::{Deserialize, Serialize};

pub use discoverd_api::ServiceName;

/// Most characters in an app name: `NAME-web`, the default web service, must stay a DNS label.
pub const MAX_APP_NAME: usize = 58;

/// See [`AppName`]: lowercase letters and digits in groups joined by single `-`.
pub fn valid_app_name(s: &str) -> bool {
    valid_dashed(s, MAX_APP_NAME)
}

/// See [`ProcessTypeName`].
pub fn valid_process_type(s: &str) -> bool {
    valid_dashed(s, 30)
}

fn valid_dashed(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.split('-').all(|g| {
            !g.is_empty()
                && g.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

flynn_http::checked_name!(
    /// An app name: 1-58 of `[a-z0-9]` in groups joined by single `-`.
    AppName,
    AppNameError,
    valid_app_name,
    "app name",
    "use 1-58 of a-z and 0-9 in groups joined by single '-' (like my-app-2)"
);

flynn_http::checked_name!(
    /// A process type name (`web`, `worker`): 1-30 of `[a-z0-9]` joined by single `-`.
    ProcessTypeName,
    ProcessTypeNameError,
    valid_process_type,
    "process type",
    "use 1-30 of a-z and 0-9 in groups joined by single '-' (like web or queue-worker)"
);

/// The app meta key marking a system app (a layer-1 service): no default route, and its
/// releases may ask for host network, host bind mounts and extra capabilities.
pub const SYSTEM_APP: &str = "flynn-system-app";

flynn_http::wire_enum! {
    /// How a deploy replaces old jobs with new ones.
    #[derive(Default)]
    pub enum Strategy("deploy strategy") {
        /// Start every new job, then stop the old ones.
        #[default]
        AllAtOnce = "all-at-once",
        /// Per process type: one new job up, then one old job down, until done.
        OneByOne = "one-by-one",
    }
}

/// The default deploy timeout, in seconds.
pub const DEFAULT_DEPLOY_TIMEOUT: u32 = 120;

/// An application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Its id (a UUID).
    pub id: String,
    /// Its unique name.
    pub name: AppName,
    /// Free-form metadata (`flynn-system-app`, ...).
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// The deploy strategy.
    pub strategy: Strategy,
    /// The current release's id, once one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Seconds a deploy may take before it is rolled back.
    pub deploy_timeout: u32,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl App {
    /// True for layer-1 services (meta `flynn-system-app` = `true`).
    pub fn is_system(&self) -> bool {
        self.meta.get(SYSTEM_APP).is_some_and(|v| v == "true")
    }
}

/// `POST /apps`: every field may be left out (a name is generated).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// The name; generated (`adjective-noun-number`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<AppName>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<BTreeMap<String, String>>,
    /// The deploy strategy (default `all-at-once`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// The deploy timeout in seconds (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_timeout: Option<u32>,
}

/// `POST /apps/{app}`: a partial update; `meta` replaces the whole map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppUpdate {
    /// New metadata (the whole map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<BTreeMap<String, String>>,
    /// New strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// New deploy timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_timeout: Option<u32>,
}

flynn_http::wire_enum! {
    /// What an artifact is.
    #[derive(Default)]
    pub enum ArtifactType("artifact type") {
        /// A Docker/OCI image, by digest, that hosts pull with pinkerton.
        #[default]
        Image = "image",
    }
}

/// An image a release runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Its id (a UUID).
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ArtifactType,
    /// `REGISTRY/NAME@sha256:HEX`.
    pub uri: String,
    /// Free-form metadata.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// `POST /artifacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewArtifact {
    /// Its type (default `image`).
    #[serde(default, rename = "type")]
    pub kind: ArtifactType,
    /// `REGISTRY/NAME@sha256:HEX`: an image pinned by digest.
    pub uri: String,
    /// Metadata.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

/// A health check a job must pass before it counts as up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// `tcp` (connect) or `http` (a GET of `path`).
    #[serde(rename = "type", default)]
    pub kind: CheckType,
    /// For `http`: the path to GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// For `http`: the status that counts as healthy (default: any 2xx or 3xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Seconds between checks (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u32>,
    /// Passes in a row needed (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Seconds a new job may take to pass (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<u32>,
}

flynn_http::wire_enum! {
    /// The kind of a [`HealthCheck`].
    #[derive(Default)]
    pub enum CheckType("health check type") {
        /// A TCP connect to the port.
        #[default]
        Tcp = "tcp",
        /// An HTTP GET.
        Http = "http",
    }
}

/// A service a port registers in discoverd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortService {
    /// The discoverd service name.
    pub name: ServiceName,
    /// Create the service if it does not exist.
    #[serde(default)]
    pub create: bool,
    /// The check that marks a job up (default: a TCP connect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<HealthCheck>,
}

/// A port a process listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// The port inside the job (0: assigned; the job reads `$PORT`).
    #[serde(default)]
    pub port: u16,
    /// `tcp` or `udp`.
    #[serde(default)]
    pub proto: Proto,
    /// The service jobs register under through this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<PortService>,
}

/// A volume a job gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeReq {
    /// Where it is mounted in the job.
    pub path: String,
    /// Delete it when the job stops.
    #[serde(default)]
    pub delete_on_stop: bool,
}

/// A host directory bind-mounted into the job (system apps only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostMount {
    /// The host path.
    pub location: String,
    /// The path in the job.
    pub target: String,
    /// Writable (default read-only).
    #[serde(default)]
    pub writeable: bool,
}

/// A resource's request and limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// What the job is expected to use (placement counts this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<u64>,
    /// The most it may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// A process's resources; missing ones get the controller's defaults when the release is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Limit>,
    /// CPU in milli-CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Limit>,
    /// Open files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fd: Option<Limit>,
    /// Processes (the pids cgroup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_procs: Option<Limit>,
}

impl Resources {
    /// `r` with [`DEFAULT_RESOURCES`] where it names nothing; a limit given alone is also the
    /// request, a request given alone gets the default limit (or the request, if higher).
    pub fn with_defaults(r: Resources) -> Resources {
        fn fill(given: Option<Limit>, default: Option<Limit>) -> Option<Limit> {
            match given {
                None => default,
                Some(mut l) => {
                    if l.limit.is_none() {
                        l.limit = default.and_then(|d| d.limit).max(l.request);
                    }
                    if l.request.is_none() {
                        l.request = l.limit;
                    }
                    Some(l)
                }
            }
        }
        Resources {
            memory: fill(r.memory, DEFAULT_RESOURCES.memory),
            cpu: fill(r.cpu, DEFAULT_RESOURCES.cpu),
            max_fd: fill(r.max_fd, DEFAULT_RESOURCES.max_fd),
            max_procs: fill(r.max_procs, DEFAULT_RESOURCES.max_procs),
        }
    }
}

/// Defaults every release's processes get: 1 GiB, 1000 milli-CPU, 10,000 files, 1,024 tasks.
pub const DEFAULT_RESOURCES: Resources = Resources {
    memory: Some(Limit {
        request: Some(1 << 30),
        limit: Some(1 << 30),
    }),
    cpu: Some(Limit {
        request: Some(1000),
        limit: Some(1000),
    }),
    max_fd: Some(Limit {
        request: Some(10_000),
        limit: Some(10_000),
    }),
    max_procs: Some(Limit {
        request: Some(1024),
        limit: Some(1024),
    }),
};

/// One process type of a release.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessType {
    /// The command (empty: the image's entrypoint and cmd).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment over the release's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeReq>,
    /// Resources (defaults filled in when the release is made).
    #[serde(default)]
    pub resources: Resources,
    /// The discoverd service whose registration marks a job up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceName>,
    /// One job per host instead of a count.
    #[serde(default)]
    pub omni: bool,
    /// The host's network namespace (system apps only).
    #[serde(default)]
    pub host_network: bool,
    /// Host directories bind-mounted in (system apps only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<HostMount>,
    /// Capabilities beyond the default set (system apps only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linux_capabilities: Vec<String>,
    /// Restart the job when it exits (default for formation jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resurrect: Option<bool>,
}

impl ProcessType {
    /// True when the process asks for something of the host's own: its network, its files or
    /// capabilities beyond the default set.
    pub fn reaches_host(&self) -> Option<&'static str> {
        if self.host_network {
            Some("host_network")
        } else if !self.mounts.is_empty() {
            Some("mounts (host bind mounts)")
        } else if !self.linux_capabilities.is_empty() {
            Some("linux_capabilities")
        } else {
            None
        }
    }
}

/// An immutable release: artifacts, environment and process types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Its id (a UUID).
    pub id: String,
    /// The app it belongs to.
    pub app_id: String,
    /// Artifact ids, overlaid in order (the last is the image jobs run).
    pub artifacts: Vec<String>,
    /// Environment of every process.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Metadata (`git`, `git.commit`, ...).
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// Process types.
    #[serde(default)]
    pub processes: BTreeMap<ProcessTypeName, ProcessType>,
    /// When it was made.
    pub created_at: Timestamp,
}

/// `POST /releases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRelease {
    /// The app (its id or name).
    pub app_id: String,
    /// Artifact ids.
    #[serde(default)]
    pub artifacts: Vec<String>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Metadata.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// Process types.
    #[serde(default)]
    pub processes: BTreeMap<ProcessTypeName, ProcessType>,
}

/// `PUT /apps/{app}/release`: the release to make current (no deploy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRelease {
    /// The release id.
    pub id: String,
}

/// How many jobs of each process type of one release an app runs, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Formation {
    /// The app id.
    pub app: String,
    /// The release id.
    pub release: String,
    /// Jobs per process type.
    #[serde(default)]
    pub processes: BTreeMap<ProcessTypeName, u32>,
    /// Host tags each process type's jobs need.
    #[serde(default)]
    pub tags: BTreeMap<ProcessTypeName, BTreeMap<String, String>>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// `PUT /apps/{app}/formations/{release}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutFormation {
    /// Jobs per process type (types left out run none).
    #[serde(default)]
    pub processes: BTreeMap<ProcessTypeName, u32>,
    /// Host tags per process type.
    #[serde(default)]
    pub tags: BTreeMap<ProcessTypeName, BTreeMap<String, String>>,
}

/// Most jobs of one process type a formation may ask for.
pub const MAX_PROCESSES: u32 = 1000;

/// `DELETE /apps/{app}`: what went with the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppDeletion {
    /// The app.
    pub app: App,
    /// Routes removed.
    pub removed_routes: u32,
    /// Releases deleted.
    pub deleted_releases: u32,
    /// Formations removed.
    pub removed_formations: u32,
}
