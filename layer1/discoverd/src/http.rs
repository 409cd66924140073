//! discoverd's HTTP API:
//!
//! ```text
//! PUT    /services/{service}/instances/{id}?ttl=10   register or heartbeat  {addr, proto?, meta?}
//! DELETE /services/{service}/instances/{id}          deregister
//! GET    /services/{service}/instances               instances, oldest first (JSON), or a watch
//!                                                    with Accept: text/event-stream
//! GET    /services/{service}/leader                  the leader
//! GET    /services/{service}/meta                    service metadata {service, data, index}
//! PUT    /services/{service}/meta                    set it {data, index?}; with index, only if
//!                                                    the version is that (0: none yet), else 409
//! GET    /services                                   service names
//! GET    /events                                     a watch of every service (SSE)
//! GET    /ping                                       liveness
//! ```
//!
//! Errors are `{"code", "message"}` JSON with a 4xx status. Writes (`PUT`, `DELETE`) need
//! `Authorization: Bearer KEY` with the platform key or the service's own key ([`Keys`]);
//! without one they get 401.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::auth::Keys;
use crate::model::{valid_instance_id, valid_service, Registration, SetMeta};
use crate::registry::Registry;
use crate::store::{Store, StoreError};

type Body = BoxBody<Bytes, Infallible>;

/// Default and largest instance TTLs, in seconds.
pub const DEFAULT_TTL: u64 = 10;
const MAX_TTL: u64 = 3600;

fn json(status: StatusCode, v: &impl Serialize) -> Response<Body> {
    let mut b = serde_json::to_vec(v).expect("serialises");
    b.push(b'\n');
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(b)).boxed())
        .expect("valid response")
}

fn error(status: u16, code: &str, message: impl Into<String>) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(
        status,
        &serde_json::json!({"code": code, "message": message.into()}),
    )
}

/// Serves the API on `listener` until the task is dropped; writes need one of `keys`.
pub async fn serve<S: Store>(listener: TcpListener, registry: Registry<S>, keys: Keys) {
    while let Ok((stream, _)) = listener.accept().await {
        let r = registry.clone();
        let keys = keys.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let (r, keys) = (r.clone(), keys.clone());
                async move { Ok::<_, Infallible>(route(r, &keys, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The bearer key of a request, if it has one.
fn bearer<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

async fn route<S: Store>(r: Registry<S>, keys: &Keys, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let writes = matches!(*req.method(), Method::PUT | Method::DELETE | Method::POST);
    if let (true, ["services", s, ..]) = (writes, segs.as_slice()) {
        if !bearer(&req).is_some_and(|k| keys.may_write(k, s)) {
            return error(
                401,
                "unauthorized",
                format!("writing service {s} needs the platform key or {s}'s own key (Authorization: Bearer KEY)"),
            );
        }
    }
    let sse = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    match (req.method().clone(), segs.as_slice()) {
        (Method::GET, ["ping"]) => json(StatusCode::OK, &"ok"),
        (Method::GET, ["services"]) => json(StatusCode::OK, &r.services()),
        (Method::GET, ["events"]) => watch(&r, None),
        (_, ["services", s, ..]) if !valid_service(s) => error(
            400,
            "bad_request",
            format!("service name {s:?}: use 1-63 of a-z, 0-9 and '-' (not \"leader\")"),
        ),
        (Method::GET, ["services", s, "instances"]) if sse => watch(&r, Some(s)),
        (Method::GET, ["services", s, "instances"]) => json(StatusCode::OK, &r.instances(s)),
        (Method::GET, ["services", s, "leader"]) => match r.leader(s) {
            Some(l) => json(StatusCode::OK, &l),
            None => error(
                404,
                "no_leader",
                format!("service {s} has no live instance"),
            ),
        },
        (Method::GET, ["services", s, "meta"]) => match r.meta(s) {
            Some(m) => json(StatusCode::OK, &m),
            None => error(404, "no_meta", format!("service {s} has no metadata")),
        },
        (Method::PUT, ["services", s, "meta"]) => {
            let s = s.to_string();
            set_meta(&r, &s, req).await
        }
        (_, ["services", _, "instances", id]) if !valid_instance_id(id) => error(
            400,
            "bad_request",
            format!("instance id {id:?}: use up to 128 of A-Z a-z 0-9 _ . : -"),
        ),
        (Method::PUT, ["services", s, "instances", id]) => {
            let (s, id) = (s.to_string(), id.to_string());
            register(&r, &s, &id, req).await
        }
        (Method::DELETE, ["services", s, "instances", id]) => match r.deregister(s, id).await {
            Ok(true) => Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Full::new(Bytes::new()).boxed())
                .expect("valid response"),
            Ok(false) => error(
                404,
                "no_such_instance",
                format!("{s}/{id} is not registered"),
            ),
            Err(e) => error(503, "store", e.to_string()),
        },
        _ => error(404, "not_found", "no such path"),
    }
}

async fn register<S: Store>(
    r: &Registry<S>,
    s: &str,
    id: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let ttl = match req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ttl=")))
    {
        None => DEFAULT_TTL,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=MAX_TTL).contains(&n) => n,
            _ => {
                return error(
                    400,
                    "bad_request",
                    format!("ttl={v:?}: use 1 to {MAX_TTL} seconds"),
                )
            }
        },
    };
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(400, "bad_request", format!("reading the body: {e}")),
    };
    let reg: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(400, "bad_request", format!("invalid JSON body: {e}")),
    };
    if reg.addr.parse::<std::net::SocketAddr>().is_err() {
        return error(
            400,
            "bad_request",
            format!("addr {:?}: use IP:PORT", reg.addr),
        );
    }
    if reg.proto != "tcp" && reg.proto != "udp" {
        return error(
            400,
            "bad_request",
            format!("proto {:?}: use tcp or udp", reg.proto),
        );
    }
    match r.register(s, id, reg, Duration::from_secs(ttl)).await {
        Ok(inst) => json(StatusCode::OK, &inst),
        Err(e) => error(503, "store", e.to_string()),
    }
}

