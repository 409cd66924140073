//! `flynn-host bootstrap`: [`crate::bootstrap`] with flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::DEFAULT_STATE;
use crate::bootstrap::{
    bootstrap, cluster_store, layer1, resolv_conf_nameservers, BootstrapOptions, Layer1Options,
    DISCOVERD_JOB,
};
use host_api::client::Client;

/// The flags of the commands that start this host's discoverd (`bootstrap`, `join`).
#[derive(Debug, Args)]
pub struct DiscoverdArgs {
    /// The daemon's state directory (its image store is imported into directly).
    #[arg(long, default_value = DEFAULT_STATE)]
    pub state: PathBuf,
    /// Where the workspace binaries are (default: next to this executable).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// discoverd's HTTP port on the host.
    #[arg(long, default_value_t = 1111)]
    pub http_port: u16,
    /// Resolvers (IPs) discoverd forwards names outside its zone to (default: the
    /// nameservers of /etc/resolv.conf).
    #[arg(long = "dns-upstream")]
    dns_upstream: Vec<String>,
    /// Forward no names: discoverd refuses names outside its zone at once (hosts with no
    /// resolver their jobs may use).
    #[arg(long, conflicts_with = "dns_upstream")]
    no_dns_upstream: bool,
}

impl DiscoverdArgs {
    /// `--bin-dir`, or the directory of this executable.
    pub fn bin_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.bin_dir {
            Some(d) => Ok(d.clone()),
            None => Ok(std::env::current_exe()?
                .parent()
                .context("the directory of this executable")?
                .to_path_buf()),
        }
    }

    /// The resolvers discoverd forwards to.
    pub fn upstream(&self) -> Vec<String> {
        if self.no_dns_upstream {
            Vec::new()
        } else if self.dns_upstream.is_empty() {
            resolv_conf_nameservers()
        } else {
            self.dns_upstream.clone()
        }
    }
}

/// `bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    discoverd: DiscoverdArgs,
    /// etcd endpoints (comma-separated) of the operator's etcd for the cluster's state
    /// (discoverd's and the controller's). Without them, a host whose daemon API is on a LAN
    /// address runs etcd as a job (hosts that join add members, up to three), and a host
    /// whose API is on loopback only keeps the state on volumes of its own (no host can join).
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    /// Bring up all of layer 1 on this host for this domain (apps are `APP.DOMAIN`, the
    /// controller `controller.DOMAIN`, git `git.DOMAIN`): the cluster registry, the router,
    /// the controller, the scheduler and gitreceive. Without it only discoverd is started.
    #[arg(long)]
    domain: Option<String>,
    /// Where the Debian bases of the stack images are cached (made from the Debian mirror
    /// when missing, which takes minutes).
    #[arg(long, default_value = images::build::DEFAULT_CACHE)]
    image_cache: PathBuf,
    /// How long each service may take to answer once started.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    wait: Duration,
    /// The operator's certificate chain (PEM) for DOMAIN and *.DOMAIN, instead of a cluster
    /// CA made at the first bootstrap.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Its key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// With a domain, chooses where the cluster keeps its state (starting etcd as a job when
/// that is the choice); builds the discoverd image, starts discoverd and waits until it
/// answers; with a domain, then the rest of layer 1, printing the line that adds the cluster
/// to `flynn`.
pub async fn run(c: &Client, args: BootstrapArgs) -> anyhow::Result<i32> {
    let bin_dir = args.discoverd.bin_dir()?;
    let progress = |line: &str| eprintln!("{line}");
    let domain = args
        .domain
        .as_ref()
        .map(|d| d.trim_matches('.').to_ascii_lowercase());
    let mut l1 = Layer1Options {
        state: args.discoverd.state.clone(),
        bin_dir: bin_dir.clone(),
        image_cache: args.image_cache,
        domain: domain.clone().unwrap_or_default(),
        discoverd_port: args.discoverd.http_port,
        wait: args.wait,
        tls: crate::bootstrap::OwnCert {
            cert: args.tls_cert,
            key: args.tls_key,
        },
        etcd: args.etcd,
        etcd_jobs: false,
    };
    if domain.is_some() {
        (l1.etcd, l1.etcd_jobs) = cluster_store(c, &l1, &progress).await?;
    }
    let opts = BootstrapOptions {
        state: args.discoverd.state.clone(),
        bin_dir,
        http_port: args.discoverd.http_port,
        etcd: l1.etcd.clone(),
        upstream: args.discoverd.upstream(),
        wait: Duration::from_secs(20),
    };
    let port = opts.http_port;
    let done = bootstrap(c, opts).await?;
    let gateway = done.gateway;
    eprintln!(
        "built {} ({})",
        crate::bootstrap::DISCOVERD_IMAGE,
        done.manifest
    );
    if done.started {
        eprintln!(
            "discoverd: started as job {DISCOVERD_JOB}: http://{gateway}:{port} , DNS {gateway}:53"
        );
    } else {
        eprintln!("discoverd: already runs (job {DISCOVERD_JOB})");
    }
    if domain.is_none() {
        return Ok(0);
    }
    let opts = l1;
    let up = layer1(c, &opts, &progress).await?;
    if up.changed || done.started {
        eprintln!("layer 1 is up on this host.");
    } else {
        eprintln!("layer 1 already runs on this host: nothing changed.");
    }
    eprintln!(
        "Point *.{} at this host (DNS, or /etc/hosts for controller.{0} and git.{0}), then add the cluster with:",
        up.domain
    );
    println!("{}", up.cluster_add());
    match &up.join {
        Some(line) => eprintln!("Another host joins the cluster with:\n  {line}"),
        None => eprintln!(
            "No host can join this cluster: its state is on this host (a daemon with its API on a LAN address, --listen http://LAN_IP:1113, runs etcd for that)."
        ),
    }
    Ok(0)
}
