//! `flynn-host leave`: [`crate::bootstrap::can_leave`], a drain, then
//! [`crate::bootstrap::leave`].

use std::path::PathBuf;

use clap::Args;

use super::drain::{drain, DrainArgs};
use super::DEFAULT_STATE;
use crate::bootstrap::{can_leave, leave};
use host_api::client::Client;

/// `leave`.
#[derive(Debug, Args)]
pub struct LeaveArgs {
    /// The daemon's state directory.
    #[arg(long, default_value = DEFAULT_STATE)]
    state: PathBuf,
    #[command(flatten)]
    drain: DrainArgs,
}

/// Checks that this host may leave, drains it, then leaves the cluster, printing each step.
pub async fn run(c: &Client, args: LeaveArgs) -> anyhow::Result<i32> {
    let cluster = can_leave(c, &args.state).await?;
    let code = drain(c, args.drain).await?;
    if code != 0 {
        return Ok(code);
    }
    leave(c, &args.state, &cluster, &|line| eprintln!("{line}")).await?;
    let id = c.status().await?.id;
    println!(
        "host {id} left cluster {}: it stays drained; join a cluster with flynn-host join, or stop its daemon",
        cluster.domain
    );
    Ok(0)
}