async fn set_meta<S: Store>(r: &Registry<S>, s: &str, req: Request<Incoming>) -> Response<Body> {
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(400, "bad_request", format!("reading the body: {e}")),
    };
    let set: SetMeta = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return error(400, "bad_request", format!("invalid JSON body: {e}")),
    };
    match r.set_meta(s, set.data, set.index).await {
        Ok(m) => json(StatusCode::OK, &m),
        Err(e @ StoreError::Conflict { .. }) => error(409, "conflict", e.to_string()),
        Err(e) => error(503, "store", e.to_string()),
    }
}

/// Server-sent events: the current state, then live events until the client goes. The body
/// reads the event bus itself (no task per watcher), so an event reaches many watchers fast.
fn watch<S: Store>(r: &Registry<S>, service: Option<&str>) -> Response<Body> {
    let (first, rx) = r.watch(service);
    let service = service.map(str::to_string);
    let frame = |e: &crate::model::Event| {
        let kind = serde_json::to_value(e.kind).expect("serialises");
        let data = serde_json::to_string(e).expect("serialises");
        Bytes::from(format!(
            "event: {}\ndata: {data}\n\n",
            kind.as_str().unwrap_or("")
        ))
    };
    let first: Vec<Bytes> = first.iter().map(frame).collect();
    let state = (first.into_iter(), rx, service);
    let stream =
        futures_util::stream::unfold(state, move |(mut first, mut rx, service)| async move {
            if let Some(b) = first.next() {
                return Some((Ok::<_, Infallible>(Frame::data(b)), (first, rx, service)));
            }
            loop {
                let chunk = match tokio::time::timeout(Duration::from_secs(15), rx.recv()).await {
                    Err(_) => Bytes::from_static(b": keepalive\n\n"),
                    Ok(Ok(e)) if service.as_deref().is_some_and(|s| s != e.service) => continue,
                    Ok(Ok(e)) => frame(&e),
                    Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                        Bytes::from(format!("event: lagged\ndata: {{\"missed\":{n}}}\n\n"))
                    }
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                };
                return Some((Ok(Frame::data(chunk)), (first, rx, service)));
            }
        });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("valid response")
}
