//! discoverd's HTTP edge: each route is one [`Registry`] call.
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
//! Errors are `{"code", "message"}` JSON. Writes (`PUT`, `DELETE`) need
//! `Authorization: Bearer KEY` with the platform key or the service's own key ([`Keys`]);
//! without one they get 401.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use discoverd_api::{
    valid_instance_id, Event, Registration, ServiceName, SetMeta, DEFAULT_TTL, MAX_TTL,
};
use flynn_http::server::{
    bearer, json, no_content, read_json, sse, wants_sse, ApiError, Body, Params, Query, Router,
};
use flynn_http::{sse as wire, ErrorCode};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::broadcast;

use crate::auth::Keys;
use crate::registry::Registry;
use crate::store::{Store, StoreError};

/// What every handler gets: the registry and the keys writes are checked against.
#[derive(Debug)]
pub struct State<S: Store> {
    /// The registry.
    pub registry: Registry<S>,
    /// The keys that may write.
    pub keys: Keys,
}

type Shared<S> = Arc<State<S>>;
type Answer = Result<Response<Body>, ApiError>;

/// The routes.
pub fn router<S: Store>() -> Router<Shared<S>> {
    Router::new()
        .route(Method::GET, "/ping", |_, _, _| async {
            Ok(json(StatusCode::OK, &"ok"))
        })
        .route(Method::GET, "/services", |st: Shared<S>, _, _| async move {
            Ok(json(StatusCode::OK, &st.registry.services()))
        })
        .route(Method::GET, "/events", |st: Shared<S>, _, _| async move {
            Ok(watch(&st.registry, None))
        })
        .route(Method::GET, "/services/{service}/instances", instances)
        .route(Method::GET, "/services/{service}/leader", leader)
        .route(Method::GET, "/services/{service}/meta", meta)
        .route(Method::PUT, "/services/{service}/meta", set_meta)
        .route(Method::PUT, "/services/{service}/instances/{id}", register)
        .route(
            Method::DELETE,
            "/services/{service}/instances/{id}",
            deregister,
        )
}

/// The service name of the path, checked.
fn service(p: &Params) -> Result<&str, ApiError> {
    p.parse::<ServiceName>("service")?;
    Ok(p.get("service"))
}

/// The instance id of the path, checked.
fn instance_id(p: &Params) -> Result<&str, ApiError> {
    let id = p.get("id");
    if valid_instance_id(id) {
        Ok(id)
    } else {
        Err(ApiError::bad_request(format!(
            "instance id {id:?}: use up to 128 of A-Z a-z 0-9 _ . : -"
        )))
    }
}

/// Refuses a write without the platform key or the service's own key.
fn may_write<S: Store>(
    st: &State<S>,
    req: &Request<Incoming>,
    service: &str,
) -> Result<(), ApiError> {
    if bearer(req).is_some_and(|k| st.keys.may_write(k, service)) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::Unauthorized,
        format!("writing service {service} needs the platform key or {service}'s own key (Authorization: Bearer KEY)"),
    ))
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        e @ StoreError::Conflict { .. } => ApiError::new(ErrorCode::Conflict, e.to_string()),
        e => ApiError::new(ErrorCode::Store, flynn_http::error::message_chain(&e)),
    }
}

async fn instances<S: Store>(st: Shared<S>, req: Request<Incoming>, p: Params) -> Answer {
    let s = service(&p)?;
    if wants_sse(&req) {
        return Ok(watch(&st.registry, Some(s)));
    }
    Ok(json(StatusCode::OK, &st.registry.instances(s)))
}

async fn leader<S: Store>(st: Shared<S>, _: Request<Incoming>, p: Params) -> Answer {
    let s = service(&p)?;
    match st.registry.leader(s) {
        Some(l) => Ok(json(StatusCode::OK, &l)),
        None => Err(ApiError::new(
            ErrorCode::NoLeader,
            format!("service {s} has no live instance"),
        )),
    }
}

async fn meta<S: Store>(st: Shared<S>, _: Request<Incoming>, p: Params) -> Answer {
    let s = service(&p)?;
    match st.registry.meta(s) {
        Some(m) => Ok(json(StatusCode::OK, &m)),
        None => Err(ApiError::new(
            ErrorCode::NoMeta,
            format!("service {s} has no metadata"),
        )),
    }
}

async fn set_meta<S: Store>(st: Shared<S>, req: Request<Incoming>, p: Params) -> Answer {
    let s = service(&p)?.to_string();
    may_write(&st, &req, &s)?;
    let set: SetMeta = read_json(req).await?;
    let m = st
        .registry
        .set_meta(&s, set.data, set.index)
        .await
        .map_err(store_error)?;
    Ok(json(StatusCode::OK, &m))
}

async fn register<S: Store>(st: Shared<S>, req: Request<Incoming>, p: Params) -> Answer {
    let s = service(&p)?.to_string();
    let id = instance_id(&p)?.to_string();
    may_write(&st, &req, &s)?;
    let ttl = Query::of(&req)
        .seconds("ttl", 1, MAX_TTL)?
        .unwrap_or(Duration::from_secs(DEFAULT_TTL));
    let reg: Registration = read_json(req).await?;
    let inst = st
        .registry
        .register(&s, &id, reg, ttl)
        .await
        .map_err(store_error)?;
    Ok(json(StatusCode::OK, &inst))
}

async fn deregister<S: Store>(st: Shared<S>, req: Request<Incoming>, p: Params) -> Answer {
    let s = service(&p)?;
    let id = instance_id(&p)?;
    may_write(&st, &req, s)?;
    match st.registry.deregister(s, id).await.map_err(store_error)? {
        true => Ok(no_content()),
        false => Err(ApiError::new(
            ErrorCode::NoSuchInstance,
            format!("{s}/{id} is not registered"),
        )),
    }
}

/// Server-sent events: the current state, then live events until the client goes. The body
/// reads the event bus itself (no task per watcher), so an event reaches many watchers fast.
fn watch<S: Store>(r: &Registry<S>, service: Option<&str>) -> Response<Body> {
    let (first, rx) = r.watch(service);
    let service = service.map(str::to_string);
    let frame = |e: &Event| {
        let data = serde_json::to_string(e).expect("events serialise");
        Bytes::from(wire::encode(None, Some(e.kind().as_str()), &data))
    };
    let first: Vec<Bytes> = first.iter().map(frame).collect();
    let state = (first.into_iter(), rx, service);
    let stream =
        futures_util::stream::unfold(state, move |(mut first, mut rx, service)| async move {
            if let Some(b) = first.next() {
                return Some((b, (first, rx, service)));
            }
            loop {
                let chunk = match tokio::time::timeout(Duration::from_secs(15), rx.recv()).await {
                    Err(_) => Bytes::from(wire::comment("keepalive")),
                    Ok(Ok(e)) if service.as_deref().is_some_and(|s| s != e.service()) => continue,
                    Ok(Ok(e)) => frame(&e),
                    Ok(Err(broadcast::error::RecvError::Lagged(n))) => Bytes::from(wire::encode(
                        None,
                        Some("lagged"),
                        &format!("{{\"missed\":{n}}}"),
                    )),
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                };
                return Some((chunk, (first, rx, service)));
            }
        });
    sse(stream)
}
