//! The typed client of the host API, for the CLI, the tests and layer-1 services. One
//! connection per request; streamed answers (logs, pulls, events) are read as they arrive.

use std::time::Duration;

use flynn_http::client::{Client as Http, Lines, Upgraded};
use flynn_http::{encode, Endpoint};
use hyper::Method;
use hyper_util::rt::TokioIo;

pub use flynn_http::client::ClientError;

use crate::{
    ClusterJoin, CreateJob, CreateVolume, Event, EventFilter, HostStatus, Image, Job, JobFilter,
    JobId, LogLine, LogOptions, PullMessage, PullRequest, SignalRequest, Volume, ATTACH_PROTOCOL,
};

/// A client of one host daemon.
#[derive(Debug, Clone)]
pub struct Client(Http);

/// A job's log records as they arrive.
pub type LogStream = Lines<LogLine>;
/// A pull's progress messages as they arrive.
pub type PullStream = Lines<PullMessage>;
/// Host events as they arrive ([`Lines::next`]).
pub type EventStream = Lines<Event>;

impl Client {
    /// A client of the daemon at `endpoint`, sending `token` as bearer token when given (TCP
    /// endpoints need it).
    pub fn new(endpoint: Endpoint, token: Option<String>) -> Self {
        let http = Http::new("the flynn-host daemon", endpoint);
        Self(match token {
            Some(t) => http.with_token(t),
            None => http,
        })
    }

    /// Where the daemon is.
    pub fn endpoint(&self) -> &Endpoint {
        self.0.endpoint()
    }

    /// `GET /status`.
    pub async fn status(&self) -> Result<HostStatus, ClientError> {
        self.0.call(Method::GET, "/status", None::<&()>).await
    }

    /// `POST /drain` (`true`) or `DELETE /drain`: starts or ends a drain; the status after.
    pub async fn set_draining(&self, on: bool) -> Result<HostStatus, ClientError> {
        let method = if on { Method::POST } else { Method::DELETE };
        self.0.call(method, "/drain", None::<&()>).await
    }

    /// `GET /cluster/join`: what a host needs to join this host's cluster.
    pub async fn cluster_join(&self) -> Result<ClusterJoin, ClientError> {
        self.0.call(Method::GET, "/cluster/join", None::<&()>).await
    }

    /// `POST /jobs`: creates and starts a job.
    pub async fn create_job(&self, req: &CreateJob) -> Result<Job, ClientError> {
        self.0.call(Method::POST, "/jobs", Some(req)).await
    }

    /// `GET /jobs/{id}`.
    pub async fn job(&self, id: &JobId) -> Result<Job, ClientError> {
        let path = format!("/jobs/{}", encode(id.as_str()));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /jobs`: the jobs passing `filter`, oldest first.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, ClientError> {
        let path = format!("/jobs?{}", filter.to_query());
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// `POST /jobs/{id}/stop`: SIGTERM, SIGKILL after `grace` (whole seconds); the job ended.
    pub async fn stop(&self, id: &JobId, grace: Duration) -> Result<Job, ClientError> {
        let path = format!(
            "/jobs/{}/stop?timeout={}",
            encode(id.as_str()),
            grace.as_secs()
        );
        self.0.call(Method::POST, &path, None::<&()>).await
    }

    /// `POST /jobs/{id}/signal`.
    pub async fn signal(&self, id: &JobId, signal: &str) -> Result<(), ClientError> {
        let body = SignalRequest {
            signal: signal.into(),
        };
        let path = format!("/jobs/{}/signal", encode(id.as_str()));
        self.0.call_empty(Method::POST, &path, Some(&body)).await
    }

    /// `POST /jobs/{id}/deregister`: takes the job out of discoverd until it ends.
    pub async fn deregister(&self, id: &JobId) -> Result<(), ClientError> {
        let path = format!("/jobs/{}/deregister", encode(id.as_str()));
        self.0.call_empty(Method::POST, &path, None::<&()>).await
    }

    /// `DELETE /jobs/{id}`; with `force`, a running job is killed first.
    pub async fn delete_job(&self, id: &JobId, force: bool) -> Result<(), ClientError> {
        let path = format!("/jobs/{}?force={force}", encode(id.as_str()));
        self.0.call_empty(Method::DELETE, &path, None::<&()>).await
    }

    /// `GET /jobs/{id}/logs`.
    pub async fn logs(&self, id: &JobId, opts: &LogOptions) -> Result<LogStream, ClientError> {
        let path = format!("/jobs/{}/logs?{}", encode(id.as_str()), opts.to_query());
        self.0.stream(Method::GET, &path, None::<&()>).await
    }

    /// `POST /jobs/{id}/attach`: the upgraded connection, speaking the attach protocol.
    pub async fn attach(&self, id: &JobId) -> Result<TokioIo<Upgraded>, ClientError> {
        let path = format!("/jobs/{}/attach", encode(id.as_str()));
        self.0.upgrade(Method::POST, &path, ATTACH_PROTOCOL).await
    }

    /// `GET /events`: the events passing `filter` from now on.
    pub async fn events(&self, filter: &EventFilter) -> Result<EventStream, ClientError> {
        let path = format!("/events?{}", filter.to_query());
        self.0.events(&path).await
    }

    /// `POST /images`: the pull's progress stream.
    pub async fn pull(&self, image: &str) -> Result<PullStream, ClientError> {
        let body = PullRequest {
            image: image.into(),
        };
        self.0.stream(Method::POST, "/images", Some(&body)).await
    }

    /// `POST /images` followed to its end: `Ok` once the image is stored, the host's
    /// `pull_failed` error (as [`ClientError::Api`]) if it could not be pulled.
    pub async fn pull_complete(&self, image: &str) -> Result<(), ClientError> {
        let mut stream = self.pull(image).await?;
        loop {
            match stream.next().await? {
                Some(PullMessage::Pulled { .. }) => return Ok(()),
                Some(PullMessage::Error { error }) => {
                    return Err(ClientError::Api {
                        status: 502,
                        body: error,
                    })
                }
                Some(_) => {}
                None => {
                    return Err(ClientError::Api {
                        status: 502,
                        body: flynn_http::ErrorBody::new(
                            flynn_http::ErrorCode::PullFailed,
                            format!("the host ended the pull of {image} before it finished"),
                        ),
                    })
                }
            }
        }
    }

    /// `GET /images`.
    pub async fn images(&self) -> Result<Vec<Image>, ClientError> {
        self.0.call(Method::GET, "/images", None::<&()>).await
    }

    /// `DELETE /images/{name}`: the images removed.
    pub async fn delete_image(&self, name: &str) -> Result<Vec<Image>, ClientError> {
        let path = format!("/images/{}", encode(name));
        self.0.call(Method::DELETE, &path, None::<&()>).await
    }

    /// `GET /volumes`.
    pub async fn volumes(&self) -> Result<Vec<Volume>, ClientError> {
        self.0.call(Method::GET, "/volumes", None::<&()>).await
    }

    /// `POST /volumes`.
    pub async fn create_volume(&self, name: &str) -> Result<Volume, ClientError> {
        let body = CreateVolume { name: name.into() };
        self.0.call(Method::POST, "/volumes", Some(&body)).await
    }

    /// `DELETE /volumes/{name}`.
    pub async fn delete_volume(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/volumes/{}", encode(name));
        self.0.call_empty(Method::DELETE, &path, None::<&()>).await
    }
}
