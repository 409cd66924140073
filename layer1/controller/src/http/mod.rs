//! The controller's HTTP edge: each route is one [`Controller`] call. `openapi.json` lists the
//! same routes (a test checks). Every route but `/ping`, `/ca-cert` and `/openapi.json` needs a key
//! ([`Keys`]); without one the answer is 401 with `WWW-Authenticate: Basic`, so git asks for
//! credentials.

mod jobs;
mod log;
mod stream;

use std::sync::Arc;

use bytes::Bytes;
use controller_api::{
    AppRelease, AppUpdate, DeploymentUpdate, NewApp, NewArtifact, NewDeployment, NewRelease,
    NewScaleRequest, ObjectType, PutFormation, PutJob, Route,
};
use flynn_http::server::{
    bytes_response, json, no_content, read_json, wants_sse, ApiError, Body, Params, Query, Router,
};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::controller::{new_id, Controller};
use crate::events::{EventFilter, MAX_COUNT};
use crate::store::Store;
use flynn_http::server::keys::Keys;

/// The API description served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// What every handler gets.
#[derive(Debug)]
pub struct State<S: Store> {
    /// The controller.
    pub controller: Controller<S>,
    /// The keys requests must carry.
    pub keys: Keys,
    /// The cluster CA certificate (PEM) served at `/ca-cert`, when the cluster has one.
    pub ca_cert: Option<String>,
}

type Shared<S> = Arc<State<S>>;
type Answer = Result<Response<Body>, ApiError>;

fn authorize<S: Store>(st: &Shared<S>, req: &Request<Incoming>) -> Result<(), ApiError> {
    st.keys.check(req)
}

