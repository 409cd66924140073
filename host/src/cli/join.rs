//! `flynn-host join`: [`crate::bootstrap::join`] with flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::DEFAULT_STATE;
use crate::bootstrap::{join, resolv_conf_nameservers, JoinOptions};
use flynn_http::Endpoint;
use host_api::client::Client;

/// `join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// A host of the cluster: its API, as the join line `flynn-host bootstrap` printed
    /// (http://IP:1113).
    url: Endpoint,
    /// That host's API token (the join line has it).
    #[arg(env = "FLYNN_JOIN_TOKEN", hide_env_values = true)]
    token: String,
    /// This daemon's state directory.
    #[arg(long, default_value = DEFAULT_STATE)]
    state: PathBuf,
    /// Where the workspace binaries are (default: next to this executable).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// discoverd's HTTP port on this host.
    #[arg(long, default_value_t = 1111)]
    http_port: u16,
    /// Resolvers (IPs) discoverd forwards names outside its zone to (default: the
    /// nameservers of /etc/resolv.conf).
    #[arg(long = "dns-upstream")]
    dns_upstream: Vec<String>,
    /// Forward no names: discoverd refuses names outside its zone at once.
    #[arg(long, conflicts_with = "dns_upstream")]
    no_dns_upstream: bool,
    /// How long each step may take.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    wait: Duration,
}

/// Joins this host to the cluster of the host at `url`, printing each step.
pub async fn run(c: &Client, args: JoinArgs) -> anyhow::Result<i32> {
    if matches!(args.url, Endpoint::Unix(_)) {
        anyhow::bail!(
            "{}: give the cluster host's API as http://IP:PORT",
            args.url
        );
    }
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("the directory of this executable")?
            .to_path_buf(),
    };
    let member = Client::new(args.url.clone(), Some(args.token));
    let opts = JoinOptions {
        state: args.state,
        bin_dir,
        http_port: args.http_port,
        upstream: if args.no_dns_upstream {
            Vec::new()
        } else if args.dns_upstream.is_empty() {
            resolv_conf_nameservers()
        } else {
            args.dns_upstream
        },
        wait: args.wait,
    };
    let joined = join(c, &member, &opts, &|line| eprintln!("{line}"))
        .await
        .with_context(|| format!("joining the cluster of {}", args.url))?;
    if joined.changed {
        println!(
            "host {} joined cluster {}: the scheduler places jobs on it",
            joined.host_id, joined.cluster.domain
        );
    } else {
        println!(
            "host {} is in cluster {} already: nothing changed",
            joined.host_id, joined.cluster.domain
        );
    }
    Ok(0)
}
