//! The scheduler on a three-host cluster (integration/src/cluster/), one boot for every
//! phase: `web=3` spreads one job per host and answers through the router; a crashing
//! process type backs off; the standby scheduler finishes a scale when the leader is killed,
//! with no duplicate jobs; a destroyed host's job comes back elsewhere; a host that hangs
//! loses its jobs and, back again, has its strays stopped; the controller survives `kill -9`;
//! a drained host's jobs move to another host under load.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use controller_api::{NewRelease, PutFormation};
use integration::cluster::{Cluster, DOMAIN};
use integration::root_test;

const WEB: &str =
    "echo \"$VERSION $FLYNN_JOB_ID\" > /www/index.html; exec httpd -f -p $PORT -h /www";

fn scale(c: &Cluster, app: &str, release: &str, counts: &[(&str, u32)]) {
    let f = PutFormation {
        processes: counts
            .iter()
            .map(|(k, n)| (k.parse().unwrap(), *n))
            .collect(),
        ..PutFormation::default()
    };
    c.block_on(c.controller().put_formation(app, release, &f))
        .unwrap();
}

/// (host index, job id) of the app's running jobs of `kind`.
pub(crate) fn running(c: &Cluster, app_id: &str, kind: &str) -> Vec<(usize, String)> {
    c.app_jobs(app_id)
        .into_iter()
        .filter(|(_, j)| {
            j.state == host_api::JobState::Running
                && j.config
                    .metadata
                    .get("flynn-process-type")
                    .map(String::as_str)
                    == Some(kind)
        })
        .map(|(i, j)| (i, j.id.to_string()))
        .collect()
}

fn phase(what: &str) {
    eprintln!("=== {what}");
}

/// The job ids answering through host `via`'s router, over `tries` requests.
fn answering(c: &Cluster, via: usize, domain: &str, tries: usize) -> BTreeSet<String> {
    (0..tries)
        .filter_map(|_| match c.get(via, domain, "/") {
            (200, body) => Some(body.split_whitespace().last().unwrap_or("").to_string()),
            _ => None,
        })
        .collect()
}

