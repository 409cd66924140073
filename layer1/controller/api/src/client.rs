//! The typed client of the controller API. Every call sends the key as a bearer token.

use flynn_http::client::{Client as Http, Lines, Upgraded};
use flynn_http::Endpoint;
use hyper::Method;

pub use flynn_http::client::ClientError;
pub use flynn_http::ErrorCode;

use crate::event::{Event, ObjectType};
use crate::model::{
    App, AppDeletion, AppRelease, AppUpdate, Artifact, Formation, NewApp, NewArtifact, NewRelease,
    PutFormation, Release,
};
use crate::{
    Deployment, DeploymentUpdate, Job, LogMessage, NewDeployment, NewJob, NewScaleRequest, PutJob,
    Route, ScaleRequest,
};

pub use runtime_api::attach::PROTOCOL as ATTACH_PROTOCOL;

/// Which lines [`Client::app_log`] asks for.
#[derive(Debug, Clone, Default)]
pub struct LogRequest {
    /// Keep the stream open for new lines.
    pub follow: bool,
    /// The last N lines of history.
    pub lines: Option<u64>,
    /// Only this job.
    pub job_id: Option<String>,
    /// Only this process type (`""`: one-off jobs).
    pub process_type: Option<String>,
}

/// A client of one controller.
#[derive(Debug, Clone)]
pub struct Client(Http);

/// Filters of `GET /events`.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only events of this app (id or name).
    pub app: Option<String>,
    /// Only these object types (all when empty).
    pub object_types: Vec<ObjectType>,
    /// Only events of this object.
    pub object_id: Option<String>,
    /// Only events after this id.
    pub since_id: Option<u64>,
    /// Only events before this id.
    pub before_id: Option<u64>,
    /// At most this many (the newest).
    pub count: Option<u64>,
}

impl EventQuery {
    fn query(&self) -> String {
        let mut q = Vec::new();
        if let Some(a) = &self.app {
            q.push(format!("app_id={}", flynn_http::encode(a)));
        }
        if !self.object_types.is_empty() {
            let t: Vec<_> = self.object_types.iter().map(|t| t.as_str()).collect();
            q.push(format!("object_types={}", t.join(",")));
        }
        if let Some(o) = &self.object_id {
            q.push(format!("object_id={}", flynn_http::encode(o)));
        }
        for (k, v) in [
            ("since_id", self.since_id),
            ("before_id", self.before_id),
            ("count", self.count),
        ] {
            if let Some(v) = v {
                q.push(format!("{k}={v}"));
            }
        }
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    }
}

fn seg(s: &str) -> String {
    flynn_http::encode(s)
}

impl Client {
    /// A client of the controller at `endpoint`, authenticating with `key`.
    pub fn new(endpoint: Endpoint, key: &str) -> Self {
        Self(Http::new("controller", endpoint).with_token(key))
    }

    /// A client over `http`, an HTTP client set up by the caller (HTTPS, a Host name); it
    /// should carry the key as its token.
    pub fn from_http(http: Http) -> Self {
        Self(http)
    }

    /// The same client naming `host` in the Host header (a controller behind a router).
    pub fn with_host(self, host: impl Into<String>) -> Self {
        Self(self.0.with_host(host))
    }

    /// The underlying HTTP client (for requests this client has no method for).
    pub fn http(&self) -> &Http {
        &self.0
    }

    /// Creates an app.
    pub async fn create_app(&self, app: &NewApp) -> Result<App, ClientError> {
        self.0.call(Method::POST, "/apps", Some(app)).await
    }

    /// Every app, newest first.
    pub async fn apps(&self) -> Result<Vec<App>, ClientError> {
        self.0.call(Method::GET, "/apps", None::<&()>).await
    }

