//! The cluster this host belongs to: `STATE/cluster.json`, written by bootstrap on the first
//! host and by `flynn-host join` on the others. The daemon reads it at each pull (the cluster
//! registry is reached over plain HTTP) and answers `GET /cluster/join` from it and the
//! state directory's secrets.

use std::path::Path;

use host_api::{ClusterInfo, ClusterJoin};

use crate::error::HostError;
use crate::host::{Host, CLUSTER_KEY_FILE, DISCOVERD_KEY_FILE};

/// The file in the state directory naming the cluster this host belongs to.
pub const CLUSTER_FILE: &str = "cluster.json";

/// The cluster recorded in `state`, if any.
pub fn read(state: &Path) -> Result<Option<ClusterInfo>, HostError> {
    let path = state.join(CLUSTER_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path, e)),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        io(
            &path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        )
    })
}

/// Records `cluster` in `state` (replaced whole; unchanged when equal).
pub fn write(state: &Path, cluster: &ClusterInfo) -> std::io::Result<()> {
    let path = state.join(CLUSTER_FILE);
    let text = serde_json::to_string_pretty(cluster).expect("JSON") + "\n";
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    crate::secret::write_file(&path, &text, 0o600)
}

fn io(path: &Path, source: std::io::Error) -> HostError {
    HostError::Io {
        what: format!("reading {}", path.display()),
        source,
    }
}

impl Host {
    /// The cluster this host belongs to, if any.
    pub fn cluster(&self) -> Result<Option<ClusterInfo>, HostError> {
        read(&self.inner.config.state)
    }

    /// What a new host needs to join this host's cluster: refused when this host belongs to
    /// none, or to one whose state is in this host's embedded stores.
    pub fn cluster_join(&self) -> Result<ClusterJoin, HostError> {
        let Some(cluster) = self.cluster()? else {
            return Err(HostError::NotInCluster(
                "this host belongs to no cluster: run flynn-host bootstrap --domain D on it first"
                    .into(),
            ));
        };
        if cluster.etcd.is_empty() {
            return Err(HostError::NotInCluster(
                "this cluster keeps its state in this host's embedded stores, so no host can join it; bootstrap the cluster on a daemon whose API is on a LAN address (--listen http://LAN_IP:1113: etcd then runs as a job), or with --etcd URLS (an etcd every host reaches)".into(),
            ));
        }
        let state = &self.inner.config.state;
        let secret = |file: &str| {
            let path = state.join(file);
            std::fs::read_to_string(&path)
                .map(|s| s.trim().to_string())
                .map_err(|e| io(&path, e))
        };
        Ok(ClusterJoin {
            cluster,
            host_token: secret("token")?,
            discoverd_key: secret(DISCOVERD_KEY_FILE)?,
            cluster_key: secret(CLUSTER_KEY_FILE)?,
        })
    }
}
