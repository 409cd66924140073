//! A host leaving its cluster (`flynn-host leave`, after a drain): its etcd member, if it
//! runs one, is removed from the cluster's etcd and its job and data deleted; its discoverd
//! is stopped; `cluster.json` is removed. A host that runs layer-1 services bootstrap
//! started (the registry, the controller, the scheduler, gitreceive) or the only member of
//! the cluster's etcd is refused before anything changes.

use std::net::IpAddr;
use std::path::Path;

use host_api::client::Client;
use host_api::{ClusterInfo, ErrorCode, JobFilter, JobId};

use super::etcd::{remove_member, ETCD_JOB};
use super::{BootstrapError, DISCOVERD_JOB};

/// Layer-1 services only the host that bootstrapped the cluster runs.
const FIRST_HOST_ONLY: [&str; 4] = ["registry", "controller", "scheduler", "gitreceive"];

/// The cluster this host may leave: refused when it belongs to none, runs a service of
/// [`FIRST_HOST_ONLY`], or runs the only member of the cluster's etcd.
pub async fn can_leave(c: &Client, state: &Path) -> Result<ClusterInfo, BootstrapError> {
    let Some(cluster) = crate::cluster::read(state).ok().flatten() else {
        return Err(BootstrapError::Leave(
            "this host belongs to no cluster (its state directory has no cluster.json)".into(),
        ));
    };
    let running: Vec<String> = c
        .jobs(&JobFilter::default())
        .await?
        .into_iter()
        .filter(|j| !j.state.is_final())
        .map(|j| j.id.to_string())
        .collect();
    let first: Vec<&str> = FIRST_HOST_ONLY
        .into_iter()
        .filter(|s| running.iter().any(|r| r == s))
        .collect();
    if !first.is_empty() {
        return Err(BootstrapError::Leave(format!(
            "this host runs the cluster's {} (started by bootstrap, on no other host): it cannot leave",
            first.join(", ")
        )));
    }
    if cluster.etcd_jobs && running.iter().any(|r| r == ETCD_JOB) {
        let others = other_endpoints(c, &cluster).await?;
        if others.is_empty() {
            return Err(BootstrapError::Leave(
                "this host runs the only member of the cluster's etcd: it cannot leave".into(),
            ));
        }
    }
    Ok(cluster)
}

/// The cluster's etcd endpoints but this host's.
async fn other_endpoints(c: &Client, cluster: &ClusterInfo) -> Result<Vec<String>, BootstrapError> {
    let mine = this_ip(c).await?.map(super::etcd::client_url);
    Ok(cluster
        .etcd
        .iter()
        .filter(|e| Some(*e) != mine.as_ref())
        .cloned()
        .collect())
}

async fn this_ip(c: &Client) -> Result<Option<IpAddr>, BootstrapError> {
    Ok(c.status().await?.api.map(|a| a.ip()))
}

/// Leaves `cluster` (checked by [`can_leave`], the host drained); `progress` hears one line
/// per step.
pub async fn leave(
    c: &Client,
    state: &Path,
    cluster: &ClusterInfo,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), BootstrapError> {
    let etcd: JobId = ETCD_JOB.parse().expect("a valid job id");
    let has_member = match c.job(&etcd).await {
        Ok(_) => true,
        Err(e) if e.code() == Some(ErrorCode::NoSuchJob) => false,
        Err(e) => return Err(e.into()),
    };
    if cluster.etcd_jobs && has_member {
        let others = other_endpoints(c, cluster).await?;
        if let Some(ip) = this_ip(c).await? {
            if let Some((name, left)) = remove_member(&others, ip).await? {
                progress(&format!(
                    "etcd: removed member {name}; the cluster has {left} members"
                ));
            }
        }
        c.delete_job(&etcd, true).await?;
        super::boot::remove_volume(c, super::etcd::ETCD_VOLUME).await?;
        progress("etcd: job and data removed");
    }
    let discoverd: JobId = DISCOVERD_JOB.parse().expect("a valid job id");
    match c.delete_job(&discoverd, true).await {
        Ok(()) => progress("discoverd: stopped"),
        Err(e) if e.code() == Some(ErrorCode::NoSuchJob) => {}
        Err(e) => return Err(e.into()),
    }
    let path = state.join(crate::cluster::CLUSTER_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(BootstrapError::Key(path, e)),
    }
    Ok(())
}
