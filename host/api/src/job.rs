//! Jobs: the create request, a job as the host reports it, its states, signals.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use discoverd_api::ServiceName;
use flynn_http::Timestamp;
use runtime_api::{ExitStatus, JobConfig, JobId, PortMap};
use serde::{Deserialize, Deserializer, Serialize};

/// `POST /jobs`: the job to create: its [`JobConfig`] (flat in the JSON) and what the host
/// does around it. Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CreateJob {
    /// The job id; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<JobId>,
    /// What the job runs and how.
    #[serde(flatten)]
    pub config: JobConfig,
    /// Register the job in discoverd under this service name while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceName>,
    /// The job port registered for the service (default: the first published job port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_port: Option<u16>,
    /// How the host decides the service is up before registering it (default: the service
    /// port accepts a TCP connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_check: Option<HttpCheck>,
    /// How often and how strictly the check runs (default: until it first passes, then
    /// never again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_check_timing: Option<CheckTiming>,
    /// Free-form labels, usable as list filters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Whether the host starts the job again when it ends (default `no`).
    #[serde(default, skip_serializing_if = "RestartPolicy::is_no")]
    pub restart: RestartPolicy,
}

flynn_http::wire_enum! {
    /// When the host starts an ended job again, under the same id and request (Docker's
    /// `--restart`). A job stopped or deleted through the API is never restarted. The delay
    /// doubles with each run shorter than [`RestartPolicy::STEADY`], from 100 ms up to 30 s.
    #[derive(Default)]
    pub enum RestartPolicy("restart policy") {
        /// Never.
        #[default]
        No = "no",
        /// When it exits non-zero, is killed by a signal or fails.
        OnFailure = "on-failure",
        /// Whenever it ends.
        Always = "always",
    }
}

impl RestartPolicy {
    /// A run at least this long counts as steady: the next restart's delay starts over.
    pub const STEADY: std::time::Duration = std::time::Duration::from_secs(10);

    /// True for the default, `no`.
    pub fn is_no(&self) -> bool {
        *self == RestartPolicy::No
    }

    /// True when a job that ended as `job` did is started again under this policy.
    pub fn restarts(self, job: &Job) -> bool {
        if job.stopped || !job.state.is_final() {
            return false;
        }
        match self {
            // A policy a newer host recorded (this host was downgraded): not followed.
            RestartPolicy::No | RestartPolicy::Unknown => false,
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => {
                job.state == JobState::Failed
                    || job
                        .exit
                        .as_ref()
                        .is_none_or(|e| e.code != Some(0) || e.signal.is_some())
            }
        }
    }
}

/// An HTTP health check: `GET path` on the service port must answer `status` (default: any
/// 2xx or 3xx) before the job is registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// The path (and query) to GET; starts with `/`.
    pub path: String,
    /// The status that counts as healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// The timing of a service's health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckTiming {
    /// Milliseconds between checks once the job is registered: a registered job failing
    /// `threshold` checks in a row is deregistered (routers stop sending it requests) until it
    /// passes `threshold` in a row again.
    pub interval_ms: u64,
    /// Passes (before the job is registered) or failures (before it is taken out) needed in
    /// a row; at least 1.
    #[serde(default = "one")]
    pub threshold: u32,
    /// Milliseconds a new job may take to pass `threshold` checks in a row; after that the
    /// host stops it and it ends `failed` with the reason. None: it is left running,
    /// unregistered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

impl HttpCheck {
    /// True when an answer with `status` passes.
    pub fn passes(&self, status: u16) -> bool {
        match self.status {
            Some(s) => s == status,
            None => (200..400).contains(&status),
        }
    }
}

impl CreateJob {
    /// A request running `args` from `image`, everything else at its default.
    pub fn new(image: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            config: JobConfig::new(image, args),
            ..Self::default()
        }
    }
}

// By hand: `#[serde(flatten)]` cannot refuse unknown fields, so the host's own fields are
// taken out first and the rest must be exactly a `JobConfig` (which refuses the unknown;
// `json::part` reads it as leniently as the whole, for a job read from a newer host).
impl<'de> Deserialize<'de> for CreateJob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        fn take<T: serde::de::DeserializeOwned, E: Error>(
            map: &mut serde_json::Map<String, serde_json::Value>,
            key: &str,
        ) -> Result<Option<T>, E> {
            match map.remove(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => flynn_http::json::part(v)
                    .map(Some)
                    .map_err(|e| E::custom(format!("{key}: {e}"))),
            }
        }
        let id = take(&mut map, "id")?;
        let service = take(&mut map, "service")?;
        let service_port = take(&mut map, "service_port")?;
        let service_check = take(&mut map, "service_check")?;
        let service_check_timing = take(&mut map, "service_check_timing")?;
        let metadata = take(&mut map, "metadata")?.unwrap_or_default();
        let restart = take(&mut map, "restart")?.unwrap_or_default();
        let config =
            flynn_http::json::part(serde_json::Value::Object(map)).map_err(D::Error::custom)?;
        Ok(Self {
            id,
            config,
            service,
            service_port,
            service_check,
            service_check_timing,
            metadata,
            restart,
        })
    }
}

flynn_http::wire_enum! {
    /// Where a job is in its life. `Unknown` is a state a newer host reports (read from
    /// answers and events only; a host never records it): neither running nor ended, wait
    /// for the next.
    #[derive(Hash, PartialOrd, Ord)]
    pub enum JobState("job state") {
        /// Being set up.
        Starting = "starting",
        /// Its process runs.
        Running = "running",
        /// It ended; `exit` says how.
        Exited = "exited",
        /// It could not start, or its monitor died; `error` says why.
        Failed = "failed",
    }
}

