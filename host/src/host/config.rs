//! How the daemon is set up, and what a job gets from it when its request leaves a setting out
//! (default limits, the log cap).

use std::collections::BTreeMap;
use std::path::PathBuf;

use runtime::net::NetConfig;
use runtime::{JobId, JobSpec};

use host_api::CreateJob;

/// How the daemon is set up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The state directory: database, token, runtime files, image store.
    pub state: PathBuf,
    /// The image store (default: `STATE/pinkerton`).
    pub store: PathBuf,
    /// The `flynn-shim` binary.
    pub shim: PathBuf,
    /// Operator-given tags, reported in the status.
    pub tags: BTreeMap<String, String>,
    /// Registries pulled from over plain HTTP (loopback ones always are).
    pub insecure_registries: Vec<String>,
    /// A Docker config file (`auths`) with the credentials pulls use (the cluster
    /// registry's); without one, `STATE/registry-auth.json` if bootstrap wrote it, else
    /// root's `~/.docker/config.json` if present.
    pub registry_auth: Option<PathBuf>,
    /// The job network.
    pub network: NetConfig,
    /// Job starts run at once; more wait.
    pub parallel_starts: usize,
    /// discoverd's URL: jobs with a service are registered there, the host registers itself,
    /// and jobs resolve names through discoverd's DNS on the bridge gateway.
    pub discoverd: Option<flynn_http::Endpoint>,
    /// The API address this host registers in discoverd as service `flynn-host`.
    pub advertise: Option<std::net::SocketAddr>,
    /// The cgroup jobs' cgroups are created under (one per daemon on a machine).
    pub cgroup_parent: String,
    /// Limits for jobs that set none of their own (`None` fields: unlimited).
    pub default_resources: runtime::Resources,
    /// Cap on each job's log on disk, unless the job sets its own.
    pub log_max_bytes: u64,
    /// The static init binary run as PID 1 of jobs that ask for one (`init: true`).
    pub init: PathBuf,
}

/// The file in the state directory with the cluster registry's credentials (Docker config
/// format) that `flynn-host bootstrap` writes; pulls use it unless `--registry-auth` names
/// another file.
pub const REGISTRY_AUTH_FILE: &str = "registry-auth.json";

/// The file in the state directory holding the cluster key (the controller's key, and the
/// registry password of user `flynn`).
pub const CLUSTER_KEY_FILE: &str = "cluster.key";
/// The file in the state directory holding discoverd's platform key.
pub const DISCOVERD_KEY_FILE: &str = "discoverd.key";

/// The default memory limit of a job that names none: 1 GiB (Flynn's default too).
pub const DEFAULT_MEMORY: u64 = 1 << 30;
/// The default process and thread limit of a job that names none.
pub const DEFAULT_PIDS: i64 = 4096;
/// The default open-file limit of a job that names none.
pub const DEFAULT_NOFILE: u64 = 65_536;

impl HostConfig {
    /// Settings for a state directory, with the image store inside it.
    pub fn new(state: impl Into<PathBuf>, shim: impl Into<PathBuf>) -> Self {
        let state = state.into();
        Self {
            store: state.join("pinkerton"),
            state,
            shim: shim.into(),
            tags: BTreeMap::new(),
            insecure_registries: Vec::new(),
            registry_auth: None,
            network: NetConfig::default(),
            parallel_starts: 8,
            discoverd: None,
            advertise: None,
            cgroup_parent: runtime::job::CGROUP_PARENT.into(),
            default_resources: runtime::Resources {
                memory: Some(DEFAULT_MEMORY),
                pids: Some(DEFAULT_PIDS),
                nofile: Some(DEFAULT_NOFILE),
                ..Default::default()
            },
            log_max_bytes: runtime::log::DEFAULT_MAX_BYTES,
            init: runtime::job::DEFAULT_INIT.into(),
        }
    }
}

impl HostConfig {
    /// The runtime spec for a job request: the request's settings, then the daemon's default
    /// limits and log cap for what it leaves out.
    pub(super) fn job_spec(&self, id: JobId, req: &CreateJob) -> JobSpec {
        let mut spec = JobSpec {
            id,
            config: req.config.clone(),
            log_max_bytes: None,
        };
        let (r, d) = (&mut spec.config.resources, &self.default_resources);
        r.memory = r.memory.or(d.memory);
        r.pids = r.pids.or(d.pids);
        r.nofile = r.nofile.or(d.nofile);
        r.cpu_millis = r.cpu_millis.or(d.cpu_millis);
        spec.log_max_bytes = Some(spec.log_max_bytes.unwrap_or(self.log_max_bytes));
        spec
    }
}

/// The open-file limit jobs can be given by default: `wanted`, raising the daemon's own hard
/// limit to it when needed (jobs inherit what the daemon may set), or the daemon's hard limit
/// where it may not raise it (no `CAP_SYS_RESOURCE`).
pub(super) fn usable_nofile(wanted: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return wanted;
    };
    if wanted <= hard || setrlimit(Resource::RLIMIT_NOFILE, soft, wanted).is_ok() {
        return wanted;
    }
    tracing::warn!(
        wanted,
        hard,
        "cannot raise the open-file limit (no CAP_SYS_RESOURCE); jobs get the daemon's hard limit by default"
    );
    hard
}
