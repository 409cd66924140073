//! The router handed to the scheduler. Bootstrap starts a router of its own (job `router`)
//! so that the controller's routes are served before any scheduler exists; once one leads,
//! the `router` system app gets a release of the same image (pushed to the cluster
//! registry), run on every host (omni) on the host network, with a formation of one. When
//! the scheduler's router is registered on this host, bootstrap's own stops. Both bind the
//! public ports with `SO_REUSEPORT`, and the host hands a closing listener's queued
//! connections to the other, so no connection is refused in between. From then on,
//! `flynn -a router env set K=V` rolls the router like any app's deploy.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use controller_api::client::Client as Controller;
use controller_api::{NewArtifact, NewRelease, ProcessType, PutFormation};
use host_api::JobId;

use super::boot::Boot;
use super::layer1::{ROUTER_HTTPS_PORT, ROUTER_HTTP_PORT};
use super::BootstrapError;

/// The router app's process type.
pub const PROCESS: &str = "app";
/// The discoverd service every router registers its API as.
pub const API_SERVICE: &str = "router-api";
/// The job id of the router bootstrap starts before the scheduler runs.
pub const BOOTSTRAP_JOB: &str = "router";
/// How long bootstrap's router gets to finish its open connections when it stops.
const STOP_GRACE: Duration = Duration::from_secs(10);

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

/// Gives the router to the scheduler (each part done once: a run cut short is completed by
/// the next); returns whether anything changed.
pub(super) async fn hand_over(
    b: &Boot<'_>,
    api: &Controller,
    r: &RouterRelease<'_>,
) -> Result<bool, BootstrapError> {
    let mut changed = false;
    let app = api.app("router").await?;
    let release = match &app.release {
        Some(id) => id.clone(),
        None => {
            let image = b.push("router", r.registry).await?;
            let artifact = api
                .create_artifact(&NewArtifact {
                    kind: Default::default(),
                    uri: image,
                    meta: Default::default(),
                })
                .await?;
            let process = ProcessType {
                args: vec!["--controller".into(), r.controller.to_string()],
                service: Some(API_SERVICE.parse().expect("a service name")),
                omni: true,
                host_network: true,
                ..Default::default()
            };
            let release = api
                .create_release(&NewRelease {
                    app_id: app.id.clone(),
                    artifacts: vec![artifact.id],
                    env: env(r, &b.discoverd_url())?,
                    meta: Default::default(),
                    processes: [(PROCESS.parse().expect("a process type"), process)].into(),
                })
                .await?;
            api.set_app_release(app.id.as_str(), &release.id).await?;
            (b.progress)(&format!("router: release {} created", release.id));
            changed = true;
            release.id
        }
    };
    let counts = api
        .formation(app.id.as_str(), &release)
        .await
        .map(|f| f.processes)
        .unwrap_or_default();
    if counts.values().all(|n| *n == 0) {
        let f = PutFormation {
            processes: [(PROCESS.parse().expect("a process type"), 1)].into(),
            ..Default::default()
        };
        api.put_formation(app.id.as_str(), &release, &f).await?;
        (b.progress)("router: scaled to app=1 (one per host)");
        changed = true;
    }

    // The scheduler's router, listening and registered.
    let discoverd = b.discoverd();
    let deadline = Instant::now() + b.opts.wait;
    let job = loop {
        if let Some(id) = scheduled(b.c).await? {
            let registered = discoverd
                .instances(API_SERVICE)
                .await
                .is_ok_and(|all| all.iter().any(|i| i.id == id.as_str()));
            if registered {
                break id;
            }
        }
        if Instant::now() > deadline {
            // What the controller knows of the router's jobs says why, most often.
            let jobs: Vec<String> = api
                .jobs(app.id.as_str(), false)
                .await
                .unwrap_or_default()
                .iter()
                .map(|j| {
                    let why = j.host_error.as_deref().unwrap_or("no error reported");
                    format!("job {} {:?} ({why})", j.id, j.state)
                })
                .collect();
            let jobs = if jobs.is_empty() {
                "the scheduler started no router job".to_string()
            } else {
                jobs.join("; ")
            };
            return Err(BootstrapError::NotReady {
                what: format!("the scheduler's router registered in discoverd: {jobs}"),
                wait: b.opts.wait,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if changed {
        (b.progress)(&format!("ok: the scheduler's router runs (job {job})"));
    }

    // Bootstrap's own router stops, its open connections finishing first.
    let own: JobId = BOOTSTRAP_JOB.parse().expect("a valid job id");
    match b.c.job(&own).await {
        Ok(j) => {
            if !j.state.is_final() {
                b.c.stop(&own, STOP_GRACE).await?;
            }
            b.c.delete_job(&own, true).await?;
            (b.progress)("router: bootstrap's router stopped; the scheduler runs the router now");
            changed = true;
        }
        Err(e) if e.code() == Some(host_api::ErrorCode::NoSuchJob) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(changed)
}
