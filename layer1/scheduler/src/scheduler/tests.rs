//! The scheduler loop's bookkeeping, driven input by input: the races between its own
//! create and stop requests and the hosts' events that a plan must never count twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use controller_api::Release;
use flynn_http::{Endpoint, Timestamp};
use host_api::client::Client as HostClient;
use host_api::{Capacity, HostStatus, Job, JobId, JobState};
use tokio::sync::mpsc;

use super::{Input, Scheduler, Status};
use crate::formations::Active;
use crate::hosts::HostUp;

use crate::spec;

const HOST: &str = "h1";

/// An address where nothing answers: requests the scheduler sends fail, and their answers
/// are only what the test feeds it.
fn nowhere() -> Endpoint {
    Endpoint::Tcp("127.0.0.1:9".parse().expect("an address"))
}

fn release() -> Release {
    serde_json::from_value(serde_json::json!({
        "id": "r1",
        "app_id": "a1",
        "artifacts": [],
        "processes": {"web": {"args": ["web"]}},
        "created_at": "2026-12-05T00:00:00Z",
    }))
    .expect("a release")
}

fn formation(web: u32, at: i64) -> Input {
    Input::Formation(Box::new(Active {
        app: "a1".into(),
        app_name: "hello".into(),
        release: release(),
        image: "registry.test/hello@sha256:00".into(),
        processes: BTreeMap::from([("web".to_string(), web)]),
        tags: BTreeMap::new(),
        updated_at: Timestamp::from_unix_seconds(at),
    }))
}

fn job(id: &JobId, state: JobState) -> Job {
    let release = release();
    let process = &release.processes["web"];
    let config = spec::create_job(
        spec::Process {
            app_name: "hello",
            release: &release,
            image: "registry.test/hello@sha256:00",
            kind: "web",
            process,
        },
        id,
        0,
    );
    Job {
        id: id.clone(),
        state,
        config,
        created_at: Timestamp::now(),
        started_at: Some(Timestamp::now()),
        ended_at: state.is_final().then(Timestamp::now),
        pid: None,
        ip: None,
        ports: Vec::new(),
        exit: None,
        error: (state == JobState::Failed).then(|| "no such command".to_string()),
        restarts: 0,
        stopped: false,
    }
}

fn event(j: Job, deleted: bool) -> Input {
    Input::HostJob {
        host: HOST.into(),
        job: Box::new(j),
        deleted,
    }
}

fn host_status(id: &str) -> HostStatus {
    HostStatus {
        id: id.into(),
        tags: BTreeMap::new(),
        version: "test".into(),
        uptime: 1,
        cpus: 2,
        load: [0.0; 3],
        memory: Capacity {
            total: 8 << 30,
            available: 8 << 30,
        },
        disk: Capacity {
            total: 8 << 30,
            available: 8 << 30,
        },
        jobs: BTreeMap::new(),
        gateway: "100.100.0.1".parse().expect("an address"),
        draining: false,
        pid: 1,
        started: host_api::Timestamp::now(),
        discoverd: None,
        api: None,
    }
}

/// A scheduler that follows nothing (and the receiver its request tasks report to, kept so
/// their sends do not fail).
fn scheduler() -> (Scheduler, mpsc::Receiver<Input>) {
    let (tx, rx) = mpsc::channel(64);
    let (reports, _) = mpsc::unbounded_channel();
    let s = Scheduler::new(
        tx,
        Arc::new(Mutex::new(Status::default())),
        reports,
        discoverd_api::client::Client::new(nowhere()),
        tokio::sync::watch::channel(false).0,
    );
    (s, rx)
}

/// A leading scheduler with one host running `running` web jobs (and the receiver its
/// request tasks report to, kept so their sends do not fail).
fn leading(running: usize) -> (Scheduler, Vec<JobId>, mpsc::Receiver<Input>) {
    let (mut s, rx) = scheduler();
    let ids: Vec<JobId> = (0..running).map(|_| spec::job_id(HOST)).collect();
    s.apply(Input::Leader(true));
    s.apply(Input::HostUp(Box::new(HostUp {
        id: HOST.into(),
        client: HostClient::new(nowhere(), None),
        status: host_status(HOST),
        jobs: ids.iter().map(|id| job(id, JobState::Running)).collect(),
    })));
    (s, ids, rx)
}

#[tokio::test]
async fn a_job_stopped_while_being_created_never_counts_again() {
    let (mut s, running, _rx) = leading(3);
    s.apply(formation(3, 1));
    s.reconcile();
    assert!(s.creating.is_empty() && s.stopping.is_empty());

    // web=4 then web=3: the job being created is the one stopped.
    s.apply(formation(4, 2));
    s.reconcile();
    let new: Vec<JobId> = s.creating.keys().cloned().collect();
    assert_eq!(new.len(), 1);
    let new = new[0].clone();
    // Its host lists it, starting, when web=3 arrives: it is the one stopped.
    s.apply(event(job(&new, JobState::Starting), false));
    s.apply(formation(3, 3));
    s.reconcile();
    assert_eq!(s.stopping.iter().collect::<Vec<_>>(), vec![&new]);

    // The host ran it, ended it and deleted its record before the create call answered.
    s.apply(event(job(&new, JobState::Running), false));
    s.apply(event(job(&new, JobState::Exited), false));
    s.reconcile();
    s.apply(event(job(&new, JobState::Exited), true));
    s.reconcile();
    assert!(
        s.stopping.is_empty(),
        "a running job was stopped in place of the one already gone: {:?}",
        s.stopping
    );

    // The create call's late answer does not bring the job back.
    s.apply(Input::Created {
        host: HOST.into(),
        job: new.clone(),
        result: Ok(Box::new(job(&new, JobState::Running))),
    });
    s.reconcile();
    assert!(!s.hosts[HOST].jobs.contains_key(&new));
    assert!(s.creating.is_empty() && s.stopping.is_empty());
    for id in &running {
        assert_eq!(s.hosts[HOST].jobs[id].state, JobState::Running);
    }
}

