//! The job a release's process runs as: the host's [`CreateJob`] built from the app, release,
//! artifact and process type, with the platform's environment and labels. The scheduler
//! builds formation jobs with it and the controller one-off jobs, so both agree on every
//! label and variable.

use std::collections::BTreeMap;

use crate::{Limit, ProcessType, Release, DEFAULT_RESOURCES};
use host_api::{BindMount, CreateJob, JobConfig, JobId, NetworkMode, PortMap};

/// Host job label: the app id (with a process type, it marks a formation job).
pub const LABEL_APP: &str = "flynn-app-id";
/// Host job label: the app name.
pub const LABEL_APP_NAME: &str = "flynn-app-name";
/// Host job label: the release id.
pub const LABEL_RELEASE: &str = "flynn-release-id";
/// Host job label: the process type.
pub const LABEL_TYPE: &str = "flynn-process-type";
/// Host job label on one-off jobs (`flynn run`): `true`. They carry no process type.
pub const LABEL_ONE_OFF: &str = "flynn-one-off";
/// Host job label: how many times the job's slot has restarted.
pub const LABEL_RESTARTS: &str = "flynn-restarts";
/// Host job label: the job's volumes (comma-separated names) to delete once it is gone (the
/// release's `delete_on_stop` volumes).
pub const LABEL_DELETE_VOLUMES: &str = "flynn-delete-volumes";

/// The name of volume `index` of job `id`: each job gets volumes of its own.
pub fn volume_name(id: &JobId, index: usize) -> String {
    format!("{id}-v{index}")
}

