//! Jobs as the controller records them: the scheduler reports every job it runs for a
//! formation (where, in what state, how often its slot restarted), so users list them and
//! follow their events without asking hosts.

use std::collections::BTreeMap;

use flynn_http::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Resources;

flynn_http::wire_enum! {
    /// Where a job is in its life. `Unknown` is a state a newer controller reports.
    #[derive(PartialOrd, Ord)]
    pub enum JobState("job state") {
        /// Placed; its host is setting it up.
        Starting = "starting",
        /// Running.
        Up = "up",
        /// Being stopped.
        Stopping = "stopping",
        /// Ended (exited, failed to start, stopped, or its host was lost).
        Down = "down",
    }
}

/// A job of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Its id (`HOST-UUID`).
    pub id: String,
    /// The app id.
    pub app: String,
    /// The release id.
    pub release: String,
    /// The process type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The host it runs on.
    pub host_id: String,
    /// Its state.
    pub state: JobState,
    /// How many times its slot restarted after crashes (0 for a first start).
    #[serde(default)]
    pub restarts: u32,
    /// Its exit status, once it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// Why it failed or ended, as its host or the scheduler says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_error: Option<String>,
    /// When it was first reported.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl Job {
    /// The record as a report (what `PUT /apps/{app}/jobs/{id}` would have to send).
    pub fn report(&self) -> PutJob {
        PutJob {
            release: self.release.clone(),
            kind: self.kind.clone(),
            host_id: self.host_id.clone(),
            state: self.state,
            restarts: self.restarts,
            exit_status: self.exit_status,
            host_error: self.host_error.clone(),
        }
    }
}

/// `PUT /apps/{app}/jobs/{id}`: what the scheduler reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutJob {
    /// The release id.
    pub release: String,
    /// The process type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The host.
    pub host_id: String,
    /// The state.
    pub state: JobState,
    /// Restarts of its slot.
    #[serde(default)]
    pub restarts: u32,
    /// Exit status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// Why it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_error: Option<String>,
}

/// The header of an attached `POST /apps/{app}/jobs`'s `101` that names the job.
pub const JOB_ID_HEADER: &str = "flynn-job-id";

/// Ended jobs kept per app (the oldest go first).
pub const KEPT_DOWN_JOBS: usize = 100;

/// `POST /apps/{app}/jobs`: a one-off job (`flynn run`), a command of a release on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    /// The release whose image and env it runs with (default: the app's current one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The command (default: the image's entrypoint and command).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Variables on top of the release's env.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Run on a terminal (for an attached, interactive client).
    #[serde(default)]
    pub tty: bool,
    /// Limits (missing ones: the controller's defaults, 1 GiB of memory and so on).
    #[serde(default)]
    pub resources: Resources,
}

/// One line of `GET /apps/{app}/log` (NDJSON): a line a job of the app wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogMessage {
    /// The host the job runs on.
    pub host_id: String,
    /// The job.
    pub job_id: String,
    /// The line, without its newline.
    pub msg: String,
    /// The job's process type (empty for one-off jobs).
    pub process_type: String,
    /// Who wrote it: `app`.
    pub source: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When the line was written.
    pub timestamp: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_state_a_newer_controller_added_reads_as_unknown_and_requests_refuse_it() {
        let job = r#"{"id":"h1-a","app":"a","release":"r","type":"web","host_id":"h1",
            "state":"paused","created_at":"2026-12-06T00:00:00Z","updated_at":"2026-12-06T00:00:00Z"}"#;
        let j: Job = flynn_http::json::from_str(job).unwrap();
        assert_eq!((j.id.as_str(), j.state), ("h1-a", JobState::Unknown));
        assert_eq!(j.state.as_str(), "unknown");
        for state in ["paused", "unknown"] {
            let put = format!(r#"{{"release":"r","type":"web","host_id":"h1","state":"{state}"}}"#);
            let e = serde_json::from_str::<PutJob>(&put).unwrap_err();
            assert!(
                e.to_string()
                    .contains("expected one of `starting`, `up`, `stopping`, `down`"),
                "{e}"
            );
        }
        assert_eq!("up".parse::<JobState>(), Ok(JobState::Up));
        assert!("unknown".parse::<JobState>().is_err());
    }
}