/// The routes.
pub fn router<S: Store>() -> Router<Shared<S>> {
    Router::new()
        .not_found_message("no such API path; see /openapi.json")
        .guard(authorize::<S>)
        .public_route(Method::GET, "/ping", |_, _, _| async {
            Ok(json(StatusCode::OK, &"ok"))
        })
        .public_route(Method::GET, "/ca-cert", |st: Shared<S>, _, _| async move {
            match &st.ca_cert {
                Some(pem) => Ok(bytes_response(
                    StatusCode::OK,
                    "application/x-pem-file",
                    Bytes::from(pem.clone()),
                )),
                None => Err(ApiError::new(
                    flynn_http::ErrorCode::NotFound,
                    "this cluster has no CA of its own: its certificates come from a public CA",
                )),
            }
        })
        .public_route(Method::GET, "/openapi.json", |_, _, _| async {
            Ok(bytes_response(
                StatusCode::OK,
                "application/json",
                Bytes::from_static(OPENAPI.as_bytes()),
            ))
        })
        .route(Method::GET, "/apps", |st: Shared<S>, _, _| async move {
            Ok(json(StatusCode::OK, &st.controller.apps().await?))
        })
        .route(Method::POST, "/apps", |st: Shared<S>, req, _| async move {
            let new: NewApp = read_json(req).await?;
            Ok(json(
                StatusCode::CREATED,
                &st.controller.create_app(new).await?,
            ))
        })
        .route(
            Method::GET,
            "/apps/{app}",
            |st: Shared<S>, _, p| async move {
                Ok(json(
                    StatusCode::OK,
                    &st.controller.app(p.get("app")).await?,
                ))
            },
        )
        .route(
            Method::POST,
            "/apps/{app}",
            |st: Shared<S>, req, p| async move {
                let u: AppUpdate = read_json(req).await?;
                let app = st.controller.update_app(p.get("app"), u).await?;
                Ok(json(StatusCode::OK, &app))
            },
        )
        .route(
            Method::DELETE,
            "/apps/{app}",
            |st: Shared<S>, _, p| async move {
                Ok(json(
                    StatusCode::OK,
                    &st.controller.delete_app(p.get("app")).await?,
                ))
            },
        )
        .route(
            Method::POST,
            "/artifacts",
            |st: Shared<S>, req, _| async move {
                let new: NewArtifact = read_json(req).await?;
                let a = st.controller.create_artifact(new).await?;
                Ok(json(StatusCode::CREATED, &a))
            },
        )
        .route(
            Method::GET,
            "/artifacts/{id}",
            |st: Shared<S>, _, p| async move {
                Ok(json(
                    StatusCode::OK,
                    &st.controller.artifact(p.get("id")).await?,
                ))
            },
        )
        .route(
            Method::POST,
            "/releases",
            |st: Shared<S>, req, _| async move {
                let new: NewRelease = read_json(req).await?;
                let r = st.controller.create_release(new).await?;
                Ok(json(StatusCode::CREATED, &r))
            },
        )
        .route(
            Method::GET,
            "/releases/{id}",
            |st: Shared<S>, _, p| async move {
                Ok(json(
                    StatusCode::OK,
                    &st.controller.release(p.get("id")).await?,
                ))
            },
        )
        .route(
            Method::GET,
            "/apps/{app}/releases",
            |st: Shared<S>, _, p| async move {
                let r = st.controller.app_releases(p.get("app")).await?;
                Ok(json(StatusCode::OK, &r))
            },
        )
        .route(
            Method::GET,
            "/apps/{app}/release",
            |st: Shared<S>, _, p| async move {
                let r = st.controller.app_release(p.get("app")).await?;
                Ok(json(StatusCode::OK, &r))
            },
        )
        .route(
            Method::PUT,
            "/apps/{app}/release",
            |st: Shared<S>, req, p| async move {
                let body: AppRelease = read_json(req).await?;
                let app = st
                    .controller
                    .set_app_release(p.get("app"), &body.id)
                    .await?;
                Ok(json(StatusCode::OK, &app))
            },
        )
        .route(
            Method::GET,
            "/apps/{app}/formations",
            |st: Shared<S>, _, p| async move {
                let f = st.controller.formations(p.get("app")).await?;
                Ok(json(StatusCode::OK, &f))
            },
        )
        .route(
            Method::GET,
            "/apps/{app}/formations/{release}",
            |st: Shared<S>, _, p| async move {
                let f = st
                    .controller
                    .formation(p.get("app"), p.get("release"))
                    .await?;
                Ok(json(StatusCode::OK, &f))
            },
        )
        .route(
            Method::PUT,
            "/apps/{app}/formations/{release}",
            |st: Shared<S>, req, p| async move {
                let put: PutFormation = read_json(req).await?;
                let f = st
                    .controller
                    .put_formation(p.get("app"), p.get("release"), put)
                    .await?;
                Ok(json(StatusCode::OK, &f))
            },
        )
        .route(
            Method::POST,
            "/apps/{app}/deploy",
            |st: Shared<S>, req, p| async move {
                let body: NewDeployment = read_json(req).await?;
                let d = st.controller.deploy(p.get("app"), &body.release).await?;
                Ok(json(StatusCode::CREATED, &d))
            },
        )
        .route(
            Method::GET,
            "/apps/{app}/deployments",
            |st: Shared<S>, _, p| async move {
                Ok(json(
                    StatusCode::OK,
                    &st.controller.deployments(p.get("app")).await?,
                ))
            },
        )
        .route(
            Method::GET,
            "/apps/{app}/deployments/{id}",
            |st: Shared<S>, _, p| async move {
                let d = st.controller.deployment(p.get("app"), p.get("id")).await?;
                Ok(json(StatusCode::OK, &d))
            },
        )
        .route(
            Method::PUT,
            "/apps/{app}/deployments/{id}",
            |st: Shared<S>, req, p| async move {
                let u: DeploymentUpdate = read_json(req).await?;
                let d = st
                    .controller
                    .update_deployment(p.get("app"), p.get("id"), u)
                    .await?;
                Ok(json(StatusCode::OK, &d))
            },
        )
        .route(
            Method::GET,
            "/deployments",
            |st: Shared<S>, _, _| async move {
                Ok(json(
                    StatusCode::OK,
                    &st.controller.active_deployments().await?,
                ))
            },
        )
        .route(
            Method::GET,
            "/apps/{app}/jobs",
            |st: Shared<S>, req, p| async move {
                let active = Query::of(&req).flag("active")?;
                let j = st.controller.jobs(p.get("app"), active).await?;
                Ok(json(StatusCode::OK, &j))
            },
        )
        .route(
            Method::PUT,
            "/apps/{app}/scale/{release}",
            |st: Shared<S>, req, p| async move {
                let new: NewScaleRequest = read_json(req).await?;
                let r = st
                    .controller
                    .scale(p.get("app"), p.get("release"), new)
                    .await?;
                Ok(json(StatusCode::OK, &r))
            },
        )
        .route(
            Method::GET,
            "/apps/{app}/scale-requests",
            |st: Shared<S>, _, p| async move {
                let r = st.controller.scale_requests(p.get("app")).await?;
                Ok(json(StatusCode::OK, &r))
            },
        )
        .route(
            Method::GET,
            "/apps/{app}/log",
            |st: Shared<S>, req, p| async move { log::log(st, req, p.get("app")).await },
        )
        .route(
            Method::POST,
            "/apps/{app}/jobs",
            |st: Shared<S>, req, p| async move { jobs::run(st, req, p.get("app")).await },
        )
        .route(
            Method::DELETE,
            "/apps/{app}/jobs/{id}",
            |st: Shared<S>, _, p| async move {
                let j = st.controller.kill_job(p.get("app"), p.get("id")).await?;
                Ok(json(StatusCode::OK, &j))
            },
        )
        .route(
            Method::GET,
            "/apps/{app}/jobs/{id}",
            |st: Shared<S>, _, p| async move {
                let j = st.controller.job(p.get("app"), p.get("id")).await?;
                Ok(json(StatusCode::OK, &j))
            },
        )
        .route(
            Method::PUT,
            "/apps/{app}/jobs/{id}",
            |st: Shared<S>, req, p| async move {
                let put: PutJob = read_json(req).await?;
                let j = st
                    .controller
                    .put_job(p.get("app"), p.get("id"), put)
                    .await?;
                Ok(json(StatusCode::OK, &j))
            },
        )
        .route(
            Method::DELETE,
            "/apps/{app}/formations/{release}",
            |st: Shared<S>, _, p| async move {
                st.controller
                    .delete_formation(p.get("app"), p.get("release"))
                    .await?;
                Ok(no_content())
            },
        )
        .route(
            Method::GET,
            "/formations",
            |st: Shared<S>, req, _| async move {
                let active = Query::of(&req).flag("active")?;
                Ok(json(
                    StatusCode::OK,
                    &st.controller.all_formations(active).await?,
                ))
            },
        )
        .route(Method::GET, "/routes", |st: Shared<S>, _, _| async move {
            Ok(json(StatusCode::OK, &st.controller.all_routes().await?))
        })
        .route(
            Method::GET,
            "/apps/{app}/routes",
            |st: Shared<S>, _, p| async move {
                Ok(json(
                    StatusCode::OK,
                    &st.controller.app_routes(p.get("app")).await?,
                ))
            },
        )
        .route(
            Method::POST,
            "/apps/{app}/routes",
            |st: Shared<S>, req, p| async move {
                let route = read_route(req, None).await?;
                let r = st.controller.create_route(p.get("app"), route).await?;
                Ok(json(StatusCode::CREATED, &r))
            },
        )
        .route(
            Method::GET,
            "/apps/{app}/routes/{type}/{id}",
            |st: Shared<S>, _, p| async move {
                let r = st
                    .controller
                    .route(p.get("app"), p.get("type"), p.get("id"))
                    .await?;
                Ok(json(StatusCode::OK, &r))
            },
        )
        .route(
            Method::PUT,
            "/apps/{app}/routes/{type}/{id}",
            |st: Shared<S>, req, p| async move {
                let route = read_route(req, Some(p.get("id"))).await?;
                let r = st
                    .controller
                    .update_route(p.get("app"), p.get("type"), p.get("id"), route)
                    .await?;
                Ok(json(StatusCode::OK, &r))
            },
        )
        .route(
            Method::DELETE,
            "/apps/{app}/routes/{type}/{id}",
            |st: Shared<S>, _, p| async move {
                st.controller
                    .delete_route(p.get("app"), p.get("type"), p.get("id"))
                    .await?;
                Ok(no_content())
            },
        )
        .route(Method::GET, "/events", events)
        .route(
            Method::GET,
            "/events/{id}",
            |st: Shared<S>, _, p: Params| async move {
                let id: u64 = p.parse("id")?;
                Ok(json(StatusCode::OK, &st.controller.event(id).await?))
            },
        )
}

