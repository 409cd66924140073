//! `flynn-host network-remove`: takes the job network (the bridge, the iptables chains and
//! rules, the setup record) off the host once the daemon is stopped and no job is left, as
//! a teardown does.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::DEFAULT_STATE;
use host_api::client::Client;
use runtime::net::{NetConfig, Network};

/// `network-remove`.
#[derive(Debug, Args)]
pub struct NetworkRemoveArgs {
    /// The daemon's state directory.
    #[arg(long, default_value = DEFAULT_STATE)]
    state: PathBuf,
}

/// Removes the job network; refused while the daemon answers or a job holds an address or a
/// published port.
pub async fn remove(c: &Client, args: NetworkRemoveArgs) -> anyhow::Result<i32> {
    if c.status().await.is_ok() {
        anyhow::bail!(
            "the daemon answers on its API: stop it first (it sets the job network up again \
             while it runs)"
        );
    }
    let cfg = NetConfig::default();
    let bridge = cfg.bridge.clone();
    let net = Network::new(cfg, args.state.join("runtime").join("net"));
    tokio::task::spawn_blocking(move || net.remove())
        .await
        .context("removing the job network")?
        .context("removing the job network")?;
    println!("removed the job network: bridge {bridge}, its iptables chains and rules");
    Ok(0)
}
