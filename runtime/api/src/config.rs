//! A job's configuration: what to run, from which image, with which limits, network, mounts
//! and ports. Defined once: the runtime's job spec and the host API's create request both
//! hold a [`JobConfig`].

use std::collections::BTreeMap;

use flynn_http::Proto;
use serde::{Deserialize, Serialize};

/// What a job runs and how. Everything but `image` is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// The image, as the host's store names it (name, id or id prefix).
    pub image: String,
    /// Command and arguments; empty means the image's Entrypoint + Cmd.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Replaces the image's Entrypoint when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Extra environment, added to (and overriding) the image's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory; defaults to the image's, then `/`. Made when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// User (`name`, `uid`, `name:group`, `uid:gid`); defaults to the image's, then root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Host name inside the job; defaults to the first 12 characters of the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Run the job on a terminal (its stdout and stderr become one stream).
    #[serde(default)]
    pub tty: bool,
    /// Keep the job's stdin open for attached clients (otherwise it reads /dev/null).
    #[serde(default)]
    pub stdin: bool,
    /// Resource limits.
    #[serde(default)]
    pub resources: Resources,
    /// Bind mounts of host paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<BindMount>,
    /// Runtime-managed volumes to attach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeMount>,
    /// Network mode.
    #[serde(default)]
    pub network: NetworkMode,
    /// Ports to publish on the host (bridge mode only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMap>,
    /// Mount the root filesystem read-only.
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// Grant `CAP_NET_RAW` (raw and packet sockets, e.g. for `ping`); jobs do not hold it
    /// by default.
    #[serde(default)]
    pub net_raw: bool,
    /// Run the command under a minimal init as PID 1 (tini, mounted read-only at
    /// `/dev/init`), which forwards signals to it and reaps orphaned processes, so a program
    /// that installs no `SIGTERM` handler still stops when asked (PID 1 ignores such signals).
    #[serde(default)]
    pub init: bool,
}

impl JobConfig {
    /// A configuration running `args` from `image` with every other setting at its default.
    pub fn new(image: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            image: image.into(),
            args,
            ..Self::default()
        }
    }
}

flynn_http::wire_enum! {
    /// How a job is networked.
    #[derive(Default)]
    pub enum NetworkMode("network mode") {
        /// Its own network namespace on the host's bridge, with an address, outbound NAT and
        /// published ports.
        #[default]
        Bridge = "bridge",
        /// Its own network namespace with only loopback.
        None = "none",
        /// The host's network namespace.
        Host = "host",
    }
}

/// Resource limits; `None` means the daemon's default, which may be unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory limit in bytes (swap included, so the job cannot swap past it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// Relative CPU weight (cgroup v1 shares, 2-262144; 1024 is the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// CPU time limit in millicores (1000 = one core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
    /// Maximum number of processes and threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    /// Open-file limit (RLIMIT_NOFILE, soft and hard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofile: Option<u64>,
}

/// A host directory bind-mounted into the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindMount {
    /// Absolute path on the host.
    pub source: String,
    /// Absolute path in the job.
    pub target: String,
    /// Mount read-only.
    #[serde(default)]
    pub readonly: bool,
}

/// A runtime-managed volume attached to a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeMount {
    /// The volume's name.
    pub name: String,
    /// Absolute path in the job.
    pub target: String,
    /// Mount read-only.
    #[serde(default)]
    pub readonly: bool,
}

/// A port to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMap {
    /// Port on the host; 0 (or absent) picks a free one from 30000-32767.
    #[serde(default)]
    pub host: u16,
    /// Port in the job.
    pub job: u16,
    /// The protocol.
    #[serde(default)]
    pub proto: Proto,
}
