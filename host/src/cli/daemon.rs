//! `flynn-host daemon`: opens the state, re-adopts jobs, serves the API until SIGTERM/SIGINT.
//! Jobs keep running when the daemon stops; the next daemon adopts them.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use flynn_http::server::Limits;
use flynn_http::service::Shutdown;

use super::DEFAULT_STATE;
use crate::host::{Host, HostConfig};
use crate::server;
use flynn_http::Endpoint;

/// `daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// State directory: database, token, job files, image store.
    #[arg(long, default_value = DEFAULT_STATE)]
    state: PathBuf,
    /// Image store (default: STATE/pinkerton).
    #[arg(long)]
    store: Option<PathBuf>,
    /// Where to serve the API; repeatable (default: unix:///run/flynn/host.sock).
    #[arg(long)]
    listen: Vec<Endpoint>,
    /// A tag KEY=VALUE reported in the status; repeatable.
    #[arg(long = "tag", value_name = "K=V")]
    tags: Vec<String>,
    /// A registry (HOST[:PORT]) to pull from over plain HTTP; repeatable.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// A Docker config file (`{"auths": {"HOST:PORT": {"auth": BASE64(USER:PASS)}}}`) with
    /// the credentials pulls use, e.g. the cluster registry's.
    #[arg(long, value_name = "FILE")]
    registry_auth: Option<PathBuf>,
    /// The flynn-shim binary (default: next to this one).
    #[arg(long)]
    shim: Option<PathBuf>,
    /// Job starts that run at once.
    #[arg(long, default_value_t = 8)]
    parallel_starts: usize,
    /// discoverd's address (e.g. http://100.100.0.1:1111): register jobs that name a service
    /// and this host, and point jobs' DNS at discoverd on the bridge gateway.
    #[arg(long)]
    discoverd: Option<Endpoint>,
    /// The cgroup jobs' cgroups go under (give each daemon on one machine its own).
    #[arg(long, default_value = runtime::job::CGROUP_PARENT)]
    cgroup_parent: String,
    /// Memory limit of jobs that set none (e.g. 512M, 2G; 0 for unlimited).
    #[arg(long, default_value = "1G")]
    default_memory: String,
    /// Process and thread limit of jobs that set none (0 for unlimited).
    #[arg(long, default_value_t = crate::host::DEFAULT_PIDS)]
    default_pids: i64,
    /// Open-file limit (RLIMIT_NOFILE) of jobs that set none (0: inherit the daemon's).
    #[arg(long, default_value_t = crate::host::DEFAULT_NOFILE)]
    default_nofile: u64,
    /// Cap on each job's log on disk (oldest lines rotated out), unless the job sets one.
    #[arg(long, default_value = "100M")]
    log_max_size: String,
    /// Seconds a client may take to send a request's headers before it is disconnected.
    #[arg(long, default_value_t = 10)]
    header_timeout: u64,
    /// Connections served at once on each listener; more wait to be accepted.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a client may take to send a request body before it gets a 408.
    #[arg(long, default_value_t = 30)]
    body_timeout: u64,
    /// The static init run as PID 1 of jobs that ask for one (`init: true`): it forwards
    /// signals and reaps orphans (Debian package tini).
    #[arg(long, default_value = runtime::job::DEFAULT_INIT)]
    init_binary: PathBuf,
}

fn size(flag: &str, v: &str) -> anyhow::Result<u64> {
    pinkerton::progress::parse_size(v)
        .with_context(|| format!("--{flag} {v:?}: use a size such as 512M or 2G"))
}

/// Runs the daemon until SIGTERM or SIGINT; on SIGHUP it restarts in place.
pub async fn run(args: DaemonArgs) -> anyhow::Result<i32> {
    let shim = match args.shim {
        Some(s) => s,
        None => std::env::current_exe()
            .context("finding this executable")?
            .with_file_name("flynn-shim"),
    };
    let mut config = HostConfig::new(&args.state, shim);
    if let Some(store) = args.store {
        config.store = store;
    }
    for t in &args.tags {
        let (k, v) = t
            .split_once('=')
            .with_context(|| format!("--tag {t:?}: use KEY=VALUE"))?;
        config.tags.insert(k.into(), v.into());
    }
    config.insecure_registries = args.insecure_registries;
    if let Some(path) = &args.registry_auth {
        std::fs::File::open(path)
            .with_context(|| format!("--registry-auth {}: cannot read it", path.display()))?;
    }
    config.registry_auth = args.registry_auth;
    config.parallel_starts = args.parallel_starts;
    config.discoverd = args.discoverd;
    config.cgroup_parent = args.cgroup_parent;
    config.init = args.init_binary;
    let memory = size("default-memory", &args.default_memory)?;
    if memory != 0 && memory < 4 << 20 {
        anyhow::bail!(
            "--default-memory {}: use at least 4M, or 0 for unlimited",
            args.default_memory
        );
    }
    config.default_resources = runtime::Resources {
        memory: (memory > 0).then_some(memory),
        pids: (args.default_pids > 0).then_some(args.default_pids),
        nofile: (args.default_nofile > 0).then_some(args.default_nofile),
        ..Default::default()
    };
    config.log_max_bytes = size("log-max-size", &args.log_max_size)?;
    config.advertise = args.listen.iter().find_map(|e| match e {
        Endpoint::Tcp(a) => Some(*a),
        Endpoint::Unix(_) => None,
    });
    let host = Host::open(config).await.context("starting the host")?;
    let token = server::load_or_create_token(&args.state)?;
    let endpoints = if args.listen.is_empty() {
        vec![host_api::default_endpoint()]
    } else {
        args.listen
    };
    let shutdown = Shutdown::on_signals()?;
    // SIGHUP: stop serving and start again as a new daemon (the same arguments, the
    // binary now at this path, the state files read afresh), adopting the jobs.
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let restart = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let restarting = restart.clone();
    let shutdown = async move {
        tokio::select! {
            _ = shutdown.wait() => tracing::info!("shutting down; jobs keep running"),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: restarting; jobs keep running");
                restarting.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    };
    let limits = Limits {
        header_timeout: std::time::Duration::from_secs(args.header_timeout.max(1)),
        max_connections: args.max_connections.max(1),
        body_timeout: std::time::Duration::from_secs(args.body_timeout.max(1)),
        ..Limits::default()
    };
    server::serve(host, &endpoints, token, limits, shutdown).await?;
    if restart.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(reexec());
    }
    Ok(0)
}

/// Replaces this process with a new daemon run with the same arguments; returns only when
/// that fails.
fn reexec() -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return anyhow::Error::new(e).context("finding this executable to restart"),
    };
    // A binary replaced on disk (an upgrade) shows as "PATH (deleted)": run the new one.
    let exe = exe
        .to_str()
        .and_then(|s| s.strip_suffix(" (deleted)"))
        .map(PathBuf::from)
        .unwrap_or(exe);
    let e = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .exec();
    anyhow::Error::new(e).context(format!("restarting as {}", exe.display()))
}
