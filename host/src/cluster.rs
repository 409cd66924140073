//! The cluster this host belongs to: `STATE/cluster.json`, written by bootstrap on the first
//! host and by `flynn-host join` on the others. The daemon reads it at each pull (the cluster
//! registry is reached over plain HTTP) and answers `GET /cluster/join` from it and the
//! state directory's secrets. When etcd runs as jobs of the platform, the daemon keeps the
//! file's etcd endpoints those of the cluster's members ([`Host::refresh_etcd`]), so that a
//! host that bootstrapped alone hands joining hosts every member, not only its own.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

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
    /// none, or to one whose state is in this host's embedded stores. The etcd endpoints are
    /// brought up to date first, when the members answer.
    pub async fn cluster_join(&self) -> Result<ClusterJoin, HostError> {
        self.refresh_etcd().await;
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

/// How often the daemon brings `cluster.json`'s etcd endpoints up to date.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// How long one refresh waits for the members' list.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(5);

impl Host {
    /// Rewrites `cluster.json`'s etcd endpoints as the client URLs of the cluster's started
    /// members, when etcd runs as jobs of the platform (an operator's etcd is left as the
    /// operator named it) and the members answer. A host records the members it knew when it
    /// bootstrapped or joined; without this, the first host would hand joining hosts its own
    /// member alone, and a join would fail while that one member is down. Failures are
    /// logged and change nothing. True when the file changed.
    pub async fn refresh_etcd(&self) -> bool {
        let state = &self.inner.config.state;
        // `join` or `leave` may have rewritten (or removed) the file since it was last read.
        let before = match read(state) {
            Ok(Some(before)) => before,
            Ok(None) => {
                crate::host::lock(&self.inner.cluster_etcd).clear();
                return false;
            }
            Err(_) => return false,
        };
        *crate::host::lock(&self.inner.cluster_etcd) = before.etcd.clone();
        if !before.etcd_jobs || before.etcd.is_empty() {
            return false;
        }
        let members = async {
            let mut client = flynn_etcd::connect(&before.etcd, REFRESH_TIMEOUT).await?;
            client.member_list().await
        };
        let list = match tokio::time::timeout(REFRESH_TIMEOUT, members).await {
            Ok(Ok(list)) => list,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "listing the etcd members (cluster.json kept)");
                return false;
            }
            Err(_) => {
                tracing::debug!("listing the etcd members timed out (cluster.json kept)");
                return false;
            }
        };
        let urls = flynn_etcd::client_urls(&list);
        let known: BTreeSet<String> = before.etcd.iter().cloned().collect();
        if urls.is_empty() || urls == known {
            return false;
        }
        // `flynn-host join` or `leave` may have rewritten the file meanwhile: theirs wins.
        if !matches!(read(state), Ok(Some(now)) if now == before) {
            return false;
        }
        let after = ClusterInfo {
            etcd: urls.into_iter().collect(),
            ..before.clone()
        };
        match write(state, &after) {
            Ok(()) => {
                *crate::host::lock(&self.inner.cluster_etcd) = after.etcd.clone();
                tracing::info!(
                    before = %before.etcd.join(","),
                    after = %after.etcd.join(","),
                    "cluster.json: etcd endpoints follow the cluster's members"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "rewriting cluster.json with the etcd members");
                false
            }
        }
    }

    /// Runs [`Host::refresh_etcd`] every [`REFRESH_INTERVAL`] for as long as the daemon runs.
    pub(crate) fn spawn_etcd_refresh(&self) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_INTERVAL).await;
                let Some(inner) = weak.upgrade() else { return };
                Host { inner }.refresh_etcd().await;
            }
        });
    }
}
