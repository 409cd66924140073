//! `flynn-host bootstrap`: builds the images layer 1 needs from this workspace's binaries
//! (images/ recipes) straight into the host's image store, and starts discoverd as an ordinary
//! job (host network, state on a volume, DNS on the bridge gateway).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use runtime::volume::VolumeMount;
use runtime::NetworkMode;

use super::DEFAULT_STATE;
use crate::api::{CreateJob, JobState};
use crate::client::Client;

/// `bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The daemon's state directory (its image store is imported into directly).
    #[arg(long, default_value = DEFAULT_STATE)]
    state: PathBuf,
    /// Where the workspace binaries are (default: next to this executable).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// discoverd's HTTP port on the host.
    #[arg(long, default_value_t = 1111)]
    http_port: u16,
    /// etcd endpoints (comma-separated) for discoverd's state, so that the discoverds of
    /// several hosts share it; without them discoverd keeps its state on a volume.
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
}

/// The job id discoverd runs as.
pub const DISCOVERD_JOB: &str = "discoverd";

fn upstream_resolvers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(|s| s.trim().to_string())
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

/// Builds the discoverd image, starts discoverd and waits until it answers.
pub async fn run(c: &Client, args: BootstrapArgs) -> anyhow::Result<i32> {
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("the directory of this executable")?
            .to_path_buf(),
    };
    let tag = "flynn/discoverd:latest";
    let recipe = images::Recipe::load(&images::recipes_dir().join("discoverd.toml"))?;
    let out = args.state.join("images/discoverd");
    let inputs = images::Inputs {
        bin_dir,
        ..Default::default()
    };
    let (state, out2) = (args.state.clone(), out.clone());
    let written = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let w = images::build(&recipe, &inputs, &out2, tag)?;
        let store = pinkerton::store::Store::open(state.join("pinkerton"))?;
        pinkerton::import::import(
            &store,
            &out2,
            Some(&tag.parse()?),
            &pinkerton::platform::Platform::host(),
            pinkerton::pull::DEFAULT_MAX_LAYER_SIZE,
            None,
        )?;
        Ok(w)
    })
    .await??;
    eprintln!("built {tag} ({}) into {}", written.manifest, out.display());

    match c.job(DISCOVERD_JOB).await {
        Ok(j) if j.state == JobState::Running => {
            eprintln!("discoverd already runs (job {DISCOVERD_JOB})");
            return Ok(0);
        }
        Ok(_) => c.delete_job(DISCOVERD_JOB, true).await?,
        Err(e) if e.code() == Some("no_such_job") => {}
        Err(e) => return Err(e.into()),
    }
    match c.create_volume("discoverd-data").await {
        Ok(_) => {}
        Err(e) if e.code() == Some("volume_exists") => {}
        Err(e) => return Err(e.into()),
    }
    let gateway = c.status().await?.gateway;
    let mut args_v = vec![
        "--http".to_string(),
        format!("0.0.0.0:{}", args.http_port),
        "--dns".into(),
        format!("{gateway}:53"),
        "--data".into(),
        "/data".into(),
    ];
    for r in upstream_resolvers() {
        args_v.extend(["--dns-upstream".into(), format!("{r}:53")]);
    }
    if !args.etcd.is_empty() {
        args_v.extend(["--etcd".into(), args.etcd.join(",")]);
    }
    // The platform key that discoverd's writes need (the daemon reads the same file), given
    // to discoverd as a read-only file so that it appears in no job record.
    let key_path = args.state.join(crate::host::DISCOVERD_KEY_FILE);
    crate::secret::load_or_create(&key_path)
        .with_context(|| format!("reading or creating {}", key_path.display()))?;
    args_v.extend(["--key-file".into(), "/etc/discoverd.key".into()]);
    let req = CreateJob {
        id: Some(DISCOVERD_JOB.into()),
        image: tag.into(),
        args: args_v,
        mounts: vec![runtime::spec::BindMount {
            source: key_path.display().to_string(),
            target: "/etc/discoverd.key".into(),
            readonly: true,
        }],
        network: NetworkMode::Host,
        volumes: vec![VolumeMount {
            name: "discoverd-data".into(),
            target: "/data".into(),
            readonly: false,
        }],
        metadata: [("flynn.layer".to_string(), "1".to_string())].into(),
        ..Default::default()
    };
    c.create_job(&req).await?;
    let url = format!("127.0.0.1:{}", args.http_port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(&url).await.is_err() {
        if Instant::now() > deadline {
            bail!("discoverd did not answer on {url} within 20 s; see `flynn-host log {DISCOVERD_JOB}`");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "discoverd runs as job {DISCOVERD_JOB}: http://{gateway}:{} , DNS {gateway}:53",
        args.http_port
    );
    Ok(0)
}
