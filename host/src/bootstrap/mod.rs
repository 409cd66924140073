//! Bootstrapping layer 1 on a host: builds the images it needs from this workspace's binaries
//! (the `images/` recipes) straight into the host's image store, and starts discoverd as an
//! ordinary job (host network, state on a volume, DNS on the bridge gateway, the platform
//! key as a read-only file). The CLI's `bootstrap` and a controller both call [`bootstrap`];
//! with a domain, [`layer1()`] then brings up the rest of layer 1 on the host.

mod boot;
mod etcd;
mod handover;
mod join;
mod layer1;
mod leave;
mod router;
mod tls;

pub use etcd::{
    cluster_store, member_job as etcd_member_job, ETCD_CLIENT_PORT, ETCD_JOB, ETCD_MEMBERS,
    ETCD_PEER_PORT,
};
pub use join::{join, JoinOptions, Joined};
pub use layer1::{
    layer1, Layer1, Layer1Options, CONTROLLER_PORT, GITRECEIVE_PORT, REGISTRY_PORT,
    ROUTER_API_PORT, ROUTER_HTTPS_PORT, ROUTER_HTTP_PORT, SCHEDULER_PORT, SYSTEM_APPS,
};
pub use leave::{can_leave, leave};
pub use tls::{ClusterTls, OwnCert, TLS_DIR};

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use host_api::client::{Client, ClientError};
use host_api::{
    BindMount, CreateJob, ErrorCode, JobConfig, JobId, JobState, NetworkMode, VolumeMount,
};

/// The job id discoverd runs as.
pub const DISCOVERD_JOB: &str = "discoverd";
/// The image discoverd is built as.
pub const DISCOVERD_IMAGE: &str = "flynn/discoverd:latest";
/// The volume discoverd keeps its embedded store on.
const DISCOVERD_VOLUME: &str = "discoverd-data";
/// Where the platform key is in discoverd's job.
const KEY_IN_JOB: &str = "/etc/discoverd.key";

/// What to bootstrap and where.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    /// The daemon's state directory (its image store is imported into directly).
    pub state: PathBuf,
    /// Where the workspace binaries are.
    pub bin_dir: PathBuf,
    /// discoverd's HTTP port on the host.
    pub http_port: u16,
    /// etcd endpoints for discoverd's state (so the discoverds of several hosts share it);
    /// empty keeps its state on a volume.
    pub etcd: Vec<String>,
    /// Resolvers discoverd forwards names outside its zone to (`IP`s); none: it refuses
    /// those names at once.
    pub upstream: Vec<String>,
    /// How long to wait for discoverd to answer.
    pub wait: Duration,
}

/// What bootstrapping did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrapped {
    /// The discoverd image's manifest digest.
    pub manifest: String,
    /// False when discoverd was running already (and was left alone).
    pub started: bool,
    /// The bridge gateway, where jobs reach discoverd (HTTP and DNS).
    pub gateway: Ipv4Addr,
}