#[root_test(isolated)]
fn scheduler_places_restarts_fails_over_and_survives_host_loss() {
    let mut c = Cluster::start(3);
    let api = c.controller();
    let (app, artifact) = c.app_with_image("web");
    let processes = serde_json::json!({
        "web": {
            "args": ["sh", "-c", WEB],
            "ports": [{"port": 8080, "proto": "tcp", "service": {"name": "web-web", "create": true}}],
            "volumes": [{"path": "/data", "delete_on_stop": true}],
            "resources": {"memory": {"limit": 67108864}}
        },
        "crasher": {"args": ["sh", "-c", "echo crashing; exit 3"], "resources": {"memory": {"limit": 67108864}}}
    });
    let release = c
        .block_on(api.create_release(&NewRelease {
            app_id: app.id.clone(),
            artifacts: vec![artifact.id.clone()],
            env: BTreeMap::from([
                ("GREETING".to_string(), "hi".to_string()),
                ("VERSION".to_string(), "v1".to_string()),
            ]),
            meta: BTreeMap::new(),
            processes: serde_json::from_value(processes.clone()).unwrap(),
        }))
        .unwrap();
    let domain = format!("web.{DOMAIN}");
    // The first deployment: nothing runs yet, so the release becomes current at once.
    let first = c.block_on(api.deploy("web", &release.id)).unwrap();
    assert_eq!(first.status, controller_api::DeploymentStatus::Complete);

    phase("web=3");
    // web=3 on three hosts: one each, every one answering through the router.
    scale(&c, "web", &release.id, &[("web", 3)]);
    c.wait(
        "three web jobs, one per host",
        Duration::from_secs(90),
        |c| {
            let r = running(c, &app.id, "web");
            r.len() == 3 && r.iter().map(|(h, _)| *h).collect::<BTreeSet<_>>().len() == 3
        },
    );
    let jobs: BTreeSet<String> = running(&c, &app.id, "web")
        .into_iter()
        .map(|(_, j)| j)
        .collect();
    c.wait(
        "the router reaches all three",
        Duration::from_secs(30),
        |c| answering(c, 0, &domain, 30) == jobs,
    );
    // The controller lists them as the scheduler reported them.
    c.wait(
        "the controller lists three up web jobs",
        Duration::from_secs(30),
        |c| {
            let listed = c.block_on(c.controller().jobs("web", true)).unwrap();
            let up: BTreeSet<String> = listed
                .iter()
                .filter(|j| j.state == controller_api::JobState::Up && j.kind == "web")
                .map(|j| j.id.clone())
                .collect();
            up == jobs
        },
    );
    // The job's environment: the platform's variables over the release's.
    let (h, id) = running(&c, &app.id, "web")[0].clone();
    let job = c
        .block_on(c.hosts[h].client().job(&id.parse().unwrap()))
        .unwrap();
    let env = &job.config.config.env;
    for (k, v) in [
        ("PORT", "8080"),
        ("FLYNN_APP_ID", app.id.as_str()),
        ("FLYNN_APP_NAME", "web"),
        ("FLYNN_RELEASE_ID", release.id.as_str()),
        ("FLYNN_PROCESS_TYPE", "web"),
        ("FLYNN_JOB_ID", id.as_str()),
        ("GREETING", "hi"),
    ] {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k} in {env:?}");
    }
    // A volume of its own, made on its host before it started.
    let volume = format!("{id}-v0");
    let mounted: Vec<(&str, &str)> = job
        .config
        .config
        .volumes
        .iter()
        .map(|v| (v.name.as_str(), v.target.as_str()))
        .collect();
    assert_eq!(mounted, [(volume.as_str(), "/data")]);
    let has_volume = |c: &Cluster| {
        c.block_on(c.hosts[h].client().volumes())
            .unwrap()
            .iter()
            .any(|v| v.name == volume)
    };
    assert!(has_volume(&c), "{volume} on host {h}");

    phase("zero-downtime deploys");
    let v2 = new_release(&c, &app.id, &artifact.id, "v2", WEB);
    deploy_under_load(
        &c,
        &domain,
        controller_api::Strategy::OneByOne,
        &v2,
        "v1",
        "v2",
    );
    let v3 = new_release(&c, &app.id, &artifact.id, "v3", WEB);
    deploy_under_load(
        &c,
        &domain,
        controller_api::Strategy::AllAtOnce,
        &v3,
        "v2",
        "v3",
    );
    // A release whose web process exits at once rolls back; v3 serves throughout.
    let broken = new_release(&c, &app.id, &artifact.id, "v4", "echo broken; exit 7");
    let load = Load::start(&c, &domain);
    let d = c.block_on(api.deploy("web", &broken)).unwrap();
    let d = until_deployed(&c, &d.id);
    let (failures, bodies) = load.stop();
    assert_eq!(d.status, controller_api::DeploymentStatus::Failed, "{d:?}");
    let why = d.error.clone().unwrap_or_default();
    assert!(why.starts_with("web job failed to start: "), "{why}");
    assert!(why.contains("status 7"), "{why}");
    assert_eq!(failures, 0, "requests failed during the failed deploy");
    assert!(bodies.iter().all(|b| b.starts_with("v3 ")), "{bodies:?}");
    assert_eq!(
        c.block_on(api.app("web")).unwrap().release.as_deref(),
        Some(v3.as_str())
    );
    // So does one whose web job does not pass its health check within its start timeout.
    let unhealthy = new_release_checked(
        &c,
        &app.id,
        &artifact.id,
        "v5",
        WEB,
        Some(serde_json::json!({"type": "http", "path": "/never", "start_timeout": 2})),
    );
    let d = c.block_on(api.deploy("web", &unhealthy)).unwrap();
    let d = until_deployed(&c, &d.id);
    assert_eq!(d.status, controller_api::DeploymentStatus::Failed, "{d:?}");
    let why = d.error.clone().unwrap_or_default();
    assert!(
        why.starts_with("web job failed to start: ")
            && why.contains("did not pass its health check within 2 s"),
        "{why}"
    );
    assert_eq!(
        c.block_on(api.app("web")).unwrap().release.as_deref(),
        Some(v3.as_str())
    );
    let release = c.block_on(api.release(&v3)).unwrap();
    c.wait("three v3 web jobs", Duration::from_secs(60), |c| {
        running(c, &app.id, "web").len() == 3
    });

    // The v1 jobs are gone, and with them their delete_on_stop volumes.
    c.wait(
        "the first web job's volume deleted",
        Duration::from_secs(30),
        |c| !has_volume(c),
    );

    phase("one-off jobs, kills and app logs");
    crate::cluster_jobs::one_off_jobs_kills_and_logs(&c, "web");
    // With no scheduler running, the controller still records a one-off job's end.
    for i in 0..2 {
        let h = &c.hosts[i];
        c.block_on(
            h.client()
                .stop(&integration::jid("scheduler"), Duration::from_secs(5)),
        )
        .unwrap();
    }
    c.wait("no scheduler leads", Duration::from_secs(30), |c| {
        c.scheduler_leader().is_none()
    });
    let job = c
        .block_on(api.run_job(
            "web",
            &controller_api::NewJob {
                args: vec!["sh".into(), "-c".into(), "exit 4".into()],
                ..Default::default()
            },
        ))
        .unwrap();
    c.wait(
        "the controller records the one-off job down by itself",
        Duration::from_secs(30),
        |c| {
            c.block_on(api.job("web", &job.id)).is_ok_and(|j| {
                j.state == controller_api::JobState::Down && j.exit_status == Some(4)
            })
        },
    );
    for i in 0..2 {
        c.start_scheduler(i);
    }
    c.wait("a scheduler leads again", Duration::from_secs(30), |c| {
        c.scheduler_leader().is_some()
    });

    phase("crash backoff");
    // A crashing type restarts at once a few times, then waits: the scheduler shows it.
    scale(&c, "web", &release.id, &[("web", 3), ("crasher", 1)]);
    let leader = || {
        let id = c.scheduler_leader().expect("a leader");
        let i: usize = id.trim_start_matches("scheduler-").parse().unwrap();
        i - 1
    };
    let key = format!("{}/{}/crasher", app.id, release.id);
    c.wait("the crasher backs off", Duration::from_secs(60), |c| {
        c.scheduler_status(leader())
            .and_then(|s| s["crashed"][&key].as_array().cloned())
            .is_some_and(|r| r.iter().any(|n| n.as_u64() >= Some(6)))
    });
    // The job list and events show the crash loop: ended jobs with their restart counts
    // and exit status. Reports reach the controller after the scheduler's own state: wait.
    c.wait(
        "the crash loop in the job list",
        Duration::from_secs(60),
        |c| {
            let listed = c.block_on(api.jobs("web", false)).unwrap_or_default();
            listed.iter().any(|j| {
                j.kind == "crasher"
                    && j.state == controller_api::JobState::Down
                    && j.restarts >= 5
                    && j.exit_status == Some(3)
            })
        },
    );
    let q = controller_api::client::EventQuery {
        object_types: vec![controller_api::ObjectType::Job],
        ..Default::default()
    };
    let events = c.block_on(api.events(&q)).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.data["type"] == "crasher" && e.data["state"] == "down"),
        "no job event of the crash"
    );
    scale(&c, "web", &release.id, &[("web", 3)]);

    phase("leader failover");
    // The leader dies during a scale: the standby finishes it, with no job twice.
    let old = leader();
    let per_host = |r: &[(usize, String)]| -> Vec<usize> {
        (0..3)
            .map(|i| r.iter().filter(|(h, _)| *h == i).count())
            .collect()
    };
    let before = per_host(&running(&c, &app.id, "web"));
    eprintln!("web jobs per host before: {before:?}");
    scale(&c, "web", &release.id, &[("web", 6)]);
    c.block_on(
        c.hosts[old]
            .client()
            .delete_job(&integration::jid("scheduler"), true),
    )
    .unwrap();
    c.wait("the standby leads", Duration::from_secs(30), |c| {
        c.scheduler_leader()
            .is_some_and(|l| l != format!("scheduler-{}", old + 1))
    });
    c.wait("six web jobs", Duration::from_secs(60), |c| {
        running(c, &app.id, "web").len() == 6
    });
    // Settled: still six (nothing started twice to be stopped later), each new one on a
    // host with the fewest (two per host when the three were spread before).
    std::thread::sleep(Duration::from_secs(3));
    let r = running(&c, &app.id, "web");
    assert_eq!(r.len(), 6, "{r:?}");
    assert_eq!(
        c.app_jobs(&app.id).len(),
        6,
        "no extra job is starting either"
    );
    let after = per_host(&r);
    let fewest = after.iter().min().copied().unwrap_or(0);
    for i in 0..3 {
        assert!(
            after[i] >= before[i],
            "a job stopped: {before:?} -> {after:?}"
        );
        assert!(
            after[i] == before[i] || after[i] <= fewest + 1,
            "new jobs stacked on host {i}: {before:?} -> {after:?}"
        );
    }
    c.start_scheduler(old);
    scale(&c, "web", &release.id, &[("web", 3)]);
    c.wait("back to three", Duration::from_secs(60), |c| {
        c.app_jobs(&app.id).len() == 3
    });

    phase("host loss");
    // Host 3 dies (daemon, jobs, namespaces): its job comes back on another host.
    c.hosts[2].destroy();
    c.wait(
        "three web jobs on the two hosts left",
        Duration::from_secs(60),
        |c| {
            let r = running(c, &app.id, "web");
            r.len() == 3 && r.iter().all(|(h, _)| *h < 2)
        },
    );
    let jobs: BTreeSet<String> = running(&c, &app.id, "web")
        .into_iter()
        .map(|(_, j)| j)
        .collect();
    c.wait(
        "the router reaches the three",
        Duration::from_secs(30),
        |c| answering(c, 0, &domain, 30) == jobs,
    );

    phase("host hangs");
    // Host 2 hangs: its registration expires and its jobs are replaced on host 1; back
    // again, its strays are stopped.
    let strays: Vec<String> = running(&c, &app.id, "web")
        .into_iter()
        .filter(|(h, _)| *h == 1)
        .map(|(_, j)| j)
        .collect();
    assert!(!strays.is_empty());
    c.hosts[1].freeze(true);
    c.wait("host 1 runs all three", Duration::from_secs(60), |c| {
        running(c, &app.id, "web")
            .iter()
            .filter(|(h, _)| *h == 0)
            .count()
            == 3
    });
    c.hosts[1].freeze(false);
    c.wait("the strays are stopped", Duration::from_secs(60), |c| {
        let r = running(c, &app.id, "web");
        r.len() == 3 && !r.iter().any(|(_, j)| strays.contains(j))
    });

    phase("controller restart");
    // The controller is killed and started again: nothing is lost (its state is in etcd).
    let controller = integration::jid("controller");
    let host0 = c.hosts[0].client();
    c.block_on(host0.delete_job(&controller, true)).unwrap();
    c.restart_controller();
    let f = c.block_on(api.formation("web", &release.id)).unwrap();
    let web = f.processes.iter().find(|(k, _)| k.as_str() == "web");
    assert_eq!(web.map(|(_, n)| *n), Some(3), "{f:?}");
    assert_eq!(running(&c, &app.id, "web").len(), 3);

    phase("drain");
    crate::cluster_drain::a_drained_hosts_jobs_move_under_load(&c, &app.id, &domain);
}

