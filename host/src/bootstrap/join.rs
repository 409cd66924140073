//! A host joining a cluster (`flynn-host join`): it fetches the cluster and its shared
//! secrets from a host of the cluster, records them in its state directory, restarts its
//! daemon in place when the daemon's token or discoverd key change, starts a discoverd of its
//! own on the cluster's etcd, and waits until it is registered in the cluster and the
//! scheduler runs the router on it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use host_api::client::Client;
use host_api::ClusterInfo;

use super::{bootstrap, BootstrapError, BootstrapOptions};
use crate::host::{CLUSTER_KEY_FILE, DISCOVERD_KEY_FILE};

/// How to join.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The daemon's state directory.
    pub state: PathBuf,
    /// Where the workspace binaries are (discoverd's image is built from them).
    pub bin_dir: PathBuf,
    /// discoverd's HTTP port on this host.
    pub http_port: u16,
    /// Resolvers discoverd forwards names outside its zone to.
    pub upstream: Vec<String>,
    /// How long each step may take.
    pub wait: Duration,
}

/// What joining did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// This host's id.
    pub host_id: String,
    /// The cluster.
    pub cluster: ClusterInfo,
    /// False when this host had joined already and nothing changed.
    pub changed: bool,
}

/// Joins this host (daemon `c`) to the cluster of the host `member` answers for;
/// `progress` hears one line per step.
pub async fn join(
    c: &Client,
    member: &Client,
    opts: &JoinOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Joined, BootstrapError> {
    let theirs = member.status().await?;
    let bundle = member.cluster_join().await?;
    let well_formed = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic());
    if ![
        &bundle.host_token,
        &bundle.discoverd_key,
        &bundle.cluster_key,
    ]
    .iter()
    .all(|s| well_formed(s))
        || bundle.cluster.etcd.is_empty()
    {
        return Err(BootstrapError::BadJoin(theirs.id));
    }
    let mine = c.status().await?;
    if mine.id == theirs.id {
        return Err(BootstrapError::JoinSelf);
    }
    if mine.discoverd.is_none() {
        return Err(BootstrapError::NoDiscoverd);
    }
    // Where this host's etcd member would listen: its API's LAN address.
    let lan_ip = super::lan_api(&mine);
    if bundle.cluster.etcd_jobs && lan_ip.is_none() {
        return Err(BootstrapError::NoHostApi);
    }
    if let Some(other) = crate::cluster::read(&opts.state).ok().flatten() {
        if other.controller != bundle.cluster.controller || other.domain != bundle.cluster.domain {
            return Err(BootstrapError::OtherCluster(other.controller));
        }
    }
    progress(&format!(
        "cluster {}: controller {}, etcd {}",
        bundle.cluster.domain,
        bundle.cluster.controller,
        bundle.cluster.etcd.join(",")
    ));

    // The secrets every host shares; the daemon reads the token and discoverd's key when it
    // starts, so it restarts (in place, its jobs running on) when they change.
    let mut restart = false;
    let mut changed = false;
    for (file, secret, read_at_start) in [
        ("token", &bundle.host_token, true),
        (DISCOVERD_KEY_FILE, &bundle.discoverd_key, true),
        (CLUSTER_KEY_FILE, &bundle.cluster_key, false),
    ] {
        let path = opts.state.join(file);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old.trim() != secret {
            crate::secret::write_file(&path, &format!("{secret}\n"), 0o600)
                .map_err(|e| BootstrapError::Key(path.clone(), e))?;
            restart |= read_at_start;
            changed = true;
        }
    }
    super::layer1::write_registry_auth(&opts.state, &bundle.cluster.registry, &bundle.cluster_key)?;
    if restart {
        progress(
            "daemon: restarting with the cluster's token and discoverd key (jobs keep running)",
        );
        restart_daemon(c, &mine, opts.wait).await?;
        progress("ok: the daemon answers again");
    }

    // A host that left a cluster stays drained: joining one ends that (before its own
    // etcd member and discoverd start here).
    if c.status().await?.draining {
        c.set_draining(false).await?;
        progress("daemon: drain ended: the host takes jobs");
        changed = true;
    }

    // An etcd member on this host while the cluster's etcd (run by the platform) has fewer
    // than three; the cluster as recorded here lists every member.
    let mut cluster = bundle.cluster.clone();
    if let (true, Some(ip)) = (cluster.etcd_jobs, lan_ip) {
        let l1 = super::Layer1Options {
            state: opts.state.clone(),
            bin_dir: opts.bin_dir.clone(),
            image_cache: images::build::DEFAULT_CACHE.into(),
            domain: cluster.domain.clone(),
            discoverd_port: opts.http_port,
            wait: opts.wait,
            tls: Default::default(),
            etcd: Vec::new(),
            etcd_jobs: true,
        };
        let b = super::boot::Boot {
            c,
            opts: &l1,
            progress,
            key: "",
        };
        // The hosts alive, as the cluster's discoverd (on the member host) lists them; not
        // known when it does not answer, and then no member counts as dead.
        let alive = match theirs.api {
            Some(api) => {
                let url = format!("http://{}:{}", api.ip(), opts.http_port);
                let d = discoverd_api::client::Client::new(url.parse().expect("a valid URL"));
                d.instances(host_api::HOST_SERVICE)
                    .await
                    .ok()
                    .map(|all| all.into_iter().map(|i| i.id).collect::<Vec<_>>())
            }
            None => None,
        };
        let (endpoints, started) =
            super::etcd::join(&b, &bundle.cluster.etcd, &mine.id, ip, alive.as_deref()).await?;
        cluster.etcd = endpoints;
        changed |= started;
    }
    // Recorded (members that joined since are a refresh of the record, not a change).
    let path = opts.state.join(crate::cluster::CLUSTER_FILE);
    let recorded = crate::cluster::read(&opts.state).ok().flatten();
    if recorded.as_ref() != Some(&cluster) {
        crate::cluster::write(&opts.state, &cluster).map_err(|e| BootstrapError::Key(path, e))?;
        let etcd = cluster.etcd.clone();
        changed |= recorded.map(|r| host_api::ClusterInfo { etcd, ..r }) != Some(cluster.clone());
    }

    // discoverd on the cluster's etcd: every host's discoverd shares its state. One this host
    // ran before on other state (its own volume, another etcd) starts again.
    let id: host_api::JobId = super::DISCOVERD_JOB.parse().expect("a valid job id");
    if let Ok(j) = c.job(&id).await {
        let args = &j.config.config.args;
        let on_etcd = args.windows(2).any(|w| {
            w[0] == "--etcd" && w[1].split(',').any(|e| cluster.etcd.iter().any(|m| m == e))
        });
        if !j.state.is_final() && !on_etcd {
            progress("discoverd: ran on other state; starting it again on the cluster's etcd");
            c.delete_job(&id, true).await?;
        }
    }
    let done = bootstrap(
        c,
        BootstrapOptions {
            state: opts.state.clone(),
            bin_dir: opts.bin_dir.clone(),
            http_port: opts.http_port,
            etcd: cluster.etcd.clone(),
            upstream: opts.upstream.clone(),
            wait: opts.wait,
        },
    )
    .await?;
    if done.started {
        progress("discoverd: started on the cluster's etcd");
        changed = true;
    }
    let d = discoverd_api::client::Client::new(
        format!("http://127.0.0.1:{}", opts.http_port)
            .parse()
            .expect("a valid URL"),
    );
    until(
        opts.wait,
        "this host is registered in the cluster's discoverd (a daemon registers only with a TCP API: --listen http://LAN_IP:1113)",
        || async {
            d.instances(host_api::HOST_SERVICE)
                .await
                .is_ok_and(|all| all.iter().any(|i| i.id == mine.id))
        },
    )
    .await?;
    progress(&format!(
        "ok: host {} is registered in the cluster",
        mine.id
    ));
    until(
        opts.wait,
        "the scheduler runs the router on this host",
        || async { matches!(super::router::scheduled(c).await, Ok(Some(_))) },
    )
    .await?;
    progress("ok: the scheduler runs the router on this host");
    Ok(Joined {
        host_id: mine.id,
        cluster,
        changed,
    })
}

/// Sends the daemon SIGHUP and waits until a new daemon process answers.
async fn restart_daemon(
    c: &Client,
    before: &host_api::HostStatus,
    wait: Duration,
) -> Result<(), BootstrapError> {
    let pid = nix::unistd::Pid::from_raw(before.pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP)
        .map_err(|e| BootstrapError::Restart(format!("signalling pid {pid}: {e}")))?;
    until(
        wait,
        "the daemon answers again after its restart",
        || async { c.status().await.is_ok_and(|s| s.started != before.started) },
    )
    .await
}

async fn until<F, Fut>(wait: Duration, what: &str, mut ready: F) -> Result<(), BootstrapError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + wait;
    while !ready().await {
        if Instant::now() > deadline {
            return Err(BootstrapError::NotReady {
                what: what.to_string(),
                wait,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
