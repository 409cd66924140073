//! discoverd watches the scheduler's followers keep open: opened again every second until
//! discoverd answers, and read until the stream ends or breaks (then the follower opens a
//! new one and takes its initial state afresh).

use std::time::Duration;

use discoverd_api::client::{Client as Discoverd, Watch};
use discoverd_api::Event;

/// A watch of `service` (every service: `None`), tried again every second until it opens;
/// `what` names it in the log.
pub async fn open(discoverd: &Discoverd, service: Option<&str>, what: &str) -> Watch {
    loop {
        match discoverd.watch(service).await {
            Ok(w) => return w,
            Err(e) => {
                tracing::warn!(error = %e, "watching {what} in discoverd; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The watch's next event; `None` once it ended or broke (logged, naming `what`).
pub async fn next(w: &mut Watch, what: &str) -> Option<Event> {
    match w.next().await {
        Ok(ev) => ev,
        Err(e) => {
            tracing::warn!(error = %e, "the {what} watch broke; watching again");
            None
        }
    }
}
