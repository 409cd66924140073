//! A typed client of the host API, used by the CLI and the tests. One connection per request;
//! streamed responses (logs, pulls, events) are read line by line as they arrive.

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use crate::api::{
    CreateJob, CreateVolume, ErrorBody, Event, HostStatus, Image, Job, LogLine, PullMessage,
    PullRequest, SignalRequest, Volume,
};
use crate::endpoint::Endpoint;

/// A request that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached.
    #[error("cannot reach the flynn-host daemon at {endpoint}: {source} (is it running? set --host or FLYNN_HOST)")]
    Connect {
        /// Where it was looked for.
        endpoint: String,
        /// The error.
        source: std::io::Error,
    },
    /// HTTP failed.
    #[error("talking to the daemon: {0}")]
    Http(#[from] hyper::Error),
    /// The daemon refused the request.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// The daemon's message.
        message: String,
    },
    /// The daemon's answer does not parse.
    #[error("unexpected answer from the daemon: {0}")]
    Decode(String),
}

impl ClientError {
    /// The API error code, for errors the daemon returned.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A client of one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    token: Option<String>,
}

/// A streamed response, read one line at a time.
#[derive(Debug)]
pub struct Lines {
    body: Incoming,
    buf: BytesMut,
}

impl Lines {
    /// The next line without its newline; `None` at the end of the stream.
    pub async fn next_line(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(i + 1).freeze();
                return Ok(Some(line.slice(..i)));
            }
            match self.body.frame().await {
                Some(frame) => {
                    if let Ok(mut data) = frame?.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
                None if self.buf.is_empty() => return Ok(None),
                None => return Ok(Some(self.buf.split().freeze())),
            }
        }
    }

    /// The next line parsed as JSON.
    pub async fn next_json<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ClientError> {
        loop {
            match self.next_line().await? {
                None => return Ok(None),
                Some(l) if l.is_empty() => continue,
                Some(l) => {
                    return serde_json::from_slice(&l)
                        .map(Some)
                        .map_err(|e| ClientError::Decode(e.to_string()))
                }
            }
        }
    }

    /// The next server-sent event's data parsed as an [`Event`] (comments and other event
    /// kinds skipped).
    pub async fn next_event(&mut self) -> Result<Option<Event>, ClientError> {
        while let Some(line) = self.next_line().await? {
            if let Some(data) = line.strip_prefix(b"data: ") {
                if let Ok(e) = serde_json::from_slice(data) {
                    return Ok(Some(e));
                }
            }
        }
        Ok(None)
    }
}

