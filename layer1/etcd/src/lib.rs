//! The platform's etcd clients (discoverd's store, the controller's store, bootstrap): one
//! way to connect, and [`follow_members`], which keeps a client's endpoints in step with
//! the cluster's members, so that a service started when the cluster had one member goes
//! on working when that member is down and others have joined since (as etcd's own client
//! does with its endpoint auto-sync).

use std::collections::BTreeSet;
use std::time::Duration;

pub use etcd_client::{self, Client, Error};

/// How often [`follow_members`] lists the members.
pub const FOLLOW_INTERVAL: Duration = Duration::from_secs(10);

/// Connects to the cluster at `endpoints` (`http://HOST:PORT`): a connect timeout of 5 s,
/// a request timeout of `timeout`, and HTTP/2 pings every 2 s (also while idle) that drop a
/// connection unanswered for 2 s: a member whose host vanished from the network (no reset,
/// its packets dropped) would otherwise keep its connection and take requests until each
/// timed out.
pub async fn connect(endpoints: &[String], timeout: Duration) -> Result<Client, Error> {
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(timeout)
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    Client::connect(endpoints, Some(opts)).await
}

/// How often [`retry`] tries a request again.
pub const RETRIES: u32 = 2;

/// True when `e` says the request reached no member that could answer it: the connection
/// to the member the client chose could not be made or broke, or that member lost its
/// leader. The same request may go to another member.
pub fn unreached(e: &Error) -> bool {
    match e {
        Error::TransportError(_) => true,
        Error::GRpcStatus(s) => s.code() == tonic::Code::Unavailable,
        _ => false,
    }
}

/// Runs `op` and, while it fails [`unreached`], again (at most [`RETRIES`] more times,
/// 100 ms apart), so that one member that vanished costs a request a retry, not a failure.
/// Only for requests that may be applied twice (reads, puts of the same value, deletes).
pub async fn retry<T, F, Fut>(mut op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut tries = 0;
    loop {
        match op().await {
            Err(e) if tries < RETRIES && unreached(&e) => {
                tries += 1;
                tracing::debug!(error = %e, "etcd request reached no member; trying again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r => return r,
        }
    }
}

/// Keeps `client`'s endpoints (first `endpoints`) those of the cluster's started members:
/// every [`FOLLOW_INTERVAL`] it lists them, adds the client URLs of members that joined and
/// drops those of members that left (never the endpoints given, which may be a proxy or a
/// name that no member advertises). Runs on the current tokio runtime for as long as it does.
pub fn follow_members(client: &Client, endpoints: &[String]) -> tokio::task::JoinHandle<()> {
    let mut client = client.clone();
    let given: BTreeSet<String> = endpoints.iter().cloned().collect();
    let mut known = given.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(FOLLOW_INTERVAL).await;
            let Ok(list) = client.member_list().await else {
                continue;
            };
            let now: BTreeSet<String> = list
                .members()
                .iter()
                .flat_map(|m| m.client_urls().iter().cloned())
                .collect();
            if now.is_empty() {
                continue;
            }
            for url in now.difference(&known) {
                match client.add_endpoint(url).await {
                    Ok(()) => tracing::info!(endpoint = %url, "etcd member joined: endpoint added"),
                    Err(e) => {
                        tracing::warn!(endpoint = %url, error = %e, "adding an etcd endpoint")
                    }
                }
            }
            for url in known.difference(&now).filter(|u| !given.contains(*u)) {
                match client.remove_endpoint(url).await {
                    Ok(()) => tracing::info!(endpoint = %url, "etcd member left: endpoint removed"),
                    Err(e) => {
                        tracing::warn!(endpoint = %url, error = %e, "removing an etcd endpoint")
                    }
                }
            }
            known = now.union(&given).cloned().collect();
        }
    })
}
