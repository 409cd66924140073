//! The event bus: every job state change and image pull or deletion, fanned out to
//! `GET /events` subscribers.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;

use host_api::{Event, EventPayload, Image, ImageAction, Job, JobAction, Timestamp};

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

impl Events {
    fn send(&self, payload: EventPayload) {
        let event = Event {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            time: Timestamp::now(),
            payload,
        };
        // No subscriber is not an error.
        let _ = self.tx.send(event);
    }

    /// A job reached `job.state`.
    pub fn job(&self, job: &Job) {
        self.send(EventPayload::Job {
            job: Box::new(job.clone()),
            action: None,
        });
    }

    /// A job's record was removed (deleted, or its start refused as a bad request).
    pub fn job_deleted(&self, job: &Job) {
        self.send(EventPayload::Job {
            job: Box::new(job.clone()),
            action: Some(JobAction::Deleted),
        });
    }

    /// Something happened to an image.
    pub fn image(&self, image: Image, action: ImageAction) {
        self.send(EventPayload::Image { image, action });
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
