//! Layer-1 services handed to the scheduler: the router (always, see `router.rs`), and on a
//! cluster whose state is in etcd the controller, then the scheduler itself. Bootstrap starts each as a job of its own (nothing
//! else can run them before they exist); once a scheduler leads and the router is its, the
//! service's system app gets a release of the same image (pushed to the cluster registry)
//! with the same settings, run on every host (omni) on the host network, with a formation
//! of one. Each binds its port with `SO_REUSEPORT` and keeps its state in etcd (the
//! controller) or none (the scheduler, whose instances elect a leader in discoverd), so the
//! scheduler's jobs come up beside bootstrap's; when the one on this host is registered in
//! discoverd, bootstrap's stops. A cluster on this host's embedded stores keeps bootstrap's
//! (the controller's state is a file on this host).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use controller_api::client::Client as Controller;
use controller_api::{NewArtifact, NewRelease, Port, PortService, ProcessType, PutFormation};
use host_api::JobId;

use super::boot::{scheduled, Boot};
use super::layer1::{Layer1Options, CONTROLLER_PORT, SCHEDULER_PORT};
use super::BootstrapError;

/// How long bootstrap's job gets to finish its work when it stops.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A layer-1 service the scheduler takes over.
pub(super) struct Service<'a> {
    /// Its system app (and image recipe, and bootstrap's job id).
    pub app: &'a str,
    /// The process type its release runs on every host.
    pub process: &'a str,
    /// The discoverd service each of its jobs registers in under its job id.
    pub service: &'a str,
    /// The environment bootstrap's job runs with (the release gets the same).
    pub env: BTreeMap<String, String>,
    /// Its ports (a port's service is registered by the host).
    pub ports: Vec<Port>,
    /// Its arguments (none: the image's).
    pub args: Vec<String>,
    /// Whether its jobs register `service` themselves (no port names it).
    pub registers_itself: bool,
}

/// The controller's process type under the scheduler.
pub(super) const CONTROLLER_PROCESS: &str = "web";
/// The scheduler's process type under the scheduler.
pub(super) const SCHEDULER_PROCESS: &str = "app";