/// A route body; a missing or empty `id` is generated (`http-UUID`, `tcp-UUID`), or taken
/// from the path (`path_id`).
async fn read_route(req: Request<Incoming>, path_id: Option<&str>) -> Result<Route, ApiError> {
    let mut v: serde_json::Value = read_json(req).await?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("invalid route: send a JSON object"))?;
    let kind = obj
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_string();
    if obj.get("id").is_none_or(|i| i.as_str() == Some("")) {
        let id = match path_id {
            Some(id) => id.to_string(),
            None => format!("{kind}-{}", new_id()),
        };
        obj.insert("id".into(), serde_json::Value::String(id));
    }
    serde_json::from_value(v).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid route: {e} (type is \"http\" with domain, or \"tcp\" with port; both need service)"
        ))
    })
}

/// The filters of an events request.
async fn event_filter<S: Store>(st: &State<S>, q: &Query) -> Result<EventFilter, ApiError> {
    let app = match q.get("app_id") {
        Some(a) => Some(st.controller.app_id(a).await?),
        None => None,
    };
    let mut object_types = Vec::new();
    for t in q.get("object_types").unwrap_or_default().split(',') {
        if !t.is_empty() {
            object_types.push(t.parse::<ObjectType>().map_err(ApiError::bad_request)?);
        }
    }
    Ok(EventFilter {
        app,
        object_types,
        object_id: q.get("object_id").map(str::to_string),
    })
}

async fn events<S: Store>(st: Shared<S>, req: Request<Incoming>, _: Params) -> Answer {
    let q = Query::of(&req);
    let filter = event_filter(&st, &q).await?;
    let since = q.number("since_id", 0, u64::MAX)?;
    if wants_sse(&req) {
        let last = req
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("Last-Event-Id {v:?}: use an event id"))
                })
            })
            .transpose()?;
        let from = match (last.or(since), q.flag("past")?) {
            (Some(id), _) => Some(id),
            (None, true) => Some(0),
            (None, false) => None,
        };
        return Ok(stream::follow(st, filter, from).await?);
    }
    let before = q.number("before_id", 1, u64::MAX)?;
    let count = q.number("count", 1, MAX_COUNT)?.unwrap_or(100);
    let list = st
        .controller
        .events(&filter, since.unwrap_or(0), before, count)
        .await?;
    Ok(json(StatusCode::OK, &list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::Embedded;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let r = router::<Embedded>();
        assert_eq!(r.openapi_mismatch(OPENAPI), (vec![], vec![]));
    }
}
