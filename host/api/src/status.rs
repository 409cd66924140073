//! `GET /status`: the host, its capacity and use.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::job::JobState;
use crate::Timestamp;

/// The discoverd service every host registers its API as (instance id = host id).
pub const HOST_SERVICE: &str = "flynn-host";

/// The metadata key of a host's registration that is `true` while it drains.
pub const DRAINING_META: &str = "draining";

/// Whether a host's registration metadata says it is draining.
pub fn is_draining(meta: &BTreeMap<String, String>) -> bool {
    meta.get(DRAINING_META).map(String::as_str) == Some("true")
}

/// The host, its capacity and use.
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
    pub jobs: BTreeMap<JobState, usize>,
    /// The job network's gateway: the host's address as jobs see it.
    pub gateway: Ipv4Addr,
    /// Draining: the host takes no new jobs and the scheduler moves its jobs to other hosts
    /// (`POST /drain`; `DELETE /drain` ends it).
    #[serde(default)]
    pub draining: bool,
    /// The daemon's process id (`flynn-host join` sends it SIGHUP to restart it).
    #[serde(default)]
    pub pid: u32,
    /// When this daemon process started (a restart in place keeps the pid, not this).
    pub started: Timestamp,
    /// The discoverd this host registers with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discoverd: Option<String>,
    /// The address of the daemon's TCP API as it registers it in discoverd (other hosts
    /// reach it there); none: the daemon has no TCP API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<std::net::SocketAddr>,
}

/// Total and available amounts of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Total.
    pub total: u64,
    /// Available.
    pub available: u64,
}
