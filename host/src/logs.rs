//! Serving a job's log (written by its shim, read with [`runtime::log::LogReader`]) for the
//! API: the last lines, lines since a time, one stream, and following it while the job runs.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use runtime::log::{LogLine, LogReader, Stream};
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

/// Streams the log of the job directory `dir` into `tx`; `ended` tells whether the job has
/// ended, which ends a followed stream once everything written is sent. The file is read a
/// chunk at a time on the blocking pool, and a chunk is read only when the client has taken
/// the one before, so memory stays bounded whatever the log's size and the client's speed.
pub async fn stream(
    dir: PathBuf,
    opts: LogOptions,
    ended: impl Fn() -> bool + Send + 'static,
    tx: mpsc::Sender<LogLine>,
) {
    let reader = LogReader::new(dir);
    let opts = std::sync::Arc::new(opts);
    let start = {
        let (reader, opts) = (reader.clone(), opts.clone());
        tokio::task::spawn_blocking(move || match opts.tail {
            Some(n) => reader.seek_last(n, |l| opts.wants(l)),
            None => reader.start(),
        })
        .await
    };
    let Ok(Ok(mut cursor)) = start else { return };
    loop {
        let done = ended();
        // Everything written so far, chunk by chunk.
        loop {
            let reader = reader.clone();
            let read = tokio::task::spawn_blocking(move || {
                let lines = reader.next(&mut cursor);
                (lines, cursor)
            })
            .await;
            let Ok((Ok(lines), moved)) = read else { return };
            let progressed = moved != cursor || !lines.is_empty();
            cursor = moved;
            for l in lines.into_iter().filter(|l| opts.wants(l)) {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
            if !progressed {
                break;
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
