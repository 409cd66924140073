//! The API's routes: each turns a request into a call on [`Host`] and its result into a
//! response. The paths here and in `openapi.json` are the same list ([`ROUTES`]).

use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use runtime::log::Stream;
use tokio::sync::{broadcast, mpsc};

use super::http::{self, json, ndjson, no_content, read_json, ApiError, Body, Query};
use crate::api::{
    CreateJob, CreateVolume, EventKind, JobState, PullRequest, SignalRequest, Volume,
};
use crate::host::Host;
use crate::logs::LogOptions;

/// Every route as (method, OpenAPI path).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/openapi.json"),
    ("get", "/status"),
    ("get", "/jobs"),
    ("post", "/jobs"),
    ("get", "/jobs/{id}"),
    ("delete", "/jobs/{id}"),
    ("post", "/jobs/{id}/stop"),
    ("post", "/jobs/{id}/signal"),
    ("get", "/jobs/{id}/logs"),
    ("post", "/jobs/{id}/attach"),
    ("get", "/events"),
    ("get", "/images"),
    ("post", "/images"),
    ("delete", "/images/{name}"),
    ("get", "/volumes"),
    ("post", "/volumes"),
    ("delete", "/volumes/{name}"),
];

/// Longest stop grace period accepted, in seconds.
const MAX_GRACE: u64 = 3600;

/// Answers one request.
pub async fn handle(host: Host, req: Request<Incoming>, token: Option<&str>) -> Response<Body> {
    if let Some(token) = token {
        if !authorized(&req, token) {
            return ApiError::new(
                401,
                "unauthorized",
                "missing or wrong bearer token; it is in the state directory's token file",
            )
            .response();
        }
    }
    match route(host, req).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

fn authorized<B>(req: &Request<B>, token: &str) -> bool {
    let Some(given) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Constant time in the token's length.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn route(host: Host, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method().clone();
    match (segs.as_slice(), &m) {
        (["openapi.json"], &Method::GET) => Ok(Response::builder()
            .header("content-type", "application/json")
            .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
                Bytes::from_static(super::OPENAPI.as_bytes()),
            )))
            .expect("valid response")),
        (["status"], &Method::GET) => Ok(json(StatusCode::OK, &host.status())),
        (["jobs"], &Method::GET) => list_jobs(&host, &Query::of(&req)),
        (["jobs"], &Method::POST) => {
            let body: CreateJob = read_json(req).await?;
            let job = host.create(body).await?;
            Ok(json(StatusCode::CREATED, &job))
        }
        (["jobs", id], &Method::GET) => Ok(json(StatusCode::OK, &host.job(id)?)),
        (["jobs", id], &Method::DELETE) => {
            let force = Query::of(&req).flag("force")?;
            host.delete(id, force).await?;
            Ok(no_content())
        }
        (["jobs", id, "stop"], &Method::POST) => {
            let grace = Query::of(&req).number("timeout", MAX_GRACE)?.unwrap_or(10);
            let job = host.stop(id, Duration::from_secs(grace)).await?;
            Ok(json(StatusCode::OK, &job))
        }
        (["jobs", id, "signal"], &Method::POST) => {
            let id = id.to_string();
            let body: SignalRequest = read_json(req).await?;
            host.signal(&id, &body.signal).await?;
            Ok(no_content())
        }
        (["jobs", id, "logs"], &Method::GET) => logs(&host, id, &Query::of(&req)),
        (["jobs", id, "attach"], &Method::POST) => {
            let id = id.to_string();
            super::attach::attach(&host, &id, req).await
        }
        (["events"], &Method::GET) => events(&host, &Query::of(&req)),
        (["images"], &Method::GET) => Ok(json(StatusCode::OK, &host.images().await?)),
        (["images"], &Method::POST) => {
            let body: PullRequest = read_json(req).await?;
            let reference = Host::parse_reference(&body.image)?;
            let (tx, rx) = mpsc::channel(256);
            tokio::spawn(async move { host.pull(reference, tx).await });
            Ok(ndjson(rx))
        }
        (["images", name @ ..], &Method::DELETE) if !name.is_empty() && !name[0].is_empty() => {
            let removed = host.delete_image(&name.join("/")).await?;
            Ok(json(StatusCode::OK, &removed))
        }
        (["volumes"], &Method::GET) => {
            let vols = host.runtime().volumes();
            let names = vols.list().map_err(crate::error::HostError::from)?;
            let out: Vec<Volume> = names
                .into_iter()
                .filter_map(|name| {
                    let path = vols.path(&name).ok()?.display().to_string();
                    Some(Volume { name, path })
                })
                .collect();
            Ok(json(StatusCode::OK, &out))
        }
        (["volumes"], &Method::POST) => {
            let body: CreateVolume = read_json(req).await?;
            let path = host
                .runtime()
                .volumes()
                .create(&body.name)
                .map_err(crate::error::HostError::from)?;
            let vol = Volume {
                name: body.name,
                path: path.display().to_string(),
            };
            Ok(json(StatusCode::CREATED, &vol))
        }
        (["volumes", name], &Method::DELETE) => {
            let rt = host.runtime().clone();
            let name = name.to_string();
            tokio::task::spawn_blocking(move || rt.delete_volume(&name))
                .await
                .map_err(crate::error::HostError::from)?
                .map_err(crate::error::HostError::from)?;
            Ok(no_content())
        }
        _ => Err(not_routed(&segs)),
    }
}

