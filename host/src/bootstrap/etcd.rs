//! etcd run by the platform: on a cluster whose first host's daemon API is on a LAN address
//! (and whose operator named no etcd of their own), bootstrap starts a one-member etcd as
//! job `etcd` on that host, and each host that joins while the cluster has fewer than three
//! members adds one on itself (`member add`, then a job started with the cluster's
//! membership). Each member is a host-network job of the `images/` etcd recipe (Debian's
//! etcd-server), named after its host, with its data on the volume `etcd-data`, on the
//! host's LAN address.

use std::net::IpAddr;
use std::time::Duration;

use flynn_etcd::etcd_client;
use flynn_etcd::Client as EtcdClient;
use host_api::client::Client;
use host_api::{CreateJob, JobId};

use super::boot::{http_status, image_tag, job, volume, Boot};
use super::layer1::Layer1Options;
use super::BootstrapError;

/// The job id etcd runs as on a host that has a member.
pub const ETCD_JOB: &str = "etcd";
/// etcd's client port on a member's host.
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// etcd's peer port on a member's host.
pub const ETCD_PEER_PORT: u16 = 2380;
/// How many hosts run a member: the first three (a majority survives one host's loss).
pub const ETCD_MEMBERS: usize = 3;
/// The volume a member keeps its data on.
pub(super) const ETCD_VOLUME: &str = "etcd-data";

/// The client URL of the member on the host at `ip`.
pub fn client_url(ip: IpAddr) -> String {
    format!("http://{}", std::net::SocketAddr::new(ip, ETCD_CLIENT_PORT))
}

fn peer_url(ip: IpAddr) -> String {
    format!("http://{}", std::net::SocketAddr::new(ip, ETCD_PEER_PORT))
}