/// The volumes to delete once the job with `labels` is gone.
pub fn volumes_to_delete(labels: &BTreeMap<String, String>) -> Vec<String> {
    labels
        .get(LABEL_DELETE_VOLUMES)
        .map(|v| {
            v.split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The first job port of a process type that names none (`5000 + index`, as Flynn did).
const FIRST_PORT: u16 = 5000;

/// Everything a job of one process type needs.
#[derive(Debug, Clone, Copy)]
pub struct Process<'a> {
    /// The app's name.
    pub app_name: &'a str,
    /// The release.
    pub release: &'a Release,
    /// The image every job of the release runs (the artifact's URI).
    pub image: &'a str,
    /// The process type's name.
    pub kind: &'a str,
    /// The process type.
    pub process: &'a ProcessType,
}

/// A new job id on `host`: `HOST-UUID`, so a job names where it runs.
pub fn job_id(host: &str) -> JobId {
    let id = format!("{host}-{}", uuid::Uuid::new_v4().simple());
    id.parse().unwrap_or_else(|_| {
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .parse()
            .expect("32 hex digits are a job id")
    })
}

/// The memory a job of `process` reserves on its host: its request, else its limit.
pub fn memory(process: &ProcessType) -> u64 {
    let m = process
        .resources
        .memory
        .as_ref()
        .or(DEFAULT_RESOURCES.memory.as_ref());
    m.and_then(|l| l.request.or(l.limit)).unwrap_or(0)
}

/// The host's limits for `r` (its `limit`s).
fn limits(r: &crate::Resources) -> host_api::Resources {
    let limit = |l: &Option<Limit>| l.as_ref().and_then(|l| l.limit);
    host_api::Resources {
        memory: limit(&r.memory),
        cpu_millis: limit(&r.cpu),
        nofile: limit(&r.max_fd),
        pids: limit(&r.max_procs).map(|n| n as i64),
        ..Default::default()
    }
}

/// The platform's variables: which app, release, process type and job this is.
fn platform_env(
    env: &mut BTreeMap<String, String>,
    app_name: &str,
    release: &Release,
    kind: &str,
    id: &JobId,
) {
    for (k, v) in [
        ("FLYNN_APP_ID", release.app_id.as_str()),
        ("FLYNN_APP_NAME", app_name),
        ("FLYNN_RELEASE_ID", release.id.as_str()),
        ("FLYNN_PROCESS_TYPE", kind),
        ("FLYNN_JOB_ID", id.as_str()),
    ] {
        env.insert(k.into(), v.into());
    }
}

/// A one-off job of a release (`POST /apps/{app}/jobs`).
#[derive(Debug, Clone, Copy)]
pub struct OneOff<'a> {
    /// The app's name.
    pub app_name: &'a str,
    /// The release.
    pub release: &'a Release,
    /// The image (the release's artifact URI).
    pub image: &'a str,
    /// What was asked for.
    pub job: &'a crate::NewJob,
    /// Keep stdin open for an attached client.
    pub stdin: bool,
}

/// The host request for one-off job `id`: the release's env with the job's on top, the
/// platform's variables (`FLYNN_PROCESS_TYPE` empty), no ports, the given limits with the
/// controller's defaults for the rest, under the init.
pub fn one_off_job(o: OneOff<'_>, id: &JobId) -> CreateJob {
    let mut env = o.release.env.clone();
    env.extend(o.job.env.clone());
    platform_env(&mut env, o.app_name, o.release, "", id);
    let r = crate::Resources::with_defaults(o.job.resources);
    let mut config = JobConfig::new(o.image, o.job.args.clone());
    config.env = env;
    config.tty = o.job.tty;
    config.stdin = o.stdin;
    config.resources = limits(&r);
    config.init = true;
    let metadata = BTreeMap::from([
        (LABEL_APP.to_string(), o.release.app_id.clone()),
        (LABEL_APP_NAME.to_string(), o.app_name.to_string()),
        (LABEL_RELEASE.to_string(), o.release.id.clone()),
        (LABEL_ONE_OFF.to_string(), "true".to_string()),
    ]);
    CreateJob {
        id: Some(id.clone()),
        config,
        metadata,
        ..CreateJob::default()
    }
}

/// The app and release of a one-off job, from its labels.
pub fn one_off_of(labels: &BTreeMap<String, String>) -> Option<(String, String)> {
    if labels.get(LABEL_ONE_OFF).map(String::as_str) != Some("true") {
        return None;
    }
    Some((
        labels.get(LABEL_APP)?.clone(),
        labels.get(LABEL_RELEASE)?.clone(),
    ))
}

/// What the controller records of host job `j` (of `release`'s type `kind` on `host`,
/// restarted `restarts` times): `up` while it runs, `down` with its exit code and error once
/// it ended, `starting` before.
pub fn report(
    j: &host_api::Job,
    release: &str,
    kind: &str,
    host: &str,
    restarts: u32,
) -> crate::PutJob {
    let state = match j.state {
        _ if j.state.is_final() => crate::JobState::Down,
        host_api::JobState::Running => crate::JobState::Up,
        _ => crate::JobState::Starting,
    };
    crate::PutJob {
        release: release.to_string(),
        kind: kind.to_string(),
        host_id: host.to_string(),
        state,
        restarts,
        exit_status: j.exit.as_ref().and_then(|e| e.code),
        host_error: j.error.clone(),
    }
}

/// The host request for job `id` of `p`, restarted `restarts` times.
pub fn create_job(p: Process<'_>, id: &JobId, restarts: u32) -> CreateJob {
    let proc = p.process;
    let mut env: BTreeMap<String, String> = p.release.env.clone();
    env.extend(proc.env.clone());
    let mut ports = Vec::new();
    for (i, port) in proc.ports.iter().enumerate() {
        let job = match port.port {
            0 => FIRST_PORT + i as u16,
            n => n,
        };
        if i == 0 {
            env.insert("PORT".into(), job.to_string());
        }
        env.insert(format!("PORT_{i}"), job.to_string());
        // A host-network job listens on the host itself: nothing to publish.
        ports.push(PortMap {
            host: 0,
            job,
            proto: port.proto,
        });
    }
    platform_env(&mut env, p.app_name, p.release, p.kind, id);
    // The service: the first port that names one (with its check), else the process type's.
    let (service, service_port, service_check, service_check_timing) = match proc
        .ports
        .iter()
        .zip(&ports)
        .find_map(|(port, map)| port.service.as_ref().map(|s| (s, map.job)))
    {
        Some((s, port)) => (
            Some(s.name.clone()),
            Some(port),
            http_check(s),
            check_timing(s),
        ),
        // A service without a port is one the job registers itself (a router's API): the
        // host has nothing to register.
        None => (None, None, None, None),
    };
    let resources = limits(&proc.resources);
    let mut config = JobConfig::new(p.image, proc.args.clone());
    config.env = env;
    config.ports = if proc.host_network { Vec::new() } else { ports };
    config.resources = resources;
    // Under an init, a program that installs no SIGTERM handler still stops when drained.
    config.init = true;
    config.network = if proc.host_network {
        NetworkMode::Host
    } else {
        NetworkMode::Bridge
    };
    config.mounts = proc
        .mounts
        .iter()
        .map(|m| BindMount {
            source: m.location.clone(),
            target: m.target.clone(),
            readonly: !m.writeable,
        })
        .collect();
    config.net_raw = proc
        .linux_capabilities
        .iter()
        .any(|c| c.eq_ignore_ascii_case("CAP_NET_RAW"));
    let mut metadata = BTreeMap::from([
        (LABEL_APP.to_string(), p.release.app_id.clone()),
        (LABEL_APP_NAME.to_string(), p.app_name.to_string()),
        (LABEL_RELEASE.to_string(), p.release.id.clone()),
        (LABEL_TYPE.to_string(), p.kind.to_string()),
        (LABEL_RESTARTS.to_string(), restarts.to_string()),
    ]);
    // Volumes of the job's own, created on the host before the job.
    let mut delete = Vec::new();
    for (i, v) in proc.volumes.iter().enumerate() {
        let name = volume_name(id, i);
        if v.delete_on_stop {
            delete.push(name.clone());
        }
        config.volumes.push(host_api::VolumeMount {
            name,
            target: v.path.clone(),
            readonly: false,
        });
    }
    if !delete.is_empty() {
        metadata.insert(LABEL_DELETE_VOLUMES.into(), delete.join(","));
    }
    CreateJob {
        id: Some(id.clone()),
        config,
        service,
        service_port,
        service_check,
        service_check_timing,
        metadata,
        restart: Default::default(),
    }
}

/// Default seconds between checks of a service that names a check.
pub const CHECK_INTERVAL: u32 = 2;
/// Default passes (or failures) in a row that change a checked service's state.
pub const CHECK_THRESHOLD: u32 = 2;
/// Default seconds a new job may take to pass its check.
pub const CHECK_START_TIMEOUT: u32 = 10;

/// The timing of a service's check, when the release names one: checked every `interval`
/// for as long as the job runs, `threshold` in a row to change its state, and stopped when
/// it does not pass within `start_timeout`.
fn check_timing(s: &crate::PortService) -> Option<host_api::CheckTiming> {
    let c = s.check.as_ref()?;
    Some(host_api::CheckTiming {
        interval_ms: u64::from(c.interval.unwrap_or(CHECK_INTERVAL)) * 1000,
        threshold: c.threshold.unwrap_or(CHECK_THRESHOLD).max(1),
        start_timeout_ms: Some(u64::from(c.start_timeout.unwrap_or(CHECK_START_TIMEOUT)) * 1000),
    })
}

/// The host's HTTP check for a service whose check is `http` (path default `/`); a `tcp`
/// check is the host's default.
fn http_check(s: &crate::PortService) -> Option<host_api::HttpCheck> {
    let c = s.check.as_ref()?;
    (c.kind == crate::CheckType::Http).then(|| host_api::HttpCheck {
        path: c.path.clone().unwrap_or_else(|| "/".into()),
        status: c.status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(processes: serde_json::Value) -> Release {
        serde_json::from_value(serde_json::json!({
            "id": "r1", "app_id": "a1", "artifacts": ["i1"], "env": {"A": "1", "B": "1"},
            "meta": {}, "processes": processes, "created_at": "2026-12-03T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn formation_jobs_carry_env_labels_ports_checks_and_the_init() {
        let r = release(serde_json::json!({"web": {
            "args": ["serve"], "env": {"B": "2"},
            "ports": [{"port": 0, "proto": "tcp", "service": {"name": "app-web", "create": true,
                       "check": {"type": "http", "path": "/ping", "status": 204}}}]
        }}));
        let p = &r.processes["web"];
        let id: JobId = "h1-0123".parse().unwrap();
        let process = Process {
            app_name: "app",
            release: &r,
            image: "img",
            kind: "web",
            process: p,
        };
        let job = create_job(process, &id, 3);
        let env = &job.config.env;
        assert_eq!((env["A"].as_str(), env["B"].as_str()), ("1", "2"));
        assert_eq!(env["PORT"], "5000");
        assert_eq!(env["FLYNN_JOB_ID"], "h1-0123");
        assert_eq!(env["FLYNN_PROCESS_TYPE"], "web");
        assert_eq!(job.config.ports[0].job, 5000);
        assert_eq!(job.service.as_ref().map(|s| s.as_str()), Some("app-web"));
        assert_eq!(job.service_port, Some(5000));
        let check = job.service_check.expect("an HTTP check");
        assert_eq!((check.path.as_str(), check.status), ("/ping", Some(204)));
        let timing = job.service_check_timing.expect("a named check is timed");
        assert_eq!(
            (
                timing.interval_ms,
                timing.threshold,
                timing.start_timeout_ms
            ),
            (2000, 2, Some(10_000))
        );
        assert!(job.config.init);
        assert_eq!(job.metadata[LABEL_RESTARTS], "3");

        // A TCP check is the host's default: none is sent.
        let r = release(serde_json::json!({"web": {
            "ports": [{"port": 8080, "proto": "tcp", "service": {"name": "app-web", "create": true,
                       "check": {"type": "tcp"}}}]
        }}));
        let process = Process {
            process: &r.processes["web"],
            release: &r,
            ..process
        };
        assert!(create_job(process, &id, 0).service_check.is_none());
    }

    #[test]
    fn each_job_gets_volumes_of_its_own() {
        let r = release(serde_json::json!({"db": {
            "volumes": [{"path": "/data", "delete_on_stop": true}, {"path": "/keep"}]
        }}));
        let id: JobId = "h1-0789".parse().unwrap();
        let process = Process {
            app_name: "app",
            release: &r,
            image: "img",
            kind: "db",
            process: &r.processes["db"],
        };
        let job = create_job(process, &id, 0);
        let mounts: Vec<(&str, &str)> = job
            .config
            .volumes
            .iter()
            .map(|v| (v.name.as_str(), v.target.as_str()))
            .collect();
        assert_eq!(mounts, [("h1-0789-v0", "/data"), ("h1-0789-v1", "/keep")]);
        assert_eq!(volumes_to_delete(&job.metadata), ["h1-0789-v0"]);
        assert!(volumes_to_delete(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn one_off_jobs_are_labelled_and_found_again() {
        let r = release(serde_json::json!({}));
        let new = crate::NewJob {
            args: vec!["sh".into()],
            env: BTreeMap::from([("B".to_string(), "3".to_string())]),
            ..crate::NewJob::default()
        };
        let id: JobId = "h1-0456".parse().unwrap();
        let o = OneOff {
            app_name: "app",
            release: &r,
            image: "img",
            job: &new,
            stdin: true,
        };
        let job = one_off_job(o, &id);
        assert_eq!(job.config.env["B"], "3");
        assert_eq!(job.config.env["FLYNN_PROCESS_TYPE"], "");
        assert!(job.config.stdin && job.config.init && job.service.is_none());
        assert_eq!(job.config.resources.memory, Some(1 << 30));
        assert_eq!(
            one_off_of(&job.metadata),
            Some(("a1".to_string(), "r1".to_string()))
        );
        assert!(one_off_of(&BTreeMap::new()).is_none());
    }
}
