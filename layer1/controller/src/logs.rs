//! App logs (`GET /apps/{app}/log`): the lines of the app's jobs, read from each job's host
//! and merged across hosts in time order; following, the lines of running jobs as they are
//! written, and of jobs that start later.

use std::collections::BTreeMap;

use controller_api::{Job, LogMessage};
use host_api::client::Client as HostClient;
use host_api::{JobId, LogLine, LogOptions, Stream};

use crate::controller::Controller;
use crate::error::ControllerError;
use crate::store::Store;

/// Lines returned when a request names no count (Flynn's buffer held 10,000 per app).
pub const DEFAULT_LINES: usize = 10_000;

/// Which lines `GET /apps/{app}/log` wants.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Only this job.
    pub job_id: Option<String>,
    /// Only jobs of this process type (`""`: one-off jobs).
    pub process_type: Option<String>,
    /// The last N lines of history (default [`DEFAULT_LINES`]).
    pub lines: Option<usize>,
    /// Keep sending lines as they are written.
    pub follow: bool,
}

impl LogQuery {
    /// True when job `j` is one whose lines are wanted.
    pub fn wants(&self, j: &Job) -> bool {
        self.job_id.as_ref().is_none_or(|id| *id == j.id)
            && self.process_type.as_ref().is_none_or(|t| *t == j.kind)
    }
}

/// A job whose log is read, and its host.
#[derive(Debug, Clone)]
pub struct LogSource {
    /// The job.
    pub job: Job,
    /// Its id on the host.
    pub id: JobId,
    /// Its host.
    pub host: HostClient,
}

impl LogSource {
    /// `line` as the app log's message.
    pub fn message(&self, line: LogLine) -> LogMessage {
        LogMessage {
            host_id: self.job.host_id.clone(),
            job_id: self.job.id.clone(),
            msg: line.line,
            process_type: self.job.kind.clone(),
            source: "app".into(),
            stream: match line.stream {
                Stream::Stdout => "stdout",
                Stream::Stderr => "stderr",
            }
            .into(),
            timestamp: line.time,
        }
    }

    /// The job's last `lines` lines.
    pub async fn tail(&self, lines: usize) -> Vec<LogLine> {
        let opts = LogOptions {
            tail: Some(lines),
            ..LogOptions::default()
        };
        let mut out = Vec::new();
        match self.host.logs(&self.id, &opts).await {
            Ok(mut s) => {
                while let Ok(Some(l)) = s.next().await {
                    out.push(l);
                }
            }
            Err(e) => tracing::warn!(job = %self.id, error = %e, "reading a job's log"),
        }
        out
    }
}

impl<S: Store> Controller<S> {
    /// Where each wanted job of `app` is logged: its host's API (jobs on hosts no longer
    /// registered are left out).
    pub async fn log_sources(
        &self,
        app: &str,
        q: &LogQuery,
    ) -> Result<Vec<LogSource>, ControllerError> {
        let jobs: Vec<Job> = self
            .jobs(app, false)
            .await?
            .into_iter()
            .filter(|j| q.wants(j))
            .collect();
        if let Some(id) = &q.job_id {
            if jobs.is_empty() {
                self.job(app, id).await?;
            }
        }
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let hosts: BTreeMap<String, HostClient> = self.hosts()?.list().await?.into_iter().collect();
        Ok(jobs
            .into_iter()
            .filter_map(|job| {
                let host = hosts.get(&job.host_id)?.clone();
                let id = job.id.parse().ok()?;
                Some(LogSource { job, id, host })
            })
            .collect())
    }

    /// The last `lines` lines of all `sources`, oldest first, merged by time; also the time
    /// of each job's last line so far (whatever `lines` is), where following it takes over.
    pub async fn log_history(
        &self,
        sources: &[LogSource],
        lines: usize,
    ) -> (Vec<LogMessage>, BTreeMap<String, flynn_http::Timestamp>) {
        // At least one line per job, even for `lines=0`: its time is where following the job
        // takes over, so that nothing it wrote before the request is sent as new.
        let reads = sources.iter().map(|s| async move {
            let tail = s.tail(lines.max(1)).await;
            (s, tail)
        });
        let mut all = Vec::new();
        let mut last = BTreeMap::new();
        for (s, tail) in futures_util::future::join_all(reads).await {
            if let Some(t) = tail.last().map(|l| l.time) {
                last.insert(s.job.id.clone(), t);
            }
            all.extend(tail.into_iter().map(|l| s.message(l)));
        }
        // A stable sort: one job's lines keep their order where times are equal.
        all.sort_by_key(|m| m.timestamp);
        let skip = all.len().saturating_sub(lines);
        (all.split_off(skip), last)
    }
}
