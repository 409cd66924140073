//! The router's event stream: route set/remove and backend up/down/drained, numbered, to
//! every subscriber of `GET /events` (the scheduler waits on them during deploys).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use router_api::{Backend, Event, EventKind, Route, Timestamp};
use tokio::sync::broadcast;

/// Events a subscriber may fall behind by before its stream is ended (it then reconnects and
/// reads the current state from `/routes` and `/backends`).
const BACKLOG: usize = 8192;

/// The sending side of the event stream (cheap to clone).
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<Arc<Event>>,
    seq: Arc<AtomicU64>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    /// A stream nobody listens to yet.
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sends an event to every subscriber.
    pub fn emit(&self, event: EventKind, route: Option<Route>, backend: Option<Backend>) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(seq, event = event.as_str(), "router event");
        let _ = self.tx.send(Arc::new(Event {
            seq,
            time: Timestamp::now(),
            event,
            route,
            backend,
        }));
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}
