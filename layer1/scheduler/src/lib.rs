//! The scheduler: makes the cluster's hosts run exactly the controller's formations.
//!
//! Inputs, all followed as streams: the controller's formations ([`formations`]), the hosts
//! in discoverd and each host's job events ([`hosts`]), and leadership ([`leader`]). One
//! loop ([`scheduler`]) owns the view; while this scheduler leads, it plans with
//! [`plan::plan`] (placement, scale up and down, omni, crash restarts with [`backoff`]) and
//! asks hosts to start ([`spec`] builds the job) and stop jobs, and tells the controller of
//! every job's state ([`report`]). The leader also carries out deployments ([`deploy`]),
//! waiting on the routers ([`routers`]) for new jobs to be routed and old ones drained.

pub mod backoff;
pub mod deploy;
pub mod error;
pub mod formations;
pub mod hosts;
pub mod http;
pub mod leader;
pub mod plan;
pub mod registrations;
pub mod report;
pub mod routers;
pub mod scheduler;
pub mod spec;
pub mod watch;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// Where the scheduler finds the rest of the platform.
#[derive(Debug, Clone)]
pub struct Config {
    /// The controller.
    pub controller: controller_api::client::Client,
    /// discoverd, with the key registrations need.
    pub discoverd: discoverd_api::client::Client,
    /// The token of the hosts' TCP API.
    pub host_token: String,
    /// This scheduler's id in discoverd.
    pub id: String,
    /// Where its status API is reached (registered in discoverd).
    pub advertise: SocketAddr,
}

/// Starts following the cluster and scheduling; returns the status the API serves. Runs
/// until the process ends.
pub fn start(config: Config) -> Arc<Mutex<scheduler::Status>> {
    let status = Arc::new(Mutex::new(scheduler::Status {
        id: config.id.clone(),
        ..Default::default()
    }));
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(formations::follow(config.controller.clone(), tx.clone()));
    tokio::spawn(hosts::watch(
        config.discoverd.clone(),
        config.host_token.clone(),
        tx.clone(),
    ));
    tokio::spawn(registrations::follow(config.discoverd.clone(), tx.clone()));
    tokio::spawn(leader::run(
        config.discoverd.clone(),
        config.id.clone(),
        config.advertise,
        tx.clone(),
    ));
    let (reports, reports_rx) = mpsc::unbounded_channel();
    tokio::spawn(report::run(config.controller.clone(), reports_rx));
    let (leading, leading_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(deploy::run(
        config.controller.clone(),
        config.discoverd.clone(),
        leading_rx,
    ));
    tokio::spawn(
        scheduler::Scheduler::new(
            tx,
            status.clone(),
            reports,
            config.discoverd.clone(),
            leading,
        )
        .run(rx),
    );
    status
}