/// A new release of the app with `VERSION=version` and `web` running `script`.
fn new_release(c: &Cluster, app: &str, artifact: &str, version: &str, script: &str) -> String {
    new_release_checked(c, app, artifact, version, script, None)
}

/// As [`new_release`], the web service with health check `check`.
fn new_release_checked(
    c: &Cluster,
    app: &str,
    artifact: &str,
    version: &str,
    script: &str,
    check: Option<serde_json::Value>,
) -> String {
    let mut service = serde_json::json!({"name": "web-web", "create": true});
    if let Some(check) = check {
        service["check"] = check;
    }
    let processes = serde_json::json!({
        "web": {
            "args": ["sh", "-c", script],
            "ports": [{"port": 8080, "proto": "tcp", "service": service}],
            "volumes": [{"path": "/data", "delete_on_stop": true}],
            "resources": {"memory": {"limit": 67108864}}
        },
        "crasher": {"args": ["sh", "-c", "echo crashing; exit 3"], "resources": {"memory": {"limit": 67108864}}}
    });
    c.block_on(c.controller().create_release(&NewRelease {
        app_id: app.to_string(),
        artifacts: vec![artifact.to_string()],
        env: BTreeMap::from([("VERSION".to_string(), version.to_string())]),
        meta: BTreeMap::new(),
        processes: serde_json::from_value(processes).unwrap(),
    }))
    .unwrap()
    .id
}

