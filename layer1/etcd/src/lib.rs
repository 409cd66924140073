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

/// How often [`retry`] tries a request again ([`pauses`]): 100 ms after the first failure,
/// then twice as long each time (3.1 s in all), long enough for the client to connect again
/// after a connection dropped on a machine too busy to answer pings in time.
pub const RETRIES: u32 = 5;

/// True when `e` says the request reached no member that could answer it: the connection
/// to the member the client chose could not be made or broke (also while the request was
/// under way, which the client reports as status `Unknown`, "transport error"), or that
/// member lost its leader. The same request may go to another member.
pub fn unreached(e: &Error) -> bool {
    match e {
        Error::TransportError(_) => true,
        Error::GRpcStatus(s) => {
            s.code() == tonic::Code::Unavailable
                || (s.code() == tonic::Code::Unknown && s.message() == "transport error")
        }
        _ => false,
    }
}

/// The pauses before each further try of a request that reached no member: [`RETRIES`] of
/// them, from 100 ms, doubling. A request that must not be applied twice uses them with a
/// check of its own between tries; others use [`retry`].
pub fn pauses() -> impl Iterator<Item = Duration> {
    (0..RETRIES).map(|i| Duration::from_millis(100 << i))
}

/// Runs `op` and, while it fails [`unreached`], again after each of [`pauses`], so that one
/// member that vanished, or a connection that dropped, costs a request a retry, not a
/// failure.
/// Only for requests that may be applied twice (reads, puts of the same value, deletes).
pub async fn retry<T, F, Fut>(mut op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut pauses = pauses();
    loop {
        match op().await {
            Err(e) if unreached(&e) => match pauses.next() {
                Some(pause) => {
                    tracing::debug!(error = %e, "etcd request reached no member; trying again");
                    tokio::time::sleep(pause).await;
                }
                None => return Err(e),
            },
            r => return r,
        }
    }
}

/// The variable in which `flynn-host` gives the host-network jobs it starts the cluster's
/// etcd endpoints as its `cluster.json` lists them at that start (the client URLs of the
/// members it last saw). Services add them to the endpoints they were configured with
/// ([`endpoints`]): those were written down once (in a release, or in a job's arguments)
/// and may name only members that are gone or down since.
pub const CLUSTER_ENDPOINTS_ENV: &str = "CLUSTER_ETCD_ENDPOINTS";

/// The endpoints to connect to: `given` (what the service was configured with), then those
/// of `members` not among them.
pub fn endpoints(given: &[String], members: &[String]) -> Vec<String> {
    let mut all = given.to_vec();
    for m in members {
        if !all.contains(m) {
            all.push(m.clone());
        }
    }
    all
}

/// The client URLs of the members in `list`.
pub fn client_urls(list: &etcd_client::MemberListResponse) -> BTreeSet<String> {
    list.members()
        .iter()
        .flat_map(|m| m.client_urls().iter().cloned())
        .collect()
}

/// Keeps `client`'s endpoints (first `given`, then `members`, as [`endpoints`] joins them)
/// those of the cluster's started members: every [`FOLLOW_INTERVAL`] it lists them, adds the
/// client URLs of members that joined and drops those of members that left (never the
/// endpoints given, which may be a proxy or a name that no member advertises). Runs on the
/// current tokio runtime for as long as it does.
pub fn follow_members(
    client: &Client,
    given: &[String],
    members: &[String],
) -> tokio::task::JoinHandle<()> {
    let mut client = client.clone();
    let given: BTreeSet<String> = given.iter().cloned().collect();
    let mut known: BTreeSet<String> = given.iter().chain(members).cloned().collect();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(FOLLOW_INTERVAL).await;
            let Ok(list) = client.member_list().await else {
                continue;
            };
            let now = client_urls(&list);
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

/// Connects (as [`connect`] does) to a service's configured endpoints `given` and the
/// `members` its host gave it ([`CLUSTER_ENDPOINTS_ENV`]), then keeps the client's endpoints
/// those of the cluster's members ([`follow_members`]), so that one member's loss, and
/// members that join later, are survived.
pub async fn connect_following(
    given: &[String],
    members: &[String],
    timeout: Duration,
) -> Result<Client, Error> {
    let client = connect(&endpoints(given, members), timeout).await?;
    follow_members(&client, given, members);
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_broken_under_a_request_reached_no_member() {
        let status = |code, msg: &str| Error::GRpcStatus(tonic::Status::new(code, msg));
        assert!(unreached(&status(tonic::Code::Unknown, "transport error")));
        assert!(unreached(&status(
            tonic::Code::Unavailable,
            "tcp connect error"
        )));
        assert!(!unreached(&status(
            tonic::Code::Unknown,
            "etcdserver: unhealthy cluster"
        )));
        assert!(!unreached(&status(
            tonic::Code::InvalidArgument,
            "transport error"
        )));
    }

    #[test]
    fn pauses_double_from_100_ms_five_times() {
        let ms: Vec<u128> = pauses().map(|p| p.as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600]);
    }

    #[test]
    fn endpoints_keep_the_given_first_and_add_each_member_once() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            endpoints(
                &s(&["http://a:2379"]),
                &s(&["http://b:2379", "http://a:2379", "http://c:2379"])
            ),
            s(&["http://a:2379", "http://b:2379", "http://c:2379"])
        );
        assert_eq!(
            endpoints(&s(&["http://a:2379"]), &[]),
            s(&["http://a:2379"])
        );
    }
}
