//! The access log: one JSON line per request on standard output, written by one task from a
//! bounded queue, so a slow terminal or pipe never slows requests (lines beyond the queue are
//! counted and reported as dropped).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Lines queued before new ones are dropped.
const QUEUE: usize = 16384;

/// One request, as logged.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// When its response headers were sent (RFC 3339).
    pub time: flynn_http::Timestamp,
    /// Its `X-Request-Id`.
    pub request_id: String,
    /// The client (after PROXY protocol).
    pub client: String,
    /// Method.
    pub method: String,
    /// Host as requested.
    pub host: String,
    /// Path and query.
    pub path: String,
    /// HTTP version.
    pub proto: &'static str,
    /// Response status.
    pub status: u16,
    /// The route id (empty when none matched).
    pub route: String,
    /// The backend that answered, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Milliseconds to response headers.
    pub duration_ms: f64,
}

/// Milliseconds with three decimals, as entries have them.
pub fn duration_ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1000.0
}

/// The sending side (cheap to clone).
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Entry>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// A log written to standard output by a task of its own.
    pub fn stdout() -> Self {
        let (tx, mut rx) = mpsc::channel::<Entry>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let seen = dropped.clone();
        tokio::spawn(async move {
            let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
            let mut line = Vec::with_capacity(512);
            while let Some(entry) = rx.recv().await {
                let mut next = Some(entry);
                while let Some(e) = next {
                    line.clear();
                    serde_json::to_writer(&mut line, &e).expect("an entry serializes");
                    line.push(b'\n');
                    if out.write_all(&line).await.is_err() {
                        return;
                    }
                    next = rx.try_recv().ok();
                }
                let lost = seen.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    tracing::warn!(
                        lines = lost,
                        "access log lines dropped: standard output is too slow"
                    );
                }
                if out.flush().await.is_err() {
                    return;
                }
            }
        });
        Self { tx, dropped }
    }

    /// Queues a line (dropped, and counted, when the queue is full).
    pub fn log(&self, entry: Entry) {
        if self.tx.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
