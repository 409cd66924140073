//! The router's own API (registered in discoverd as `router-api`):
//!
//! ```text
//! GET /routes                      the routes served now (certificate keys left out)
//! GET /backends                    every service's live backends, with requests in flight
//! GET /events?types=a,b            router events (SSE): set, remove, backend-up,
//!                                  backend-down, backend-drained
//! GET /metrics                     Prometheus text format
//! GET /health                      200 once discoverd's state is loaded, else 503
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flynn_http::server::{bytes_response, json, sse, ApiError, Body, Query, Router as Routes};
use flynn_http::{sse as wire, ErrorCode};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use router_api::EventKind;
use tokio::sync::broadcast;

use crate::router::Router;

type Answer = Result<Response<Body>, ApiError>;

/// The routes of the router API.
pub fn routes() -> Routes<Arc<Router>> {
    Routes::new()
        .route(Method::GET, "/routes", |r: Arc<Router>, _, _| async move {
            Ok(json(StatusCode::OK, &r.routes()))
        })
        .route(
            Method::GET,
            "/backends",
            |r: Arc<Router>, _, _| async move {
                let b: Vec<router_api::Backend> =
                    r.discovery().all().iter().map(|b| b.to_api()).collect();
                Ok(json(StatusCode::OK, &b))
            },
        )
        .route(Method::GET, "/metrics", |r: Arc<Router>, _, _| async move {
            let text = r.metrics().render(r.discovery());
            Ok(bytes_response(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                Bytes::from(text),
            ))
        })
        .route(Method::GET, "/health", |r: Arc<Router>, _, _| async move {
            if r.discovery().synced() {
                Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({"status": "ok", "routes": r.routes().len()}),
                ))
            } else {
                Err(ApiError::with_status(
                    503,
                    ErrorCode::Unavailable,
                    "the router has not loaded discoverd's state yet",
                ))
            }
        })
        .route(Method::GET, "/events", events)
}

async fn events(r: Arc<Router>, req: Request<Incoming>, _: flynn_http::server::Params) -> Answer {
    let q = Query::of(&req);
    let mut kinds: Vec<EventKind> = Vec::new();
    for list in q.all("types") {
        for k in list.split(',').filter(|k| !k.is_empty()) {
            kinds.push(
                k.parse().map_err(|e: router_api::UnknownEventKind| {
                    ApiError::bad_request(e.to_string())
                })?,
            );
        }
    }
    let rx = r.events().subscribe();
    let stream = futures_util::stream::unfold((rx, kinds), |(mut rx, kinds)| async move {
        loop {
            let chunk = match tokio::time::timeout(Duration::from_secs(15), rx.recv()).await {
                Err(_) => Bytes::from(wire::comment("keepalive")),
                Ok(Ok(e)) if !kinds.is_empty() && !kinds.contains(&e.event) => continue,
                Ok(Ok(e)) => {
                    let data = serde_json::to_string(&*e).expect("events serialise");
                    Bytes::from(wire::encode(
                        Some(&e.seq.to_string()),
                        Some(e.event.as_str()),
                        &data,
                    ))
                }
                // Fell behind: end the stream so the client reconnects and reads the state.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => return None,
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            };
            return Some((chunk, (rx, kinds)));
        }
    });
    Ok(sse(stream))
}