/// Requests through the first host's router without pause, from a thread of their own.
pub(crate) struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl Load {
    pub(crate) fn start(c: &Cluster, domain: &str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, addr, domain) = (stop.clone(), c.router_addr(0), domain.to_string());
        let thread = std::thread::spawn(move || {
            let (mut failures, mut bodies) = (0, Vec::new());
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let out = std::process::Command::new("curl")
                    .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", "-H"])
                    .arg(format!("Host: {domain}"))
                    .arg(format!("http://{addr}/"))
                    .output()
                    .expect("curl");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                // A body cut short still has its 200 status: curl's exit code tells.
                match text.rsplit_once('\n') {
                    Some((body, "200")) if out.status.success() => {
                        bodies.push(body.trim().to_string())
                    }
                    _ => {
                        failures += 1;
                        eprintln!("request failed ({}): {text:?}", out.status);
                    }
                }
            }
            (failures, bodies)
        });
        Self { stop, thread }
    }

    /// Failed requests and the bodies of the others, in order.
    pub(crate) fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn until_deployed(c: &Cluster, id: &str) -> controller_api::Deployment {
    let mut last = None;
    c.wait("the deployment ends", Duration::from_secs(180), |c| {
        let d = c.block_on(c.controller().deployment("web", id)).unwrap();
        let done = d.status.is_final();
        last = Some(d);
        done
    });
    last.unwrap()
}

