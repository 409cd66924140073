//! The controller handed to the scheduler, on a cluster whose state is in etcd. Bootstrap
//! starts a controller of its own (job `controller`) because nothing else can run one before
//! the controller exists; once the scheduler leads and the router is its, the `controller`
//! system app gets a release of the same image (pushed to the cluster registry) with the
//! same settings, run on every host (omni) on the host network, with a formation of one.
//! Every controller binds the API port with `SO_REUSEPORT` and shares the state in etcd, so
//! the scheduler's take the port while bootstrap's still serves; when the one on this host
//! is registered in discoverd, bootstrap's stops. A cluster on this host's embedded store
//! keeps bootstrap's controller (its state is a file on this host).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use controller_api::client::Client as Controller;
use controller_api::{NewArtifact, NewRelease, Port, PortService, ProcessType, PutFormation};
use host_api::JobId;

use super::boot::{scheduled, Boot};
use super::layer1::CONTROLLER_PORT;
use super::BootstrapError;

/// The controller app's process type.
pub const PROCESS: &str = "web";
/// The job id of the controller bootstrap starts.
pub const BOOTSTRAP_JOB: &str = "controller";
/// How long bootstrap's controller gets to finish its requests when it stops.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The scheduler's controller job on this host, when one runs.
pub(super) async fn scheduled_here(
    c: &host_api::client::Client,
) -> Result<Option<JobId>, BootstrapError> {
    scheduled(c, "controller", PROCESS).await
}

/// Gives the controller to the scheduler; `env` is the environment bootstrap's controller
/// runs with (each part done once: a run cut short is completed by the next). Returns
/// whether anything changed.
pub(super) async fn hand_over(
    b: &Boot<'_>,
    api: &Controller,
    registry: &str,
    env: BTreeMap<String, String>,
) -> Result<bool, BootstrapError> {
    let mut changed = false;
    let app = api.app("controller").await?;
    let release = match &app.release {
        Some(id) => id.clone(),
        None => {
            let image = b.push("controller", registry).await?;
            let artifact = api
                .create_artifact(&NewArtifact {
                    kind: Default::default(),
                    uri: image,
                    meta: Default::default(),
                })
                .await?;
            let process = ProcessType {
                ports: vec![Port {
                    port: CONTROLLER_PORT,
                    proto: Default::default(),
                    service: Some(PortService {
                        name: "controller".parse().expect("a service name"),
                        create: true,
                        check: None,
                    }),
                }],
                omni: true,
                host_network: true,
                ..Default::default()
            };
            let release = api
                .create_release(&NewRelease {
                    app_id: app.id.clone(),
                    artifacts: vec![artifact.id],
                    env,
                    meta: Default::default(),
                    processes: [(PROCESS.parse().expect("a process type"), process)].into(),
                })
                .await?;
            api.set_app_release(app.id.as_str(), &release.id).await?;
            (b.progress)(&format!("controller: release {} created", release.id));
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
        (b.progress)("controller: scaled to web=1 (one per host)");
        changed = true;
    }

    // The scheduler's controller on this host, registered.
    let discoverd = b.discoverd();
    let deadline = Instant::now() + b.opts.wait;
    let job = loop {
        if let Some(id) = scheduled_here(b.c).await? {
            let registered = discoverd
                .instances("controller")
                .await
                .is_ok_and(|all| all.iter().any(|i| i.id == id.as_str()));
            if registered {
                break id;
            }
        }
        if Instant::now() > deadline {
            return Err(BootstrapError::NotReady {
                what: "the scheduler's controller registered in discoverd on this host".into(),
                wait: b.opts.wait,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if changed {
        (b.progress)(&format!("ok: the scheduler's controller runs (job {job})"));
    }

    // Bootstrap's own controller stops, its requests finishing first.
    let own: JobId = BOOTSTRAP_JOB.parse().expect("a valid job id");
    match b.c.job(&own).await {
        Ok(j) => {
            if !j.state.is_final() {
                b.c.stop(&own, STOP_GRACE).await?;
            }
            b.c.delete_job(&own, true).await?;
            (b.progress)(
                "controller: bootstrap's controller stopped; the scheduler runs the controller now",
            );
            changed = true;
        }
        Err(e) if e.code() == Some(host_api::ErrorCode::NoSuchJob) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(changed)
}
