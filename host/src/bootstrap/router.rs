//! The router handed to the scheduler. Bootstrap starts a router of its own (job `router`)
//! so that the controller's routes are served before any scheduler exists; once one leads,
//! the `router` system app gets a release of the same image (pushed to the cluster
//! registry), run on every host (omni) on the host network, with a formation of one. When
//! the scheduler's router is registered on this host, bootstrap's own stops. Both bind the
//! public ports with `SO_REUSEPORT`, and the host hands a closing listener's queued
//! connections to the other, so no connection is refused in between. From then on,
//! `flynn -a router env set K=V` rolls the router like any app's deploy.

use std::collections::BTreeMap;

use controller_api::client::Client as Controller;
use host_api::JobId;

use super::boot::Boot;
use super::handover::Service;
use super::layer1::{ROUTER_HTTPS_PORT, ROUTER_HTTP_PORT};
use super::BootstrapError;

/// The router app's process type.
pub const PROCESS: &str = "app";
/// The discoverd service every router registers its API as.
pub const API_SERVICE: &str = "router-api";
/// The job id of the router bootstrap starts before the scheduler runs.
pub const BOOTSTRAP_JOB: &str = "router";

/// What the router's release is made of.
pub(super) struct RouterRelease<'a> {
    /// The cluster registry (`HOST:PORT`).
    pub registry: &'a str,
    /// The cluster key (the controller's).
    pub key: &'a str,
    /// discoverd's key.
    pub discoverd_key: &'a str,
    /// The default certificate and key on the host.
    pub tls: (&'a std::path::Path, &'a std::path::Path),
    /// The controller's URL as every host reaches it.
    pub controller: &'a str,
}

/// The scheduler's router job on this host, when one runs.
pub(super) async fn scheduled(
    c: &host_api::client::Client,
) -> Result<Option<JobId>, BootstrapError> {
    super::boot::scheduled(c, "router", PROCESS).await
}

/// The environment of the router's jobs (the scheduler adds `FLYNN_JOB_ID`, the instance id
/// the router registers under, and each host `EXTERNAL_IP`, its own address, where the
/// router registers).
fn env(r: &RouterRelease<'_>, discoverd: &str) -> Result<BTreeMap<String, String>, BootstrapError> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| BootstrapError::Key(p.to_path_buf(), e))
    };
    // The certificate travels in the release (as text, not a host file), so that a router
    // on any host of the cluster serves it.
    let (cert, key) = (read(r.tls.0)?, read(r.tls.1)?);
    Ok([
        ("ROUTER_HTTP", format!("0.0.0.0:{ROUTER_HTTP_PORT}")),
        ("ROUTER_HTTPS", format!("0.0.0.0:{ROUTER_HTTPS_PORT}")),
        ("TLS_CERT", cert),
        ("TLS_KEY", key),
        // Two releases run side by side during a deploy: each API gets a port of its own
        // and is found in discoverd.
        ("ROUTER_API", "0.0.0.0:0".into()),
        ("CONTROLLER_KEY", r.key.into()),
        ("DISCOVERD", discoverd.into()),
        ("DISCOVERD_KEY", r.discoverd_key.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect())
}

/// Gives the router to the scheduler (see `handover.rs`); returns whether anything changed.
pub(super) async fn hand_over(
    b: &Boot<'_>,
    api: &Controller,
    r: &RouterRelease<'_>,
) -> Result<bool, BootstrapError> {
    let router = Service {
        app: "router",
        process: PROCESS,
        service: API_SERVICE,
        env: env(r, &b.discoverd_url())?,
        ports: Vec::new(),
        args: vec!["--controller".into(), r.controller.to_string()],
        registers_itself: true,
    };
    super::handover::hand_over(b, api, r.registry, router).await
}
