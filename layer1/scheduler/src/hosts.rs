//! Following the cluster's hosts: discoverd's `flynn-host` service says which hosts exist,
//! and one follower per host reads its status and jobs, then its job events (server-sent
//! events, never polling). A host whose API stays unreachable is reported lost. A change of a
//! host's registration (its address, or `draining` in its metadata) starts its follower
//! again, which reads the host's status anew.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use discoverd_api::client::Client as Discoverd;
use discoverd_api::Event as DiscoverdEvent;
use host_api::client::Client as HostClient;
use host_api::{
    Endpoint, EventFilter, EventKind, EventPayload, HostStatus, Job, JobAction, JobFilter,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::scheduler::Input;

pub use host_api::HOST_SERVICE;
/// Failed attempts to reach a host's API, one second apart, after which it is lost.
const LOST_AFTER: u32 = 5;
/// How long one request to a host may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// A host as a follower first reads it.
#[derive(Debug, Clone)]
pub struct HostUp {
    /// Its id.
    pub id: String,
    /// Its API.
    pub client: HostClient,
    /// Its status.
    pub status: HostStatus,
    /// Every job it has.
    pub jobs: Vec<Job>,
}

/// Follows discoverd's hosts until the receiver goes away: a follower for each host that
/// registers, stopped (and the host reported lost) when it deregisters or expires.
pub async fn watch(discoverd: Discoverd, token: String, tx: mpsc::Sender<Input>) {
    type Meta = BTreeMap<String, String>;
    let mut followers: BTreeMap<String, (SocketAddr, Meta, JoinHandle<()>)> = BTreeMap::new();
    loop {
        let mut w = crate::watch::open(&discoverd, Some(HOST_SERVICE), "hosts").await;
        let mut seen = Vec::new();
        let mut current = false;
        while let Some(ev) = crate::watch::next(&mut w, "host").await {
            match ev {
                DiscoverdEvent::Up { instance, .. } | DiscoverdEvent::Update { instance, .. } => {
                    if !current {
                        seen.push(instance.id.clone());
                    }
                    let stale = followers.get(&instance.id).is_some_and(|(addr, meta, _)| {
                        *addr != instance.addr || *meta != instance.meta
                    });
                    if stale {
                        if let Some((_, _, t)) = followers.remove(&instance.id) {
                            t.abort();
                        }
                    }
                    if let std::collections::btree_map::Entry::Vacant(v) =
                        followers.entry(instance.id.clone())
                    {
                        tracing::info!(host = %instance.id, addr = %instance.addr, meta = ?instance.meta, "following host");
                        let t = tokio::spawn(follow(
                            instance.id.clone(),
                            instance.addr,
                            token.clone(),
                            tx.clone(),
                        ));
                        v.insert((instance.addr, instance.meta.clone(), t));
                    }
                }
                DiscoverdEvent::Down { instance, .. } => {
                    if let Some((_, _, t)) = followers.remove(&instance.id) {
                        t.abort();
                        tracing::warn!(host = %instance.id, "host left discoverd");
                        if tx.send(Input::HostLost { id: instance.id }).await.is_err() {
                            return;
                        }
                    }
                }
                DiscoverdEvent::Current { .. } => {
                    current = true;
                    // Hosts that went away while the watch was down.
                    let gone: Vec<String> = followers
                        .keys()
                        .filter(|id| !seen.contains(id))
                        .cloned()
                        .collect();
                    for id in gone {
                        if let Some((_, _, t)) = followers.remove(&id) {
                            t.abort();
                        }
                        if tx.send(Input::HostLost { id }).await.is_err() {
                            return;
                        }
                    }
                }
                _ => {}
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, host_api::client::ClientError>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())),
    }
}

/// Follows one host: status and jobs, then job events, again after every break; reports
/// it lost after [`LOST_AFTER`] failed attempts in a row (and up again once it answers).
async fn follow(id: String, addr: SocketAddr, token: String, tx: mpsc::Sender<Input>) {
    let client = HostClient::new(Endpoint::Tcp(addr), Some(token));
    let mut failures = 0u32;
    let mut lost = false;
    loop {
        let err = match follow_once(&id, &client, &tx, &mut failures, &mut lost).await {
            Ok(()) => return,
            Err(e) => e,
        };
        failures += 1;
        tracing::debug!(host = %id, error = %err, failures, "host unreachable");
        if failures >= LOST_AFTER && !lost {
            lost = true;
            tracing::warn!(host = %id, error = %err, "host lost: its API failed {failures} times in a row");
            if tx.send(Input::HostLost { id: id.clone() }).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One connection's worth of following; `Ok` only when the scheduler is gone.
async fn follow_once(
    id: &str,
    client: &HostClient,
    tx: &mpsc::Sender<Input>,
    failures: &mut u32,
    lost: &mut bool,
) -> Result<(), String> {
    let filter = EventFilter {
        kind: Some(EventKind::Job),
        ..EventFilter::default()
    };
    // Subscribe first, then list: nothing between the two is missed.
    let mut events = timed(client.events(&filter)).await?;
    let status = timed(client.status()).await?;
    let jobs = timed(client.jobs(&JobFilter::default())).await?;
    if status.id != id {
        return Err(format!(
            "the host at {} says it is {}, not {id}",
            client.endpoint(),
            status.id
        ));
    }
    *failures = 0;
    *lost = false;
    let up = HostUp {
        id: id.to_string(),
        client: client.clone(),
        status,
        jobs,
    };
    if tx.send(Input::HostUp(Box::new(up))).await.is_err() {
        return Ok(());
    }
    loop {
        match events.next().await {
            Ok(Some(ev)) => {
                let EventPayload::Job { job, action } = ev.payload else {
                    continue;
                };
                let input = Input::HostJob {
                    host: id.to_string(),
                    job,
                    deleted: action == Some(JobAction::Deleted),
                };
                if tx.send(input).await.is_err() {
                    return Ok(());
                }
            }
            Ok(None) => return Err("the event stream ended".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
}