fn q(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Client {
    /// A client of the daemon at `endpoint`, sending `token` as bearer token when given.
    pub fn new(endpoint: Endpoint, token: Option<String>) -> Self {
        Self { endpoint, token }
    }

    /// Sends a request and returns the response, turning error statuses into
    /// [`ClientError::Api`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        upgrade: Option<&str>,
    ) -> Result<Response<Incoming>, ClientError> {
        let host = match &self.endpoint {
            Endpoint::Unix(_) => "flynn-host".to_string(),
            Endpoint::Tcp(a) => a.to_string(),
        };
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        if let Some(proto) = upgrade {
            b = b.header("connection", "Upgrade").header("upgrade", proto);
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let connect_err = |source| ClientError::Connect {
            endpoint: self.endpoint.to_string(),
            source,
        };
        let resp = match &self.endpoint {
            Endpoint::Unix(p) => {
                let s = UnixStream::connect(p).await.map_err(connect_err)?;
                exchange(s, req).await?
            }
            Endpoint::Tcp(a) => {
                let s = TcpStream::connect(a).await.map_err(connect_err)?;
                let _ = s.set_nodelay(true);
                exchange(s, req).await?
            }
        };
        if resp.status().is_client_error() || resp.status().is_server_error() {
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await?.to_bytes();
            let err: ErrorBody = serde_json::from_slice(&bytes).unwrap_or(ErrorBody {
                code: "unknown".into(),
                message: format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
            });
            return Err(ClientError::Api {
                status,
                code: err.code,
                message: err.message,
            });
        }
        Ok(resp)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("requests serialise"));
        let resp = self.send(method, path, body, None).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn call_empty(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<(), ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("requests serialise"));
        self.send(method, path, body, None).await.map(|_| ())
    }

    async fn lines(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Lines, ClientError> {
        let resp = self.send(method, path, body, None).await?;
        Ok(Lines {
            body: resp.into_body(),
            buf: BytesMut::new(),
        })
    }

    /// `GET /status`.
    pub async fn status(&self) -> Result<HostStatus, ClientError> {
        self.call(Method::GET, "/status", None::<&()>).await
    }

    /// `POST /jobs`.
    pub async fn create_job(&self, req: &CreateJob) -> Result<Job, ClientError> {
        self.call(Method::POST, "/jobs", Some(req)).await
    }

    /// `GET /jobs/{id}`.
    pub async fn job(&self, id: &str) -> Result<Job, ClientError> {
        self.call(Method::GET, &format!("/jobs/{}", q(id)), None::<&()>)
            .await
    }

    /// `GET /jobs`, with a query string such as `state=running` (or empty).
    pub async fn jobs(&self, query: &str) -> Result<Vec<Job>, ClientError> {
        self.call(Method::GET, &format!("/jobs?{query}"), None::<&()>)
            .await
    }

    /// `POST /jobs/{id}/stop`.
    pub async fn stop(&self, id: &str, timeout: u64) -> Result<Job, ClientError> {
        let path = format!("/jobs/{}/stop?timeout={timeout}", q(id));
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// `POST /jobs/{id}/signal`.
    pub async fn signal(&self, id: &str, signal: &str) -> Result<(), ClientError> {
        let body = SignalRequest {
            signal: signal.into(),
        };
        self.call_empty(
            Method::POST,
            &format!("/jobs/{}/signal", q(id)),
            Some(&body),
        )
        .await
    }

    /// `DELETE /jobs/{id}`.
    pub async fn delete_job(&self, id: &str, force: bool) -> Result<(), ClientError> {
        let path = format!("/jobs/{}?force={force}", q(id));
        self.call_empty(Method::DELETE, &path, None::<&()>).await
    }

    /// `GET /jobs/{id}/logs` with a query string such as `follow=true&tail=10`.
    pub async fn logs(&self, id: &str, query: &str) -> Result<LogStream, ClientError> {
        let path = format!("/jobs/{}/logs?{query}", q(id));
        Ok(LogStream(self.lines(Method::GET, &path, None).await?))
    }

    /// `POST /jobs/{id}/attach`: the upgraded connection speaking the attach protocol.
    pub async fn attach(&self, id: &str) -> Result<TokioIo<hyper::upgrade::Upgraded>, ClientError> {
        let path = format!("/jobs/{}/attach", q(id));
        let resp = self
            .send(Method::POST, &path, None, Some("flynn-attach"))
            .await?;
        let upgraded = hyper::upgrade::on(resp).await?;
        Ok(TokioIo::new(upgraded))
    }

    /// `GET /events` with a query string such as `job=ID` (or empty).
    pub async fn events(&self, query: &str) -> Result<Lines, ClientError> {
        self.lines(Method::GET, &format!("/events?{query}"), None)
            .await
    }

    /// `POST /images`: the pull's progress stream.
    pub async fn pull(&self, image: &str) -> Result<PullStream, ClientError> {
        let body = serde_json::to_vec(&PullRequest {
            image: image.into(),
        })
        .expect("requests serialise");
        Ok(PullStream(
            self.lines(Method::POST, "/images", Some(body)).await?,
        ))
    }

    /// `GET /images`.
    pub async fn images(&self) -> Result<Vec<Image>, ClientError> {
        self.call(Method::GET, "/images", None::<&()>).await
    }

    /// `DELETE /images/{name}`.
    pub async fn delete_image(&self, name: &str) -> Result<Vec<Image>, ClientError> {
        self.call(Method::DELETE, &format!("/images/{}", q(name)), None::<&()>)
            .await
    }

    /// `GET /volumes`.
    pub async fn volumes(&self) -> Result<Vec<Volume>, ClientError> {
        self.call(Method::GET, "/volumes", None::<&()>).await
    }

    /// `POST /volumes`.
    pub async fn create_volume(&self, name: &str) -> Result<Volume, ClientError> {
        let body = CreateVolume { name: name.into() };
        self.call(Method::POST, "/volumes", Some(&body)).await
    }

    /// `DELETE /volumes/{name}`.
    pub async fn delete_volume(&self, name: &str) -> Result<(), ClientError> {
        self.call_empty(
            Method::DELETE,
            &format!("/volumes/{}", q(name)),
            None::<&()>,
        )
        .await
    }
}

/// A job's log records as they arrive.
#[derive(Debug)]
pub struct LogStream(Lines);

impl LogStream {
    /// The next record; `None` at the end.
    pub async fn next(&mut self) -> Result<Option<LogLine>, ClientError> {
        self.0.next_json().await
    }
}

/// A pull's progress messages as they arrive.
#[derive(Debug)]
pub struct PullStream(Lines);

impl PullStream {
    /// The next message; `None` at the end.
    pub async fn next(&mut self) -> Result<Option<PullMessage>, ClientError> {
        self.0.next_json().await
    }
}

async fn exchange<S>(io: S, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender.send_request(req).await?)
}