/// True when request path segments match a route pattern (`{x}` is one segment; the image
/// name, which may hold slashes, takes the rest).
fn matches_route(segs: &[&str], pattern: &str) -> bool {
    let pat: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    if pat == ["images", "{name}"] {
        return segs.len() >= 2 && segs[0] == "images" && !segs[1].is_empty();
    }
    pat.len() == segs.len()
        && pat
            .iter()
            .zip(segs)
            .all(|(p, s)| (p.starts_with('{') && !s.is_empty()) || p == s)
}

/// 405 with the allowed methods for a known path, 404 otherwise.
fn not_routed(segs: &[&str]) -> ApiError {
    let allowed: Vec<String> = ROUTES
        .iter()
        .filter(|(_, p)| matches_route(segs, p))
        .map(|(m, _)| m.to_ascii_uppercase())
        .collect();
    if allowed.is_empty() {
        ApiError::new(404, "not_found", "no such API path; see /openapi.json")
    } else {
        let allow = allowed.join(", ");
        ApiError::new(
            405,
            "method_not_allowed",
            format!("method not allowed on this path; use {allow}"),
        )
        .with_allow(allow)
    }
}

fn list_jobs(host: &Host, q: &Query) -> Result<Response<Body>, ApiError> {
    let state = match q.get("state") {
        Some(s) => Some(s.parse::<JobState>().map_err(ApiError::bad_request)?),
        None => None,
    };
    let mut meta = Vec::new();
    for m in q.all("metadata") {
        let (k, v) = m
            .split_once('=')
            .ok_or_else(|| ApiError::bad_request(format!("metadata={m:?}: use KEY=VALUE")))?;
        meta.push((k, v));
    }
    let image = q.get("image");
    let jobs: Vec<_> = host
        .jobs()
        .into_iter()
        .filter(|j| state.is_none_or(|s| j.state == s))
        .filter(|j| image.is_none_or(|i| j.config.image == i))
        .filter(|j| {
            meta.iter()
                .all(|(k, v)| j.config.metadata.get(*k).is_some_and(|x| x == v))
        })
        .collect();
    Ok(json(StatusCode::OK, &jobs))
}

fn logs(host: &Host, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    host.job(id)?;
    let stream = match q.get("stream") {
        None => None,
        Some("stdout") => Some(Stream::Stdout),
        Some("stderr") => Some(Stream::Stderr),
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "stream={s:?}: use stdout or stderr"
            )))
        }
    };
    let opts = LogOptions {
        follow: q.flag("follow")?,
        tail: q.number("tail", u32::MAX as u64)?.map(|n| n as usize),
        since: q.get("since").map(str::to_string),
        stream,
    }
    .validated()?;
    // A job whose start failed has no files left: its log is empty.
    let path = host.runtime().jobs_dir().join(id);
    let (tx, rx) = mpsc::channel(256);
    let (h, jid) = (host.clone(), id.to_string());
    let ended = move || h.job(&jid).map_or(true, |j| j.state.is_final());
    tokio::spawn(crate::logs::stream(path, opts, ended, tx));
    Ok(ndjson(rx))
}

fn events(host: &Host, q: &Query) -> Result<Response<Body>, ApiError> {
    let job = q.get("job").map(str::to_string);
    let kind = match q.get("kind") {
        None => None,
        Some("job") => Some(EventKind::Job),
        Some("image") => Some(EventKind::Image),
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "kind={k:?}: use job or image"
            )))
        }
    };
    let mut sub = host.inner.events.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        // A first comment, so that clients see the stream is open.
        if tx
            .send(Bytes::from_static(b": subscribed\n\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let msg = tokio::select! {
                r = sub.recv() => r,
                _ = tokio::time::sleep(Duration::from_secs(15)) => {
                    if tx.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() { return; }
                    continue;
                }
                _ = tx.closed() => return,
            };
            let chunk = match msg {
                Ok(e) => {
                    if kind.is_some_and(|k| k != e.kind)
                        || job
                            .as_deref()
                            .is_some_and(|j| e.job.as_ref().is_none_or(|x| x.id != j))
                    {
                        continue;
                    }
                    let name = match e.kind {
                        EventKind::Job => "job",
                        EventKind::Image => "image",
                    };
                    let data = serde_json::to_string(&e).expect("events serialise");
                    format!("id: {}\nevent: {name}\ndata: {data}\n\n", e.seq)
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    format!("event: lagged\ndata: {{\"missed\":{n}}}\n\n")
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
        }
    });
    Ok(http::streamed("text/event-stream", rx))
}