/// Bootstrapping that failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// An image recipe could not be read.
    #[error("reading the image recipe {0}")]
    Recipe(String, #[source] images::recipe::RecipeError),
    /// An image could not be built.
    #[error("building image {0}")]
    Build(String, #[source] images::BuildError),
    /// The host's image store could not be opened.
    #[error("opening the host's image store under {0}")]
    Store(PathBuf, #[source] pinkerton::store::StoreError),
    /// An image could not be imported into the store.
    #[error("importing image {0} into the host's store")]
    Import(String, #[source] Box<images::ImportError>),
    /// An image could not be pushed to the cluster registry.
    #[error("pushing {0} to the cluster registry")]
    Push(String, #[source] Box<pinkerton::push::PushError>),
    /// A key file could not be read or made.
    #[error("reading or creating {0}")]
    Key(PathBuf, #[source] std::io::Error),
    /// The daemon or the controller refused or failed a request.
    #[error("asking the host daemon or the controller")]
    Host(#[from] ClientError),
    /// discoverd did not come up.
    #[error("discoverd did not answer on 127.0.0.1:{port} within {} s; see the log of job {DISCOVERD_JOB}", .wait.as_secs())]
    NotAnswering {
        /// Its HTTP port.
        port: u16,
        /// How long it was waited for.
        wait: Duration,
    },
    /// A layer-1 service did not come up.
    #[error("timed out after {} s waiting: {what}; see flynn-host ps and flynn-host logs JOB", .wait.as_secs())]
    NotReady {
        /// What was waited for.
        what: String,
        /// How long.
        wait: Duration,
    },
    /// The cluster's certificate could not be made or read.
    #[error("the cluster's TLS certificate: {0}")]
    Tls(String),
    /// A layer-1 job ended while bootstrap waited for it.
    #[error("job {job} {state} before it answered{}{}", if .error.is_empty() { String::new() } else { format!(": {}", .error) }, if .log.is_empty() { String::new() } else { format!("; its log ends:\n{}", .log) })]
    JobEnded {
        /// The job.
        job: String,
        /// Its state.
        state: String,
        /// The host's error, if any.
        error: String,
        /// The end of its log.
        log: String,
    },
    /// The daemon has no TCP API in discoverd, where gitreceive would start build jobs.
    #[error("this host registered no TCP API in discoverd: start flynn-host daemon with --listen http://ADDR:1113 and --discoverd")]
    NoHostApi,
    /// `flynn-host join` was pointed at this host itself.
    #[error("that is this host: point flynn-host join at a host of the cluster to join")]
    JoinSelf,
    /// The daemon registers with no discoverd, so the cluster would never see it.
    #[error("this daemon registers with no discoverd: start flynn-host daemon with --discoverd http://127.0.0.1:1111 and --listen http://LAN_IP:1113, then join")]
    NoDiscoverd,
    /// This host belongs to another cluster.
    #[error("this host belongs to the cluster of controller {0} already; drain it and remove its state directory's cluster.json first")]
    OtherCluster(String),
    /// The cluster host's answer lacks a secret or etcd.
    #[error("host {0} answered a join request without the cluster's secrets or etcd; is it a host of a cluster others can join (bootstrapped on a LAN API address or with --etcd), of this version?")]
    BadJoin(String),
    /// The cluster's etcd refused or failed a request.
    #[error("asking the cluster's etcd at {0}")]
    Etcd(String, #[source] Box<flynn_etcd::Error>),
    /// This host's etcd state conflicts with the cluster's.
    #[error("{0}")]
    EtcdForeign(String),
    /// This host cannot leave its cluster.
    #[error("{0}")]
    Leave(String),
    /// The daemon could not be restarted.
    #[error("restarting the daemon: {0}")]
    Restart(String),
    /// A blocking task died.
    #[error("a build task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// `ip` when other hosts can reach this one there: not loopback, unspecified or the job
/// bridge's gateway (`gateway`).
fn lan_ip(ip: std::net::IpAddr, gateway: Ipv4Addr) -> Option<std::net::IpAddr> {
    (!ip.is_loopback() && !ip.is_unspecified() && ip != gateway).then_some(ip)
}

/// The LAN address of the daemon's TCP API (`status.api`), if it has one.
fn lan_api(status: &host_api::HostStatus) -> Option<std::net::IpAddr> {
    lan_ip(status.api?.ip(), status.gateway)
}

/// The nameservers of `/etc/resolv.conf` (discoverd's upstream resolvers by default).
pub fn resolv_conf_nameservers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(|s| s.trim().to_string())
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

fn discoverd_id() -> JobId {
    DISCOVERD_JOB.parse().expect("a valid job id")
}

/// The host's image store.
fn open_store(state: &Path) -> Result<pinkerton::store::Store, BootstrapError> {
    let dir = state.join("pinkerton");
    pinkerton::store::Store::open(&dir).map_err(|e| BootstrapError::Store(dir, e))
}

/// Recipe `recipe` and the inputs bootstrap builds it from.
fn recipe_inputs(
    bin_dir: &Path,
    cache: &Path,
    recipe: &str,
) -> Result<(images::Recipe, images::Inputs), BootstrapError> {
    let file = images::recipes_dir().join(format!("{recipe}.toml"));
    let r = images::Recipe::load(&file).map_err(|e| BootstrapError::Recipe(recipe.into(), e))?;
    let inputs = images::Inputs {
        bin_dir: bin_dir.to_path_buf(),
        cache: cache.to_path_buf(),
        ..Default::default()
    };
    Ok((r, inputs))
}

/// Builds image `flynn/RECIPE:latest` into an OCI layout under `STATE/images/RECIPE`
/// (blocking); returns the layout and the manifest digest.
fn build_layout(
    state: &Path,
    bin_dir: &Path,
    cache: &Path,
    recipe: &str,
) -> Result<(PathBuf, String), BootstrapError> {
    let (r, inputs) = recipe_inputs(bin_dir, cache, recipe)?;
    let out = state.join("images").join(recipe);
    let tag = format!("flynn/{recipe}:latest");
    let written =
        images::build(&r, &inputs, &out, &tag).map_err(|e| BootstrapError::Build(tag, e))?;
    Ok((out, written.manifest.to_string()))
}

/// The diff_ids a build of `recipe` gives its top layer (its files: binaries of `bin_dir`,
/// extra files) and its base (a cached Debian base), without building it (blocking).
fn recipe_diff_ids(
    bin_dir: &Path,
    cache: &Path,
    recipe: &str,
) -> Result<(Option<String>, Option<String>), BootstrapError> {
    let (r, inputs) = recipe_inputs(bin_dir, cache, recipe)?;
    let err = |e| BootstrapError::Build(format!("flynn/{recipe}:latest"), e);
    Ok((
        images::build::files_diff_id(&r, &inputs).map_err(err)?,
        images::build::base_diff_id(&r, &inputs).map_err(err)?,
    ))
}

/// Builds image `flynn/RECIPE:latest` into the host's store (blocking); returns its manifest
/// digest.
fn build_into_store(
    state: &Path,
    bin_dir: &Path,
    cache: &Path,
    recipe: &str,
) -> Result<String, BootstrapError> {
    let (out, manifest) = build_layout(state, bin_dir, cache, recipe)?;
    let name = format!("flynn/{recipe}:latest");
    images::import(&out, &state.join("pinkerton"), &name)
        .map_err(|e| BootstrapError::Import(name, Box::new(e)))?;
    Ok(manifest)
}

/// The job discoverd runs as.
fn discoverd_job(opts: &BootstrapOptions, gateway: Ipv4Addr, key: &std::path::Path) -> CreateJob {
    let mut args = vec![
        "--http".to_string(),
        format!("0.0.0.0:{}", opts.http_port),
        "--dns".into(),
        format!("{gateway}:53"),
        "--data".into(),
        "/data".into(),
        "--key-file".into(),
        KEY_IN_JOB.into(),
    ];
    for r in &opts.upstream {
        args.extend(["--dns-upstream".into(), format!("{r}:53")]);
    }
    if opts.upstream.is_empty() {
        args.push("--no-dns-upstream".into());
    }
    if !opts.etcd.is_empty() {
        args.extend(["--etcd".into(), opts.etcd.join(",")]);
    }
    CreateJob {
        id: Some(discoverd_id()),
        config: JobConfig {
            // The key is a read-only file, so that it appears in no job record.
            mounts: vec![BindMount {
                source: key.display().to_string(),
                target: KEY_IN_JOB.into(),
                readonly: true,
            }],
            network: NetworkMode::Host,
            volumes: vec![VolumeMount {
                name: DISCOVERD_VOLUME.into(),
                target: "/data".into(),
                readonly: false,
            }],
            ..JobConfig::new(DISCOVERD_IMAGE, args)
        },
        metadata: [("flynn.layer".to_string(), "1".to_string())].into(),
        restart: host_api::RestartPolicy::Always,
        ..Default::default()
    }
}

/// Builds the discoverd image, starts discoverd unless it runs, and waits until it answers.
pub async fn bootstrap(c: &Client, opts: BootstrapOptions) -> Result<Bootstrapped, BootstrapError> {
    let o = opts.clone();
    let manifest = tokio::task::spawn_blocking(move || {
        build_into_store(
            &o.state,
            &o.bin_dir,
            images::build::DEFAULT_CACHE.as_ref(),
            "discoverd",
        )
    })
    .await??;
    let gateway = c.status().await?.gateway;
    let id = discoverd_id();
    match c.job(&id).await {
        Ok(j) if j.state == JobState::Running => {
            return Ok(Bootstrapped {
                manifest,
                started: false,
                gateway,
            })
        }
        Ok(_) => c.delete_job(&id, true).await?,
        Err(e) if e.code() == Some(ErrorCode::NoSuchJob) => {}
        Err(e) => return Err(e.into()),
    }
    match c.create_volume(DISCOVERD_VOLUME).await {
        Ok(_) => {}
        Err(e) if e.code() == Some(ErrorCode::VolumeExists) => {}
        Err(e) => return Err(e.into()),
    }
    // The platform key that discoverd's writes need; the daemon reads the same file.
    let key = opts.state.join(crate::host::DISCOVERD_KEY_FILE);
    crate::secret::load_or_create(&key).map_err(|e| BootstrapError::Key(key.clone(), e))?;
    c.create_job(&discoverd_job(&opts, gateway, &key)).await?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], opts.http_port));
    let deadline = Instant::now() + opts.wait;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            return Err(BootstrapError::NotAnswering {
                port: opts.http_port,
                wait: opts.wait,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Bootstrapped {
        manifest,
        started: true,
        gateway,
    })
}