#[tokio::test]
async fn a_job_in_a_state_a_newer_host_added_holds_its_slot() {
    let (mut s, running, _rx) = leading(3);
    s.apply(formation(3, 1));
    s.reconcile();
    assert!(s.creating.is_empty() && s.stopping.is_empty());

    // The host, newer than this scheduler, reports one job in a state unknown here (read
    // from its event as `Unknown`): it is neither replaced nor stopped.
    let event_json = serde_json::json!({
        "kind": "job",
        "job": job(&running[0], JobState::Running),
    })
    .to_string()
    .replace(r#""state":"running""#, r#""state":"paused""#);
    let payload: host_api::EventPayload = flynn_http::json::from_str(&event_json).unwrap();
    let host_api::EventPayload::Job { job: paused, .. } = payload else {
        panic!("a job event");
    };
    assert_eq!(paused.state, JobState::Unknown);
    s.apply(event(*paused, false));
    s.reconcile();
    assert!(
        s.creating.is_empty() && s.stopping.is_empty(),
        "creating {:?}, stopping {:?}",
        s.creating.keys().collect::<Vec<_>>(),
        s.stopping
    );

    // Once it is known to have ended, its slot is filled again.
    s.apply(event(job(&running[0], JobState::Exited), false));
    s.reconcile();
    assert_eq!(s.creating.len(), 1);
}

/// A release whose web jobs register under `hello-web` through their port.
fn serving_release() -> Release {
    let mut r = release();
    r.processes = serde_json::from_value(serde_json::json!({
        "web": {
            "args": ["web"],
            "ports": [{"port": 8080, "proto": "tcp", "service": {"name": "hello-web", "create": true}}]
        }
    }))
    .expect("processes");
    r
}

fn host_up(id: &str, draining: bool, jobs: Vec<Job>) -> Input {
    let mut status = host_status(id);
    status.draining = draining;
    Input::HostUp(Box::new(HostUp {
        id: id.into(),
        client: HostClient::new(nowhere(), None),
        status,
        jobs,
    }))
}

#[tokio::test]
async fn a_draining_hosts_job_stops_only_once_its_replacement_is_registered() {
    let (mut s, _rx) = scheduler();
    let release = serving_release();
    let old = spec::job_id("h1");
    let mut old_job = job(&old, JobState::Running);
    old_job.config = spec::create_job(
        spec::Process {
            app_name: "hello",
            release: &release,
            image: "registry.test/hello@sha256:00",
            kind: "web",
            process: &release.processes["web"],
        },
        &old,
        0,
    );
    s.apply(Input::Leader(true));
    s.apply(host_up("h1", true, vec![old_job.clone()]));
    s.apply(host_up("h2", false, vec![]));
    s.apply(Input::Formation(Box::new(Active {
        app: "a1".into(),
        app_name: "hello".into(),
        release: release.clone(),
        image: "registry.test/hello@sha256:00".into(),
        processes: BTreeMap::from([("web".to_string(), 1)]),
        tags: BTreeMap::new(),
        updated_at: Timestamp::from_unix_seconds(1),
    })));
    // Until discoverd's registrations are known, a running job counts as serving: the
    // draining host's job is not taken for one that never registered.
    s.reconcile();
    assert!(
        s.stopping.is_empty(),
        "stopped before registrations were known"
    );
    s.apply(Input::Registrations(
        [("hello-web".to_string(), old.to_string())].into(),
    ));
    s.reconcile();
    // A replacement starts on h2; the old job keeps serving.
    let new: Vec<JobId> = s.creating.keys().cloned().collect();
    assert_eq!(new.len(), 1);
    assert_eq!(s.creating[&new[0]].host, "h2");
    assert!(s.stopping.is_empty());

    // Running on h2, but not registered yet (its health check has not passed): the old
    // job still serves.
    let mut new_job = old_job.clone();
    new_job.id = new[0].clone();
    s.apply(Input::HostJob {
        host: "h2".into(),
        job: Box::new(new_job),
        deleted: false,
    });
    s.reconcile();
    assert!(
        s.stopping.is_empty(),
        "the draining host's job was stopped before its replacement served"
    );

    // Registered: now the old one stops.
    s.apply(Input::Registration {
        service: "hello-web".into(),
        id: new[0].to_string(),
        up: true,
    });
    s.reconcile();
    assert_eq!(s.stopping.iter().collect::<Vec<_>>(), vec![&old]);
}