/// Deploys `release` with `strategy` while requests run: none fails, and the answers move
/// from `from` to `to` once and for all.
fn deploy_under_load(
    c: &Cluster,
    domain: &str,
    strategy: controller_api::Strategy,
    release: &str,
    from: &str,
    to: &str,
) {
    let api = c.controller();
    let update = controller_api::AppUpdate {
        strategy: Some(strategy),
        ..Default::default()
    };
    c.block_on(api.update_app("web", &update)).unwrap();
    let load = Load::start(c, domain);
    std::thread::sleep(Duration::from_millis(500));
    let d = c.block_on(api.deploy("web", release)).unwrap();
    let d = until_deployed(c, &d.id);
    std::thread::sleep(Duration::from_millis(500));
    let (failures, bodies) = load.stop();
    assert_eq!(
        d.status,
        controller_api::DeploymentStatus::Complete,
        "{d:?}"
    );
    assert_eq!(
        failures, 0,
        "{strategy:?}: requests failed during the deploy"
    );
    let first_new = bodies.iter().position(|b| b.starts_with(&format!("{to} ")));
    let first_new =
        first_new.unwrap_or_else(|| panic!("{strategy:?}: no answer from {to}: {bodies:?}"));
    assert!(
        bodies[..first_new]
            .iter()
            .all(|b| b.starts_with(&format!("{from} "))),
        "{bodies:?}"
    );
    assert!(
        bodies.last().unwrap().starts_with(&format!("{to} ")),
        "{bodies:?}"
    );
    assert!(bodies.len() > 20, "too few requests ran: {}", bodies.len());
    let app = c.block_on(api.app("web")).unwrap();
    assert_eq!(app.release.as_deref(), Some(release));
}