/// Gives `s` to the scheduler (each part done once: a run cut short is completed by the
/// next); returns whether anything changed.
pub(super) async fn hand_over(
    b: &Boot<'_>,
    api: &Controller,
    registry: &str,
    s: Service<'_>,
) -> Result<bool, BootstrapError> {
    let mut changed = false;
    let app = api.app(s.app).await?;
    let release = match &app.release {
        Some(id) => id.clone(),
        None => {
            let image = b.push(s.app, registry).await?;
            let artifact = api
                .create_artifact(&NewArtifact {
                    kind: Default::default(),
                    uri: image,
                    meta: Default::default(),
                })
                .await?;
            let process = ProcessType {
                args: s.args.clone(),
                ports: s.ports.clone(),
                service: s
                    .registers_itself
                    .then(|| s.service.parse().expect("a service name")),
                omni: true,
                host_network: true,
                ..Default::default()
            };
            let release = api
                .create_release(&NewRelease {
                    app_id: app.id.clone(),
                    artifacts: vec![artifact.id],
                    env: s.env.clone(),
                    meta: Default::default(),
                    processes: [(s.process.parse().expect("a process type"), process)].into(),
                })
                .await?;
            api.set_app_release(app.id.as_str(), &release.id).await?;
            (b.progress)(&format!("{}: release {} created", s.app, release.id));
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
            processes: [(s.process.parse().expect("a process type"), 1)].into(),
            ..Default::default()
        };
        api.put_formation(app.id.as_str(), &release, &f).await?;
        (b.progress)(&format!(
            "{}: scaled to {}=1 (one per host)",
            s.app, s.process
        ));
        changed = true;
    }

    // The scheduler's job on this host, registered.
    let discoverd = b.discoverd();
    let deadline = Instant::now() + b.opts.wait;
    let job = loop {
        if let Some(id) = scheduled(b.c, s.app, s.process).await? {
            let registered = discoverd
                .instances(s.service)
                .await
                .is_ok_and(|all| all.iter().any(|i| i.id == id.as_str()));
            if registered {
                break id;
            }
        }
        if Instant::now() > deadline {
            // What the controller knows of the app's jobs says why, most often.
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
                format!("the scheduler started no {} job", s.app)
            } else {
                jobs.join("; ")
            };
            return Err(BootstrapError::NotReady {
                what: format!(
                    "the scheduler's {} registered in discoverd ({}) on this host: {jobs}",
                    s.app, s.service
                ),
                wait: b.opts.wait,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if changed {
        (b.progress)(&format!("ok: the scheduler's {} runs (job {job})", s.app));
    }

    // Bootstrap's own job stops, its work finishing first.
    let own: JobId = s.app.parse().expect("a valid job id");
    match b.c.job(&own).await {
        Ok(j) => {
            if !j.state.is_final() {
                b.c.stop(&own, STOP_GRACE).await?;
            }
            b.c.delete_job(&own, true).await?;
            (b.progress)(&format!(
                "{0}: bootstrap's {0} stopped; the scheduler runs the {0} now",
                s.app
            ));
            changed = true;
        }
        Err(e) if e.code() == Some(host_api::ErrorCode::NoSuchJob) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(changed)
}

/// The controller as the scheduler runs it: `web` on every host, port 8081 registered as
/// service `controller`.
pub(super) fn controller_service(env: BTreeMap<String, String>) -> Service<'static> {
    Service {
        app: "controller",
        process: CONTROLLER_PROCESS,
        service: "controller",
        env,
        ports: vec![Port {
            port: CONTROLLER_PORT,
            proto: Default::default(),
            service: Some(PortService {
                name: "controller".parse().expect("a service name"),
                create: true,
                check: None,
            }),
        }],
        args: Vec::new(),
        registers_itself: false,
    }
}

/// The scheduler as the scheduler runs it: `app` on every host, each registered in
/// `flynn-scheduler` under its job id (one leads).
pub(super) fn scheduler_service(env: BTreeMap<String, String>) -> Service<'static> {
    Service {
        app: "scheduler",
        process: SCHEDULER_PROCESS,
        service: "flynn-scheduler",
        env,
        ports: Vec::new(),
        args: Vec::new(),
        registers_itself: false,
    }
}

/// The environment the scheduler runs with (bootstrap's job adds its id).
pub(super) fn scheduler_env(
    opts: &Layer1Options,
    key: &str,
    discoverd_key: &str,
    host_token: &str,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        (
            "CONTROLLER_URL",
            format!("http://127.0.0.1:{CONTROLLER_PORT}"),
        ),
        ("CONTROLLER_KEY", key.to_string()),
        ("DISCOVERD_KEY", discoverd_key.to_string()),
        ("HOST_TOKEN", host_token.to_string()),
        ("LISTEN", format!("127.0.0.1:{SCHEDULER_PORT}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if !opts.etcd.is_empty() {
        // The scheduler's schedulers take the status port over from bootstrap's.
        env.insert("LISTEN_REUSE_PORT".into(), "true".into());
    }
    env
}

/// The environment the controller runs with (bootstrap's job and the release it hands to
/// the scheduler alike; the CA is added as a file or as text).
pub(super) fn controller_env(
    opts: &Layer1Options,
    key: &str,
    host_token: &str,
    discoverd: &str,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("AUTH_KEY", key.to_string()),
        ("DEFAULT_ROUTE_DOMAIN", opts.domain.clone()),
        ("LISTEN", format!("0.0.0.0:{CONTROLLER_PORT}")),
        ("DISCOVERD", discoverd.to_string()),
        ("HOST_TOKEN", host_token.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if !opts.etcd.is_empty() {
        env.insert("ETCD_ENDPOINTS".into(), opts.etcd.join(","));
        // The scheduler's controllers take the port over from bootstrap's.
        env.insert("LISTEN_REUSE_PORT".into(), "true".into());
    }
    env
}