impl JobState {
    /// True once the job has ended (exited or failed).
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Exited | JobState::Failed)
    }
}

/// A job as the host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The job id.
    pub id: JobId,
    /// Where it is in its life.
    pub state: JobState,
    /// What was asked for (with the id filled in).
    pub config: CreateJob,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its process started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// Its init process on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Its address on the job network (bridge mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// Published ports, with the host ports actually used.
    #[serde(default)]
    pub ports: Vec<PortMap>,
    /// How it ended (state `exited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
    /// Why it failed (state `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How often the host started it again under its restart policy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u32,
    /// True once a stop or delete through the API ended it (it is not restarted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `POST /jobs/{id}/signal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// A signal name (`TERM`, `SIGTERM`) or number.
    pub signal: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_request_is_flat_and_refuses_unknown_fields() {
        let req: CreateJob = serde_json::from_str(
            r#"{"id":"web","image":"busybox","args":["sh"],"service":"web","metadata":{"a":"b"}}"#,
        )
        .unwrap();
        assert_eq!(req.id.as_ref().unwrap().as_str(), "web");
        assert_eq!(req.config.image, "busybox");
        assert_eq!(req.service.as_ref().map(|s| s.as_str()), Some("web"));
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(back["image"], "busybox");
        assert_eq!(back["metadata"]["a"], "b");
        for bad in [
            r#"{"image":"busybox","nope":1}"#,
            r#"{"args":["sh"]}"#,
            r#"{"id":"../x","image":"busybox"}"#,
            r#"{"image":"busybox","ports":[{"job":80,"proto":"sctp"}]}"#,
            r#"{"image":"busybox","restart":"sometimes"}"#,
        ] {
            assert!(serde_json::from_str::<CreateJob>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_job_from_a_newer_host_is_read_without_the_fields_it_adds() {
        // As a host one release ahead answers: a field added to the job, to its request
        // (read by hand, see `CreateJob`), to a port and to a resource limit.
        let json = r#"{"id":"j","state":"running","created_at":"2026-12-06T10:00:00Z",
            "config":{"image":"busybox","args":["sh"],"priority":3,
                "ports":[{"job":80,"host":8080,"proto":"tcp","ip_family":"v6"}],
                "resources":{"memory":1024,"cpu_burst":2}},
            "ports":[{"job":80,"host":8080,"proto":"tcp","ip_family":"v6"},
                {"job":81,"host":8081,"proto":"sctp"}],
            "cpu_seconds":1.5}"#;
        assert!(
            serde_json::from_str::<Job>(json).is_err(),
            "the strict reading refuses it"
        );
        let job: Job = flynn_http::json::from_str(json).unwrap();
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.config.config.args, ["sh"]);
        assert_eq!(job.config.config.ports[0].host, 8080);
        assert_eq!(job.ports[0].host, 8080);
        // a protocol it adds
        assert_eq!(job.ports[1].proto, flynn_http::Proto::Unknown);
        assert_eq!(job.config.config.resources.memory, Some(1024));
        // a request with the same field is still refused, naming it
        let e = serde_json::from_str::<CreateJob>(r#"{"image":"busybox","priority":3}"#);
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("unknown field `priority`"));
    }

    #[test]
    fn restart_policies_follow_how_the_job_ended() {
        let req: CreateJob =
            serde_json::from_str(r#"{"image":"busybox","restart":"on-failure"}"#).unwrap();
        assert_eq!(req.restart, RestartPolicy::OnFailure);
        assert_eq!(serde_json::to_value(&req).unwrap()["restart"], "on-failure");
        let plain = serde_json::to_value(CreateJob::new("busybox", vec![])).unwrap();
        assert!(plain.get("restart").is_none());
        let ended = |state, code: Option<i32>, signal: Option<i32>, stopped| Job {
            id: "j".parse().unwrap(),
            state,
            config: CreateJob::new("busybox", vec![]),
            created_at: Timestamp::now(),
            started_at: None,
            ended_at: None,
            pid: None,
            ip: None,
            ports: Vec::new(),
            exit: code.or(signal).map(|_| ExitStatus {
                code,
                signal,
                oom_killed: false,
            }),
            error: None,
            restarts: 0,
            stopped,
        };
        let ok = ended(JobState::Exited, Some(0), None, false);
        let code = ended(JobState::Exited, Some(3), None, false);
        let killed = ended(JobState::Exited, None, Some(9), false);
        let failed = ended(JobState::Failed, None, None, false);
        let stopped = ended(JobState::Exited, None, Some(15), true);
        let running = ended(JobState::Running, None, None, false);
        use RestartPolicy::*;
        for (policy, job, restarts) in [
            (No, &code, false),
            (OnFailure, &ok, false),
            (OnFailure, &code, true),
            (OnFailure, &killed, true),
            (OnFailure, &failed, true),
            (OnFailure, &stopped, false),
            (Always, &ok, true),
            (Always, &stopped, false),
            (Always, &running, false),
        ] {
            assert_eq!(policy.restarts(job), restarts, "{policy:?} {job:?}");
        }
        assert_eq!("always".parse::<RestartPolicy>(), Ok(Always));
        assert!("sometimes".parse::<RestartPolicy>().is_err());
    }
}
