//! Serving a job's log (written by its shim, read with [`runtime::log::LogReader`]) for the
//! API: the last lines, lines since a time, one stream, and following it while the job runs.

impl Host {
    /// Streams job `id`'s log into `tx` as `opts` asks: a followed log ends once the job has
    /// ended and everything it wrote is sent. A job whose start failed has no files left:
    /// its log is empty.
    pub fn stream_log(
        &self,
        id: JobId,
        opts: LogOptions,
        tx: mpsc::Sender<LogLine>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let dir = self.runtime().jobs_dir().join(id.as_str());
        let host = self.clone();
        let ended = move || host.job(&id).map_or(true, |j| j.state.is_final());
        stream(dir, opts, ended, tx)
    }
}

use std::path::PathBuf;
use std::time::Duration;

use host_api::{JobId, LogOptions};
use runtime::log::{LogLine, LogReader};
use tokio::sync::mpsc;

use crate::host::Host;

/// How often a followed log is checked for new lines.
const POLL: Duration = Duration::from_millis(50);

/// Streams the log of the job directory `dir` into `tx`; `ended` tells whether the job has
/// ended, which ends a followed stream once everything written is sent. The file is read a
/// chunk at a time on the blocking pool, and a chunk is read only when the client has taken
/// the one before, so memory stays bounded whatever the log's size and the client's speed.
async fn stream(
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
