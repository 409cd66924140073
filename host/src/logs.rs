//! Reading a job's log (`log.jsonl`, written by its shim) for the API: the last lines, lines
//! since a time, one stream, and following the file while the job runs.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use runtime::log::{LogLine, Stream};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::error::HostError;

/// How often a followed log is checked for new lines.
const POLL: Duration = Duration::from_millis(50);

/// Which lines to send.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Keep sending new lines until the job has ended.
    pub follow: bool,
    /// Only the last N lines that already exist.
    pub tail: Option<usize>,
    /// Only lines at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only this stream.
    pub stream: Option<Stream>,
}

impl LogOptions {
    /// Checks and normalises the options (times to the log's own format).
    pub fn validated(mut self) -> Result<Self, HostError> {
        if let Some(s) = &self.since {
            let t = DateTime::parse_from_rfc3339(s).map_err(|e| {
                HostError::BadRequest(format!(
                    "since={s:?} is not an RFC 3339 time ({e}); use e.g. 2026-01-02T03:04:05Z"
                ))
            })?;
            self.since = Some(
                t.with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::Nanos, true),
            );
        }
        Ok(self)
    }

    fn wants(&self, l: &LogLine) -> bool {
        // Record times share one fixed-width UTC format, so strings compare as times.
        self.stream.is_none_or(|s| s == l.stream)
            && self
                .since
                .as_deref()
                .is_none_or(|since| l.time.as_str() >= since)
    }
}

/// Streams the log at `path` into `tx`; `ended` tells whether the job has ended, which ends a
/// followed stream once everything written is sent.
pub async fn stream(
    path: PathBuf,
    opts: LogOptions,
    ended: impl Fn() -> bool + Send + 'static,
    tx: mpsc::Sender<LogLine>,
) {
    let mut file = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let done = ended();
        if file.is_none() {
            file = tokio::fs::File::open(&path).await.ok();
        }
        let mut lines = Vec::new();
        if let Some(f) = file.as_mut() {
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).await.is_err() {
                return;
            }
            pending.extend_from_slice(&buf);
            // Only whole records: the shim may be half-way through writing the last one.
            if let Some(end) = pending.iter().rposition(|&b| b == b'\n') {
                let whole: Vec<u8> = pending.drain(..=end).collect();
                lines.extend(
                    whole
                        .split(|&b| b == b'\n')
                        .filter_map(|l| serde_json::from_slice::<LogLine>(l).ok())
                        .filter(|l| opts.wants(l)),
                );
            }
        }
        if first {
            if let Some(n) = opts.tail {
                let skip = lines.len().saturating_sub(n);
                lines.drain(..skip);
            }
            first = false;
        }
        for l in lines {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        if !opts.follow || done {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tx.closed() => return,
        }
    }
}
