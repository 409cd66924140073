//! Bootstrapping layer 1 on a host: builds the images it needs from this workspace's binaries
//! (the `images/` recipes) straight into the host's image store, and starts discoverd as an
//! ordinary job (host network, state on a volume, DNS on the bridge gateway, the platform
//! key as a read-only file). The CLI's `bootstrap` and a controller both call [`bootstrap`].

use std::net::Ipv4Addr;
use std::path::PathBuf;
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
    /// The discoverd recipe could not be read.
    #[error("reading the discoverd image recipe")]
    Recipe(#[source] images::recipe::RecipeError),
    /// The image could not be built.
    #[error("building {DISCOVERD_IMAGE}")]
    Build(#[source] images::BuildError),
    /// The host's image store could not be opened.
    #[error("opening the host's image store under {0}")]
    Store(PathBuf, #[source] pinkerton::store::StoreError),
    /// The image could not be imported into the store.
    #[error("importing {DISCOVERD_IMAGE} into the host's store")]
    Import(#[source] pinkerton::import::ImportError),
    /// The platform key file could not be read or made.
    #[error("reading or creating the platform key {0}")]
    Key(PathBuf, #[source] std::io::Error),
    /// The daemon refused or failed a request.
    #[error("asking the host daemon")]
    Host(#[from] ClientError),
    /// discoverd did not come up.
    #[error("discoverd did not answer on 127.0.0.1:{port} within {} s; see the log of job {DISCOVERD_JOB}", .wait.as_secs())]
    NotAnswering {
        /// Its HTTP port.
        port: u16,
        /// How long it was waited for.
        wait: Duration,
    },
    /// A blocking task died.
    #[error("a build task failed")]
    Task(#[from] tokio::task::JoinError),
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

/// Builds the discoverd image into the host's store (blocking).
fn build_image(opts: &BootstrapOptions) -> Result<String, BootstrapError> {
    let recipe = images::Recipe::load(&images::recipes_dir().join("discoverd.toml"))
        .map_err(BootstrapError::Recipe)?;
    let out = opts.state.join("images/discoverd");
    let inputs = images::Inputs {
        bin_dir: opts.bin_dir.clone(),
        ..Default::default()
    };
    let written =
        images::build(&recipe, &inputs, &out, DISCOVERD_IMAGE).map_err(BootstrapError::Build)?;
    let store_dir = opts.state.join("pinkerton");
    let store = pinkerton::store::Store::open(&store_dir)
        .map_err(|e| BootstrapError::Store(store_dir, e))?;
    let tag = DISCOVERD_IMAGE.parse().expect("a valid reference");
    pinkerton::import::import(
        &store,
        &out,
        Some(&tag),
        &pinkerton::platform::Platform::host(),
        pinkerton::pull::DEFAULT_MAX_LAYER_SIZE,
        None,
    )
    .map_err(BootstrapError::Import)?;
    Ok(written.manifest.to_string())
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
        ..Default::default()
    }
}

/// Builds the discoverd image, starts discoverd unless it runs, and waits until it answers.
pub async fn bootstrap(c: &Client, opts: BootstrapOptions) -> Result<Bootstrapped, BootstrapError> {
    let o = opts.clone();
    let manifest = tokio::task::spawn_blocking(move || build_image(&o)).await??;
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
