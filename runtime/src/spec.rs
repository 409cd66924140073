//! The typed description of a job: what to run, from which image, with which limits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A job id: 1-64 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

/// A job id that is not valid.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid job id {0:?}: use 1-64 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
)]
pub struct JobIdError(String);

impl JobId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True for names usable as job ids and volume names (and so as file and cgroup names):
/// 1-64 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl TryFrom<String> for JobId {
    type Error = JobIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if valid_name(&s) {
            Ok(Self(s))
        } else {
            Err(JobIdError(s))
        }
    }
}

impl std::str::FromStr for JobId {
    type Err = JobIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_string())
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> Self {
        id.0
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a job is networked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Its own network namespace on the host's bridge, with an address, outbound NAT and
    /// published ports.
    #[default]
    Bridge,
    /// Its own network namespace with only loopback.
    None,
    /// The host's network namespace.
    Host,
}

/// Resource limits; `None` means the daemon's default (see the host's `--default-*` flags),
/// which may be unlimited.
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

/// Everything needed to start a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The job's id.
    pub id: JobId,
    /// The image, as pinkerton names it (name, id or id prefix).
    pub image: String,
    /// Command and arguments; empty means the image's Entrypoint + Cmd.
    #[serde(default)]
    pub args: Vec<String>,
    /// Replaces the image's Entrypoint when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Extra environment, added to (and overriding) the image's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory; defaults to the image's, then `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// User (`name`, `uid`, `name:group`, `uid:gid`); defaults to the image's, then root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Host name inside the job; defaults to the first 12 characters of the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Resource limits.
    #[serde(default)]
    pub resources: Resources,
    /// Bind mounts of host paths.
    #[serde(default)]
    pub mounts: Vec<BindMount>,
    /// Runtime-managed volumes.
    #[serde(default)]
    pub volumes: Vec<crate::volume::VolumeMount>,
    /// Network mode.
    #[serde(default)]
    pub network: NetworkMode,
    /// Ports to publish on the host (bridge mode only).
    #[serde(default)]
    pub ports: Vec<crate::net::PortMap>,
    /// Mount the root filesystem read-only.
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// Run the job on a terminal (its stdout and stderr become one stream).
    #[serde(default)]
    pub tty: bool,
    /// Keep the job's stdin open for attached clients (otherwise it reads /dev/null).
    #[serde(default)]
    pub stdin: bool,
    /// Grant `CAP_NET_RAW` (raw and packet sockets, e.g. for `ping`); off by default.
    #[serde(default)]
    pub net_raw: bool,
    /// Cap on the job's log on disk in bytes (oldest lines rotated out); default 100 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_max_bytes: Option<u64>,
}

impl JobSpec {
    /// A spec running `args` from `image` with every other setting at its default.
    pub fn new(id: JobId, image: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            id,
            image: image.into(),
            args,
            entrypoint: None,
            env: BTreeMap::new(),
            working_dir: None,
            user: None,
            hostname: None,
            resources: Resources::default(),
            mounts: Vec::new(),
            volumes: Vec::new(),
            network: NetworkMode::Bridge,
            ports: Vec::new(),
            readonly_rootfs: false,
            tty: false,
            stdin: false,
            net_raw: false,
            log_max_bytes: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids() {
        assert!("web-1.a_b".parse::<JobId>().is_ok());
        for bad in ["", "-x", ".x", "a/b", "a b", &"x".repeat(65)] {
            assert!(bad.parse::<JobId>().is_err(), "{bad:?}");
        }
        let spec: Result<JobSpec, _> = serde_json::from_str(r#"{"id":"../x","image":"i"}"#);
        assert!(spec.is_err());
    }
}