    /// One app, by id or name.
    pub async fn app(&self, app: &str) -> Result<App, ClientError> {
        let path = format!("/apps/{}", seg(app));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// Updates an app's strategy, timeout or meta.
    pub async fn update_app(&self, app: &str, update: &AppUpdate) -> Result<App, ClientError> {
        let path = format!("/apps/{}", seg(app));
        self.0.call(Method::POST, &path, Some(update)).await
    }

    /// Deletes an app with its routes, formations and releases.
    pub async fn delete_app(&self, app: &str) -> Result<AppDeletion, ClientError> {
        let path = format!("/apps/{}", seg(app));
        self.0.call(Method::DELETE, &path, None::<&()>).await
    }

    /// Records an artifact.
    pub async fn create_artifact(&self, a: &NewArtifact) -> Result<Artifact, ClientError> {
        self.0.call(Method::POST, "/artifacts", Some(a)).await
    }

    /// One artifact.
    pub async fn artifact(&self, id: &str) -> Result<Artifact, ClientError> {
        let path = format!("/artifacts/{}", seg(id));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// Creates a release.
    pub async fn create_release(&self, r: &NewRelease) -> Result<Release, ClientError> {
        self.0.call(Method::POST, "/releases", Some(r)).await
    }

    /// One release.
    pub async fn release(&self, id: &str) -> Result<Release, ClientError> {
        let path = format!("/releases/{}", seg(id));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// An app's releases, newest first.
    pub async fn app_releases(&self, app: &str) -> Result<Vec<Release>, ClientError> {
        let path = format!("/apps/{}/releases", seg(app));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// Makes `release` the app's current release (no deploy).
    pub async fn set_app_release(&self, app: &str, release: &str) -> Result<App, ClientError> {
        let path = format!("/apps/{}/release", seg(app));
        let body = AppRelease {
            id: release.to_string(),
        };
        self.0.call(Method::PUT, &path, Some(&body)).await
    }

    /// The app's current release.
    pub async fn app_release(&self, app: &str) -> Result<Release, ClientError> {
        let path = format!("/apps/{}/release", seg(app));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// Sets the formation of one of the app's releases.
    pub async fn put_formation(
        &self,
        app: &str,
        release: &str,
        f: &PutFormation,
    ) -> Result<Formation, ClientError> {
        let path = format!("/apps/{}/formations/{}", seg(app), seg(release));
        self.0.call(Method::PUT, &path, Some(f)).await
    }

    /// The formation of one of the app's releases.
    pub async fn formation(&self, app: &str, release: &str) -> Result<Formation, ClientError> {
        let path = format!("/apps/{}/formations/{}", seg(app), seg(release));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// The app's formations.
    pub async fn formations(&self, app: &str) -> Result<Vec<Formation>, ClientError> {
        let path = format!("/apps/{}/formations", seg(app));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// Every app's formations; with `active`, only those that run at least one job.
    pub async fn all_formations(&self, active: bool) -> Result<Vec<Formation>, ClientError> {
        let path = if active {
            "/formations?active=true"
        } else {
            "/formations"
        };
        self.0.call(Method::GET, path, None::<&()>).await
    }

    /// Deploys `release` to `app` (`POST /apps/{app}/deploy`).
    pub async fn deploy(&self, app: &str, release: &str) -> Result<Deployment, ClientError> {
        let path = format!("/apps/{}/deploy", seg(app));
        let body = NewDeployment {
            release: release.to_string(),
        };
        self.0.call(Method::POST, &path, Some(&body)).await
    }

    /// The app's deployments, newest first.
    pub async fn deployments(&self, app: &str) -> Result<Vec<Deployment>, ClientError> {
        let path = format!("/apps/{}/deployments", seg(app));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// One deployment of the app.
    pub async fn deployment(&self, app: &str, id: &str) -> Result<Deployment, ClientError> {
        let path = format!("/apps/{}/deployments/{}", seg(app), seg(id));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// Reports a deployment's progress (the scheduler).
    pub async fn update_deployment(
        &self,
        app: &str,
        id: &str,
        update: &DeploymentUpdate,
    ) -> Result<Deployment, ClientError> {
        let path = format!("/apps/{}/deployments/{}", seg(app), seg(id));
        self.0.call(Method::PUT, &path, Some(update)).await
    }

    /// Every app's unfinished deployments, oldest first.
    pub async fn active_deployments(&self) -> Result<Vec<Deployment>, ClientError> {
        self.0.call(Method::GET, "/deployments", None::<&()>).await
    }

    /// Records a job's state (the scheduler's report).
    pub async fn put_job(&self, app: &str, id: &str, job: &PutJob) -> Result<Job, ClientError> {
        let path = format!("/apps/{}/jobs/{}", seg(app), seg(id));
        self.0.call(Method::PUT, &path, Some(job)).await
    }

    /// The app's jobs, newest first; with `active`, only those not down.
    pub async fn jobs(&self, app: &str, active: bool) -> Result<Vec<Job>, ClientError> {
        let q = if active { "?active=true" } else { "" };
        let path = format!("/apps/{}/jobs{q}", seg(app));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// `PUT /apps/{app}/scale/{release}`: changes the counts of the types named.
    pub async fn scale(
        &self,
        app: &str,
        release: &str,
        new: &NewScaleRequest,
    ) -> Result<ScaleRequest, ClientError> {
        let path = format!("/apps/{}/scale/{}", seg(app), seg(release));
        self.0.call(Method::PUT, &path, Some(new)).await
    }

    /// The app's scale requests, newest first.
    pub async fn scale_requests(&self, app: &str) -> Result<Vec<ScaleRequest>, ClientError> {
        let path = format!("/apps/{}/scale-requests", seg(app));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// `POST /apps/{app}/jobs`: starts a one-off job.
    pub async fn run_job(&self, app: &str, job: &NewJob) -> Result<Job, ClientError> {
        let path = format!("/apps/{}/jobs", seg(app));
        self.0.call(Method::POST, &path, Some(job)).await
    }

    /// `POST /apps/{app}/jobs` attached: the job's id and the connection speaking the attach
    /// protocol (stdin, output, resize, exit frames).
    pub async fn run_attached(
        &self,
        app: &str,
        job: &NewJob,
    ) -> Result<(String, hyper_util::rt::TokioIo<Upgraded>), ClientError> {
        let path = format!("/apps/{}/jobs", seg(app));
        let (head, io) = self
            .0
            .upgrade_with(Method::POST, &path, ATTACH_PROTOCOL, Some(job))
            .await?;
        let id = head
            .get(crate::JOB_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok((id, io))
    }

    /// `DELETE /apps/{app}/jobs/{id}`: stops the job.
    pub async fn kill_job(&self, app: &str, id: &str) -> Result<Job, ClientError> {
        let path = format!("/apps/{}/jobs/{}", seg(app), seg(id));
        self.0.call(Method::DELETE, &path, None::<&()>).await
    }

    /// `GET /apps/{app}/log`: the app's lines, merged in time order.
    pub async fn app_log(
        &self,
        app: &str,
        r: &LogRequest,
    ) -> Result<Lines<LogMessage>, ClientError> {
        let mut q = Vec::new();
        if r.follow {
            q.push("follow=true".to_string());
        }
        if let Some(n) = r.lines {
            q.push(format!("lines={n}"));
        }
        if let Some(j) = &r.job_id {
            q.push(format!("job_id={}", seg(j)));
        }
        if let Some(t) = &r.process_type {
            q.push(format!("process_type={}", seg(t)));
        }
        let path = format!("/apps/{}/log?{}", seg(app), q.join("&"));
        self.0.stream(Method::GET, &path, None::<&()>).await
    }

    /// One job of the app.
    pub async fn job(&self, app: &str, id: &str) -> Result<Job, ClientError> {
        let path = format!("/apps/{}/jobs/{}", seg(app), seg(id));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// Removes a formation (its jobs are scaled to none).
    pub async fn delete_formation(&self, app: &str, release: &str) -> Result<(), ClientError> {
        let path = format!("/apps/{}/formations/{}", seg(app), seg(release));
        self.0.call_empty(Method::DELETE, &path, None::<&()>).await
    }

    /// Adds a route to the app (an empty id is generated).
    pub async fn create_route(&self, app: &str, route: &Route) -> Result<Route, ClientError> {
        let path = format!("/apps/{}/routes", seg(app));
        self.0.call(Method::POST, &path, Some(route)).await
    }

    /// Every route of every app.
    pub async fn routes(&self) -> Result<Vec<Route>, ClientError> {
        self.0.call(Method::GET, "/routes", None::<&()>).await
    }

    /// The app's routes, newest first.
    pub async fn app_routes(&self, app: &str) -> Result<Vec<Route>, ClientError> {
        let path = format!("/apps/{}/routes", seg(app));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    fn route_path(app: &str, kind: &str, id: &str) -> String {
        format!("/apps/{}/routes/{}/{}", seg(app), seg(kind), seg(id))
    }

    /// One route of the app; `kind` is `http` or `tcp`.
    pub async fn route(&self, app: &str, kind: &str, id: &str) -> Result<Route, ClientError> {
        let path = Self::route_path(app, kind, id);
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// Replaces a route (same id and type).
    pub async fn update_route(&self, app: &str, route: &Route) -> Result<Route, ClientError> {
        let kind = match route {
            Route::Http(_) => "http",
            Route::Tcp(_) => "tcp",
        };
        let path = Self::route_path(app, kind, route.id());
        self.0.call(Method::PUT, &path, Some(route)).await
    }

    /// Removes a route; `kind` is `http` or `tcp`.
    pub async fn delete_route(&self, app: &str, kind: &str, id: &str) -> Result<(), ClientError> {
        let path = Self::route_path(app, kind, id);
        self.0.call_empty(Method::DELETE, &path, None::<&()>).await
    }

    /// Events matching `q`, oldest first.
    pub async fn events(&self, q: &EventQuery) -> Result<Vec<Event>, ClientError> {
        let path = format!("/events{}", q.query());
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// One event.
    pub async fn event(&self, id: u64) -> Result<Event, ClientError> {
        self.0
            .call(Method::GET, &format!("/events/{id}"), None::<&()>)
            .await
    }

    /// Events matching `q` as they are committed (SSE); with `since_id`, the ones after it
    /// first.
    pub async fn follow_events(&self, q: &EventQuery) -> Result<Lines<Event>, ClientError> {
        self.0.events(&format!("/events{}", q.query())).await
    }
}
