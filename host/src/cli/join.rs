//! `flynn-host join`: [`crate::bootstrap::join`] with flags.

use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::bootstrap::DiscoverdArgs;
use crate::bootstrap::{join, JoinOptions};
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
    #[command(flatten)]
    discoverd: DiscoverdArgs,
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
    let member = Client::new(args.url.clone(), Some(args.token));
    let opts = JoinOptions {
        bin_dir: args.discoverd.bin_dir()?,
        upstream: args.discoverd.upstream(),
        state: args.discoverd.state,
        http_port: args.discoverd.http_port,
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
