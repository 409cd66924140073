//! The event bus: every job state change and image pull or deletion, fanned out to
//! `GET /events` subscribers.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;

use crate::api::{Event, EventKind, Image, Job};

/// Events kept for subscribers that fall behind; a slower subscriber is told it lagged.
const BACKLOG: usize = 4096;

/// Publishes events to every subscriber.
#[derive(Debug)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    seq: AtomicU64,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
            seq: AtomicU64::new(0),
        }
    }
}

/// Now, as the API writes times (RFC 3339, UTC, nanoseconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl Events {
    fn send(&self, kind: EventKind, job: Option<Job>, image: Option<Image>, action: Option<&str>) {
        let event = Event {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            time: now(),
            kind,
            job,
            image,
            action: action.map(str::to_string),
        };
        // No subscriber is not an error.
        let _ = self.tx.send(event);
    }

    /// A job reached `job.state`.
    pub fn job(&self, job: &Job) {
        self.send(EventKind::Job, Some(job.clone()), None, None);
    }

    /// A job's record was removed (deleted, or its start refused as a bad request).
    pub fn job_deleted(&self, job: &Job) {
        self.send(EventKind::Job, Some(job.clone()), None, Some("deleted"));
    }

    /// Something happened to an image: `pulled` or `deleted`.
    pub fn image(&self, image: Image, action: &str) {
        self.send(EventKind::Image, None, Some(image), Some(action));
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
