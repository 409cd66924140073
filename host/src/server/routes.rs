//! The API's routes: each turns a request into one call on [`Host`] and its result into a
//! response. `openapi.json` lists the same routes (a test checks).

use std::time::Duration;

use bytes::Bytes;
use flynn_http::server::{
    bytes_response, json, ndjson, no_content, read_json, sse, ApiError, Body, Params, Query, Router,
};
use flynn_http::sse as wire;
use host_api::{
    CreateJob, CreateVolume, EventFilter, JobFilter, JobId, LogOptions, PullRequest, SignalRequest,
};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{broadcast, mpsc};

use crate::error::HostError;
use crate::host::Host;

type Answer = Result<Response<Body>, ApiError>;

/// Longest stop grace period accepted, in seconds.
const MAX_GRACE: u64 = 3600;

/// Every route of the API.
pub fn router() -> Router<Host> {
    Router::new()
        .not_found_message("no such API path; see /openapi.json")
        .route(Method::GET, "/openapi.json", |_, _, _| async {
            Ok(bytes_response(
                StatusCode::OK,
                "application/json",
                Bytes::from_static(super::OPENAPI.as_bytes()),
            ))
        })
        .route(Method::GET, "/status", |h: Host, _, _| async move {
            Ok(json(StatusCode::OK, &h.status()))
        })
        .route(Method::POST, "/drain", |h: Host, _, _| async move {
            h.set_draining(true)?;
            Ok(json(StatusCode::OK, &h.status()))
        })
        .route(Method::DELETE, "/drain", |h: Host, _, _| async move {
            h.set_draining(false)?;
            Ok(json(StatusCode::OK, &h.status()))
        })
        .route(Method::GET, "/cluster/join", |h: Host, _, _| async move {
            Ok(json(StatusCode::OK, &h.cluster_join().await?))
        })
        .route(Method::GET, "/jobs", list_jobs)
        .route(Method::POST, "/jobs", create_job)
        .route(Method::GET, "/jobs/{id}", |h: Host, _, p| async move {
            Ok(json(StatusCode::OK, &h.job(&job_id(&p)?)?))
        })
        .route(Method::DELETE, "/jobs/{id}", delete_job)
        .route(Method::POST, "/jobs/{id}/stop", stop_job)
        .route(Method::POST, "/jobs/{id}/signal", signal_job)
        .route(Method::POST, "/jobs/{id}/deregister", deregister_job)
        .route(Method::GET, "/jobs/{id}/logs", logs)
        .route(
            Method::POST,
            "/jobs/{id}/attach",
            |h: Host, req, p| async move { super::attach::attach(&h, &job_id(&p)?, req).await },
        )
        .route(Method::GET, "/events", events)
        .route(Method::GET, "/images", |h: Host, _, _| async move {
            Ok(json(StatusCode::OK, &h.images().await?))
        })
        .route(Method::POST, "/images", pull)
        .route(
            Method::DELETE,
            "/images/{name*}",
            |h: Host, _, p| async move {
                Ok(json(StatusCode::OK, &h.delete_image(p.get("name")).await?))
            },
        )
        .route(Method::GET, "/volumes", |h: Host, _, _| async move {
            Ok(json(StatusCode::OK, &h.volumes()?))
        })
        .route(Method::POST, "/volumes", |h: Host, req, _| async move {
            let body: CreateVolume = read_json(req).await?;
            Ok(json(StatusCode::CREATED, &h.create_volume(&body.name)?))
        })
        .route(
            Method::DELETE,
            "/volumes/{name}",
            |h: Host, _, p| async move {
                h.delete_volume(p.get("name")).await?;
                Ok(no_content())
            },
        )
}

/// The job id of the path: one that is not a valid id names no job.
fn job_id(p: &Params) -> Result<JobId, ApiError> {
    let raw = p.get("id");
    raw.parse()
        .map_err(|_| HostError::NoSuchJob(raw.to_string()).into())
}

