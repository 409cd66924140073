//! `GET /events` as server-sent events: what was missed (after `Last-Event-Id`), then every
//! commit as it happens, each with its id, so a client that reconnects resumes exactly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use controller_api::Event;
use flynn_http::server::{sse, Body};
use flynn_http::sse as wire;
use hyper::Response;
use tokio::sync::mpsc;

use super::State;
use crate::error::ControllerError;
use crate::events::EventFilter;
use crate::store::Store;

/// Events read from the store per page while catching up.
const PAGE: usize = 500;
/// A comment is sent when nothing else was for this long (keeps proxies from closing).
const KEEPALIVE: Duration = Duration::from_secs(15);

fn frame(e: &Event) -> Bytes {
    let data = serde_json::to_string(e).expect("events serialise");
    Bytes::from(wire::encode(
        Some(&e.id.to_string()),
        Some(e.object_type.as_str()),
        &data,
    ))
}

/// Streams events passing `filter`: those after `from` first (none when `None`: only new
/// ones), then live ones. A subscription that breaks is renewed and the gap read back.
pub(super) async fn follow<S: Store>(
    st: Arc<State<S>>,
    filter: EventFilter,
    from: Option<u64>,
) -> Result<Response<Body>, ControllerError> {
    let store = st.controller.store();
    let live = store.subscribe().await?;
    let sent = match from {
        Some(id) => id,
        None => store.last_event().await?,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        if let Err(e) = pump(&st, &filter, sent, live, &tx).await {
            tracing::warn!("event stream ended: {e}");
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let b = rx.recv().await?;
        Some((b, rx))
    });
    Ok(sse(body))
}

/// Sends events after `sent` until the client goes; `Ok` when it went.
async fn pump<S: Store>(
    st: &State<S>,
    filter: &EventFilter,
    mut sent: u64,
    mut live: mpsc::Receiver<Event>,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), ControllerError> {
    let store = st.controller.store();
    loop {
        // Catch up from the store: everything after `sent` committed so far.
        loop {
            let page = store.events(sent, PAGE).await?;
            let Some(last) = page.last().map(|e| e.id) else {
                break;
            };
            for e in page.iter().filter(|e| filter.matches(e)) {
                if tx.send(frame(e)).await.is_err() {
                    return Ok(());
                }
            }
            sent = last;
        }
        // Then live, skipping what the catch-up already sent.
        loop {
            match tokio::time::timeout(KEEPALIVE, live.recv()).await {
                Err(_) => {
                    if tx
                        .send(Bytes::from(wire::comment("keepalive")))
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                Ok(Some(e)) if e.id <= sent => {}
                Ok(Some(e)) if e.id == sent + 1 => {
                    sent = e.id;
                    if filter.matches(&e) && tx.send(frame(&e)).await.is_err() {
                        return Ok(());
                    }
                }
                // A gap (or the subscription ended): renew it and read the gap back.
                Ok(_) => {
                    live = store.subscribe().await?;
                    break;
                }
            }
        }
    }
}
