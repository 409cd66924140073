//! The cluster a host belongs to: what bootstrap records on its first host (and `join` on
//! every other), and `GET /cluster/join`, what a new host needs to join it.

use serde::{Deserialize, Serialize};

/// The cluster a host belongs to (`STATE/cluster.json`; nothing secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterInfo {
    /// The cluster's domain (apps are `APP.DOMAIN`).
    pub domain: String,
    /// The cluster registry (`HOST:PORT`, plain HTTP, user `flynn` with the cluster key).
    pub registry: String,
    /// The controller's URL as hosts reach it.
    pub controller: String,
    /// The etcd endpoints discoverd and the controller keep the cluster's state in; empty:
    /// the state is in the first host's embedded stores and no host can join.
    #[serde(default)]
    pub etcd: Vec<String>,
    /// etcd runs as jobs of the platform (job `etcd`, one member on each of the first three
    /// hosts), not as the operator's own: a joining host adds a member while there are
    /// fewer than three.
    #[serde(default)]
    pub etcd_jobs: bool,
}

/// `GET /cluster/join`: what a host needs to join the cluster of the host answering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterJoin {
    /// The cluster.
    pub cluster: ClusterInfo,
    /// The host API token every host of the cluster shares (the scheduler's and the
    /// controller's key to the hosts).
    pub host_token: String,
    /// discoverd's platform key (hosts register themselves and their jobs with it).
    pub discoverd_key: String,
    /// The cluster key (the controller's, and the registry password of user `flynn`).
    pub cluster_key: String,
}