/// The member job of host `name` at `ip` (job `etcd`, image `flynn/etcd:latest`, host
/// network, data on the volume `etcd-data`); `initial` is the cluster's membership
/// (`NAME=PEER_URL,...`), `state` `new` (a member of a new cluster) or `existing`.
pub fn member_job(name: &str, ip: IpAddr, initial: &str, state: &str) -> CreateJob {
    let (client, peer) = (client_url(ip), peer_url(ip));
    let mut req = job(ETCD_JOB, &[]);
    req.config.image = image_tag("etcd");
    req.config.args = [
        "--name",
        name,
        "--data-dir",
        "/data/etcd",
        "--listen-client-urls",
        &client,
        "--advertise-client-urls",
        &client,
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
        "--initial-cluster",
        initial,
        "--initial-cluster-state",
        state,
        "--initial-cluster-token",
        "flynn",
        // Elections that a busy host does not trigger: with the defaults (100 ms, 1 s) a
        // member whose fsync or CPU share stalls for a second calls one.
        "--heartbeat-interval",
        "250",
        "--election-timeout",
        "2500",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    req.config.volumes = vec![volume(ETCD_VOLUME)];
    // etcd exits 0 only when the cluster removed its member ("the data-dir used by this
    // member must be removed"); a crash, a kill or a stop (etcd re-raises SIGTERM) is a
    // failure. So a member removed while its host was away is not started again, forever.
    req.restart = host_api::RestartPolicy::OnFailure;
    req
}

/// Waits until the member at `ip` answers healthy (it has a leader).
async fn healthy(b: &Boot<'_>, ip: IpAddr) -> Result<(), BootstrapError> {
    let addr = std::net::SocketAddr::new(ip, ETCD_CLIENT_PORT);
    let host = addr.to_string();
    b.until(
        &format!("etcd answers healthy on {}", client_url(ip)),
        ETCD_JOB,
        || async { http_status(addr, &host, "/health").await == Some(200) },
    )
    .await
}

/// On the first host: a one-member etcd (started unless it runs); returns its client URL.
async fn first(b: &Boot<'_>, host_id: &str, ip: IpAddr) -> Result<Vec<String>, BootstrapError> {
    if !b.runs(ETCD_JOB).await? {
        b.image("etcd").await?;
        b.volume(ETCD_VOLUME).await?;
        let initial = format!("{host_id}={}", peer_url(ip));
        b.start(member_job(host_id, ip, &initial, "new")).await?;
    }
    healthy(b, ip).await?;
    Ok(vec![client_url(ip)])
}

/// Where the cluster that bootstrap makes on this host keeps its state, as (etcd endpoints,
/// whether etcd runs as jobs of the platform): the operator's etcd (`opts.etcd`); what an
/// earlier bootstrap of this host chose (an etcd job is started again if it stopped); a
/// one-member etcd started here when the daemon's API is on a LAN address other hosts
/// reach; or none (empty: this host's embedded stores, and no host can join).
pub async fn cluster_store(
    c: &Client,
    opts: &Layer1Options,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(Vec<String>, bool), BootstrapError> {
    if !opts.etcd.is_empty() {
        return Ok((opts.etcd.clone(), false));
    }
    let earlier = crate::cluster::read(&opts.state).ok().flatten();
    if let Some(info) = &earlier {
        if !info.etcd_jobs {
            return Ok((info.etcd.clone(), false));
        }
    }
    let status = c.status().await?;
    let Some(ip) = super::lan_api(&status) else {
        return Ok((Vec::new(), false));
    };
    let b = Boot {
        c,
        opts,
        progress,
        key: "",
    };
    if let Some(info) = &earlier {
        removed_while_away(c, info, ip).await?;
    }
    let mut endpoints = first(&b, &status.id, ip).await?;
    if let Some(info) = earlier {
        // Members that joined since are listed there already.
        endpoints = info.etcd;
    }
    Ok((endpoints, true))
}

/// On a host whose earlier bootstrap started an etcd member (`info`): refuses to start that
/// member again when its job has ended and the cluster's other members no longer list it.
/// They removed it while the host was away (a dead member replaced by a joining host); it
/// learnt so and exited 0, and started again it would only exit again. When the others do
/// not answer, nothing is refused (the member may be all there is).
async fn removed_while_away(
    c: &Client,
    info: &host_api::ClusterInfo,
    ip: IpAddr,
) -> Result<(), BootstrapError> {
    let jid: JobId = ETCD_JOB.parse().expect("a valid job id");
    let ended = match c.job(&jid).await {
        Ok(j) if j.state.is_final() => j,
        _ => return Ok(()),
    };
    let mine = client_url(ip);
    let others: Vec<String> = info.etcd.iter().filter(|e| **e != mine).cloned().collect();
    if others.is_empty() {
        return Ok(());
    }
    let listed = async {
        let mut client = connect(&others).await?;
        members(&mut client, &others).await
    };
    let Ok(Ok(all)) = tokio::time::timeout(Duration::from_secs(10), listed).await else {
        return Ok(());
    };
    let peer = peer_url(ip);
    if all.iter().any(|m| m.peers.contains(&peer)) {
        return Ok(());
    }
    let how = match ended.exit.as_ref().and_then(|e| e.code) {
        Some(code) => format!("exited with code {code}"),
        None => ended.state.to_string(),
    };
    Err(BootstrapError::EtcdForeign(format!(
        "etcd: this host's member (job etcd, {how}) is no member of the cluster any more: the other members ({}) removed it while this host was away. Join the cluster again through another host (flynn-host join URL TOKEN, with that host's API URL): that removes the old member's job and data and adds this host's member again if the cluster has fewer than 3",
        others.join(",")
    )))
}

/// A member as the cluster lists it.
struct Member {
    id: u64,
    name: String,
    peers: Vec<String>,
    clients: Vec<String>,
}

async fn connect(endpoints: &[String]) -> Result<EtcdClient, BootstrapError> {
    flynn_etcd::connect(endpoints, Duration::from_secs(10))
        .await
        .map_err(|e| etcd_error(endpoints, e))
}

fn etcd_error(endpoints: &[String], e: etcd_client::Error) -> BootstrapError {
    BootstrapError::Etcd(endpoints.join(","), Box::new(e))
}

async fn members(
    client: &mut EtcdClient,
    endpoints: &[String],
) -> Result<Vec<Member>, BootstrapError> {
    // A read: tried again on another endpoint when one of them is a member that is gone.
    let list = flynn_etcd::retry(|| {
        let mut client = client.clone();
        async move { client.member_list().await }
    })
    .await
    .map_err(|e| etcd_error(endpoints, e))?;
    Ok(list
        .members()
        .iter()
        .map(|m| Member {
            id: m.id(),
            name: m.name().to_string(),
            peers: m.peer_urls().to_vec(),
            clients: m.client_urls().to_vec(),
        })
        .collect())
}

/// On a joining host: adds a member on this host while the cluster (at `endpoints`) has
/// fewer than [`ETCD_MEMBERS`], or starts again the member this host is already; returns
/// the client URLs of every started member and whether anything was started. A member added
/// whose job does not come up healthy is removed again, so the cluster is left as it was.
/// With the cluster full, a dead member (see [`dead_member`]; `alive`: the host ids
/// registered in discoverd, if known) is replaced by this host's.
pub(super) async fn join(
    b: &Boot<'_>,
    endpoints: &[String],
    host_id: &str,
    ip: IpAddr,
    alive: Option<&[String]>,
) -> Result<(Vec<String>, bool), BootstrapError> {
    // One endpoint that answers: the list may hold a dead member's (the one this join may
    // replace), and a request the client sends there fails; the membership changes below
    // are made through one member, as `etcdctl` makes them.
    let mut client = connect(&answering(endpoints).await).await?;
    let mut all = members(&mut client, endpoints).await?;
    let peer = peer_url(ip);
    let listed = all.iter().any(|m| m.peers.contains(&peer));
    if let (false, true, Some(alive)) = (listed, all.len() >= ETCD_MEMBERS, alive) {
        if let Some(dead) = dead_member(&all, alive).await {
            client
                .member_remove(dead.id)
                .await
                .map_err(|e| etcd_error(endpoints, e))?;
            (b.progress)(&format!(
                "etcd: member {} ({}) does not answer and its host is gone from discoverd: removed it, this host replaces it",
                dead.name,
                dead.clients.join(",")
            ));
            all = members(&mut client, endpoints).await?;
        }
    }
    let mut changed = false;
    let listed = all.iter().find(|m| m.peers.contains(&peer));
    if listed.is_none() {
        leftover_member(b).await?;
    }
    match listed {
        Some(m) if b.runs(ETCD_JOB).await? => {
            (b.progress)(&format!("etcd: this host is member {} already", m.name));
        }
        Some(m) => {
            // Added by a join cut short before its member started.
            (b.progress)("etcd: this host is a member whose job is not running; starting it");
            let name = if m.name.is_empty() { host_id } else { &m.name };
            let initial = membership(&all, Some(m.id), name, &peer);
            b.image("etcd").await?;
            b.volume(ETCD_VOLUME).await?;
            b.start(member_job(name, ip, &initial, "existing")).await?;
            changed = true;
        }
        None if all.len() >= ETCD_MEMBERS => {
            (b.progress)(&format!(
                "etcd: the cluster has {} members already; none runs on this host",
                all.len()
            ));
            return Ok((all.into_iter().flat_map(|m| m.clients).collect(), false));
        }
        None => {
            if let Some(m) = all.iter().find(|m| m.name.is_empty()) {
                return Err(BootstrapError::EtcdForeign(format!(
                    "etcd member {:x} ({}) was added but never started, and the cluster cannot add another meanwhile: start it, or remove it with etcdctl member remove {:x}, then join again",
                    m.id,
                    m.peers.join(","),
                    m.id
                )));
            }
            b.image("etcd").await?;
            // Data an earlier member left here belongs to no member of this cluster.
            if super::boot::remove_volume(b.c, ETCD_VOLUME).await? {
                (b.progress)("etcd: removed the data of an earlier member");
            }
            b.volume(ETCD_VOLUME).await?;
            let id = add_member(b, &mut client, endpoints, &peer).await?;
            (b.progress)(&format!(
                "etcd: added member {host_id} ({peer}); the cluster has {} members",
                all.len() + 1
            ));
            let started = async {
                let initial = membership(&all, None, host_id, &peer);
                b.start(member_job(host_id, ip, &initial, "existing"))
                    .await?;
                healthy(b, ip).await
            }
            .await;
            if let Err(e) = started {
                // The cluster waits on a member that never comes: take it back out.
                let jid: JobId = ETCD_JOB.parse().expect("a valid job id");
                let _ = b.c.delete_job(&jid, true).await;
                let _ = client.member_remove(id).await;
                return Err(e);
            }
            return Ok((clients(&mut client, endpoints).await?, true));
        }
    }
    healthy(b, ip).await?;
    Ok((clients(&mut client, endpoints).await?, changed))
}

/// The first of `endpoints` that [`answers`], alone; all of them when none does.
async fn answering(endpoints: &[String]) -> Vec<String> {
    for url in endpoints {
        if answers(url).await {
            return vec![url.clone()];
        }
    }
    endpoints.to_vec()
}

/// True when something answers `GET /health` on the client URL `url` (one this cannot
/// check, not `http://IP:PORT`, counts as answering).
async fn answers(url: &str) -> bool {
    match url
        .strip_prefix("http://")
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
    {
        Some(addr) => http_status(addr, &addr.to_string(), "/health")
            .await
            .is_some(),
        None => true,
    }
}

/// On a host that is no member of the cluster's etcd: refuses an etcd job that runs here;
/// removes one that ended, and its data. That is the member of a host the cluster took for
/// dead and removed while it was away: back, it learnt so from the others and exited 0
/// (etcd's "the data-dir used by this member must be removed"), and its restart policy
/// `on-failure` left it ended.
async fn leftover_member(b: &Boot<'_>) -> Result<(), BootstrapError> {
    let id: JobId = ETCD_JOB.parse().expect("a valid job id");
    let job = match b.c.job(&id).await {
        Ok(j) => j,
        Err(e) if e.code() == Some(host_api::ErrorCode::NoSuchJob) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !job.state.is_final() {
        return Err(BootstrapError::EtcdForeign(
            "an etcd job runs on this host that is no member of the cluster's etcd: remove it (flynn-host rm -f etcd, then flynn-host volume rm etcd-data) and join again".into(),
        ));
    }
    b.c.delete_job(&id, true).await?;
    super::boot::remove_volume(b.c, ETCD_VOLUME).await?;
    (b.progress)(&format!(
        "etcd: this host's earlier member ({}) is no member of the cluster (it was removed while its host was away): removed its job and data",
        job.state
    ));
    Ok(())
}

/// A member that is dead as far as anyone can tell: its host (the member's name) is not
/// registered in discoverd (`alive`), so its daemon has not heartbeated for a TTL, and
/// nothing answers `GET /health` on any of its client URLs. etcd's own way to replace a
/// failed member is to remove it before adding the new one, which keeps the quorum the
/// survivors hold. A member added but never started (no name) is not taken for dead.
async fn dead_member<'a>(all: &'a [Member], alive: &[String]) -> Option<&'a Member> {
    for m in all {
        if m.name.is_empty() || alive.contains(&m.name) {
            continue;
        }
        let mut any = false;
        for url in &m.clients {
            if answers(url).await {
                any = true;
                break;
            }
        }
        if !any {
            return Some(m);
        }
    }
    None
}

/// Removes the member at `ip` from the cluster at `endpoints` (its other members); returns
/// its name and how many members are left, or `None` when it is no member.
pub(super) async fn remove_member(
    endpoints: &[String],
    ip: IpAddr,
) -> Result<Option<(String, usize)>, BootstrapError> {
    let mut client = connect(endpoints).await?;
    let all = members(&mut client, endpoints).await?;
    let peer = peer_url(ip);
    let Some(m) = all.iter().find(|m| m.peers.contains(&peer)) else {
        return Ok(None);
    };
    client
        .member_remove(m.id)
        .await
        .map_err(|e| etcd_error(endpoints, e))?;
    Ok(Some((m.name.clone(), all.len() - 1)))
}

/// `member add` of `peer`; returns the new member's id. etcd refuses one as `unhealthy
/// cluster` until every member has been connected a few seconds (a member that just joined
/// has not): tried again meanwhile, as is one whose connection dropped.
async fn add_member(
    b: &Boot<'_>,
    client: &mut EtcdClient,
    endpoints: &[String],
    peer: &str,
) -> Result<u64, BootstrapError> {
    let deadline = std::time::Instant::now() + b.opts.wait;
    let mut said = false;
    loop {
        match client.member_add([peer], None).await {
            Ok(added) => return Ok(added.member().map(|m| m.id()).unwrap_or_default()),
            // The connection dropped (a busy machine, a member gone): the request may have
            // been applied. Listed with this peer URL, it was; else it is asked again.
            Err(e) if flynn_etcd::unreached(&e) && std::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "adding an etcd member: no answer; looking");
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Ok(all) = members(client, endpoints).await {
                    if let Some(m) = all.iter().find(|m| m.peers.iter().any(|p| p == peer)) {
                        return Ok(m.id);
                    }
                }
            }
            Err(e)
                if e.to_string().contains("unhealthy cluster")
                    && std::time::Instant::now() < deadline =>
            {
                if !said {
                    (b.progress)("etcd: waiting until every member is connected to add one");
                    said = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(etcd_error(endpoints, e)),
        }
    }
}

/// `--initial-cluster` for a member `name` at `peer` joining the started members of `all`
/// (but `this`, its own entry when listed already).
fn membership(all: &[Member], this: Option<u64>, name: &str, peer: &str) -> String {
    all.iter()
        .filter(|m| Some(m.id) != this && !m.name.is_empty())
        .map(|m| format!("{}={}", m.name, m.peers.join(",")))
        .chain([format!("{name}={peer}")])
        .collect::<Vec<_>>()
        .join(",")
}

/// The client URLs of every started member.
async fn clients(
    client: &mut EtcdClient,
    endpoints: &[String],
) -> Result<Vec<String>, BootstrapError> {
    Ok(members(client, endpoints)
        .await?
        .into_iter()
        .flat_map(|m| m.clients)
        .collect())
}