async fn create_job(h: Host, req: Request<Incoming>, _: Params) -> Answer {
    let body: CreateJob = read_json(req).await?;
    Ok(json(StatusCode::CREATED, &h.create(body).await?))
}

async fn delete_job(h: Host, req: Request<Incoming>, p: Params) -> Answer {
    let force = Query::of(&req).flag("force")?;
    h.delete(&job_id(&p)?, force).await?;
    Ok(no_content())
}

async fn stop_job(h: Host, req: Request<Incoming>, p: Params) -> Answer {
    let grace = Query::of(&req)
        .seconds("timeout", 0, MAX_GRACE)?
        .unwrap_or(Duration::from_secs(10));
    Ok(json(StatusCode::OK, &h.stop(&job_id(&p)?, grace).await?))
}

async fn deregister_job(h: Host, _req: Request<Incoming>, p: Params) -> Answer {
    h.deregister(&job_id(&p)?)?;
    Ok(no_content())
}

async fn signal_job(h: Host, req: Request<Incoming>, p: Params) -> Answer {
    let id = job_id(&p)?;
    let body: SignalRequest = read_json(req).await?;
    h.signal(&id, &body.signal).await?;
    Ok(no_content())
}

async fn pull(h: Host, req: Request<Incoming>, _: Params) -> Answer {
    let body: PullRequest = read_json(req).await?;
    let reference = Host::parse_reference(&body.image)?;
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move { h.pull(reference, tx).await });
    Ok(ndjson(rx))
}

async fn list_jobs(h: Host, req: Request<Incoming>, _: Params) -> Answer {
    let q = Query::of(&req);
    let mut filter = JobFilter {
        state: q.parse("state")?,
        image: q.get("image").map(str::to_string),
        metadata: Vec::new(),
    };
    for m in q.all("metadata") {
        let (k, v) = m
            .split_once('=')
            .ok_or_else(|| ApiError::bad_request(format!("metadata={m:?}: use KEY=VALUE")))?;
        filter.metadata.push((k.to_string(), v.to_string()));
    }
    let jobs: Vec<_> = h.jobs().into_iter().filter(|j| filter.matches(j)).collect();
    Ok(json(StatusCode::OK, &jobs))
}

async fn logs(h: Host, req: Request<Incoming>, p: Params) -> Answer {
    let id = job_id(&p)?;
    h.job(&id)?;
    let q = Query::of(&req);
    let opts = LogOptions {
        follow: q.flag("follow")?,
        tail: q.number("tail", 0, u32::MAX as u64)?.map(|n| n as usize),
        since: q.parse("since")?,
        stream: q.parse("stream")?,
    };
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(h.stream_log(id, opts, tx));
    Ok(ndjson(rx))
}

async fn events(h: Host, req: Request<Incoming>, _: Params) -> Answer {
    let q = Query::of(&req);
    let filter = EventFilter {
        job: q.parse("job")?,
        kind: q.parse("kind")?,
    };
    let sub = h.inner.events.subscribe();
    let stream =
        futures_util::stream::unfold((sub, filter, true), |(mut sub, filter, first)| async move {
            if first {
                // A first comment, so that clients see the stream is open.
                let open = Bytes::from(wire::comment("subscribed"));
                return Some((open, (sub, filter, false)));
            }
            loop {
                let chunk =
                    match tokio::time::timeout(Duration::from_secs(15), sub.recv()).await {
                        Err(_) => Bytes::from(wire::comment("keepalive")),
                        Ok(Ok(e)) if !filter.matches(&e) => continue,
                        Ok(Ok(e)) => {
                            let data = serde_json::to_string(&e).expect("events serialise");
                            let id = e.seq.to_string();
                            Bytes::from(wire::encode(Some(&id), Some(e.kind().as_str()), &data))
                        }
                        Ok(Err(broadcast::error::RecvError::Lagged(n))) => Bytes::from(
                            wire::encode(None, Some("lagged"), &format!("{{\"missed\":{n}}}")),
                        ),
                        Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    };
                return Some((chunk, (sub, filter, false)));
            }
        });
    Ok(sse(stream))
}
