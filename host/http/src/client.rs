//! The client side: one hyper HTTP/1.1 client over unix sockets and TCP, a connection per
//! request, bearer tokens, error bodies decoded into [`ClientError::Api`], and streamed
//! responses read as they arrive ([`Lines`]: NDJSON values or server-sent events).

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use crate::endpoint::Endpoint;
use crate::error::{ErrorBody, ErrorCode};
use crate::sse::{SseEvent, SseReader};

pub use crate::encode;
pub use hyper::upgrade::Upgraded;

/// A request that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service could not be reached.
    #[error("cannot reach {service} at {endpoint} (is it running?)")]
    Connect {
        /// The service's name.
        service: &'static str,
        /// Where it was looked for.
        endpoint: Endpoint,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (a certificate that does not match, no TLS there).
    #[error("TLS with {service} at {endpoint} failed")]
    Tls {
        /// The service's name.
        service: &'static str,
        /// Where.
        endpoint: Endpoint,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// HTTP failed mid-way.
    #[error("talking to {service}")]
    Http {
        /// The service's name.
        service: &'static str,
        /// Why.
        #[source]
        source: hyper::Error,
    },
    /// The service refused the request.
    #[error("{}", body.message)]
    Api {
        /// HTTP status.
        status: u16,
        /// The service's error body.
        body: ErrorBody,
    },
    /// The service's answer does not parse.
    #[error("unexpected answer from {service}")]
    Decode {
        /// The service's name.
        service: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// The error code, for errors the service returned.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.code),
            _ => None,
        }
    }

    /// The HTTP status, for errors the service returned.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client of one service. Connections of whole answers are kept for the next request
/// (for up to [`IDLE_REUSE`]); streams and upgrades get a connection of their own.
#[derive(Debug, Clone)]
pub struct Client {
    service: &'static str,
    endpoint: Endpoint,
    token: Option<String>,
    host: Option<String>,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
    idle: Arc<Mutex<Vec<(Sender, Instant)>>>,
}

/// HTTPS: the config (its verifier) and the name the server's certificate must hold.
#[cfg(feature = "tls")]
#[derive(Clone)]
struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
}

#[cfg(feature = "tls")]
impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("name", &self.name).finish()
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// How long an idle connection is reused: well under any server's idle timeout (a server
/// closing it while a request is on its way would fail that request).
pub const IDLE_REUSE: Duration = Duration::from_millis(500);
/// Most idle connections kept per client.
const MAX_IDLE: usize = 32;

impl Client {
    /// A client of `service` (its name, for messages) at `endpoint`.
    pub fn new(service: &'static str, endpoint: Endpoint) -> Self {
        Self {
            service,
            endpoint,
            token: None,
            host: None,
            #[cfg(feature = "tls")]
            tls: None,
            idle: Arc::default(),
        }
    }

    /// The same client speaking HTTPS with `config`, checking that the server's certificate
    /// is for `name` (also sent as SNI).
    #[cfg(feature = "tls")]
    pub fn with_tls(
        mut self,
        config: rustls::ClientConfig,
        name: &str,
    ) -> Result<Self, crate::tls::NameError> {
        let name = rustls::pki_types::ServerName::try_from(name.to_string())
            .map_err(|_| crate::tls::NameError(name.to_string()))?;
        self.tls = Some(Tls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
        });
        Ok(self)
    }

    /// The same client sending `Authorization: Bearer TOKEN` with every request.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into().trim().to_string());
        self
    }

    /// The same client sending `Host: HOST` (a name a router routes on) instead of the
    /// endpoint's address.
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Where the service is.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `GET path`'s body as text (a PEM file, a plain answer).
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let resp = self.send(Method::GET, path, None, &[]).await?;
        let bytes = self.collect(resp).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Sends a request on a connection of its own and returns the response; error statuses
    /// become [`ClientError::Api`].
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Response<Incoming>, ClientError> {
        let req = self.request(method, path_and_query, body.map(Bytes::from), headers);
        let mut sender = self.connect().await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|source| ClientError::Http {
                service: self.service,
                source,
            })?;
        self.check(resp).await
    }

    /// A request and its whole answer, on an idle connection when there is one; the
    /// connection is kept for the next request.
    async fn send_whole(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        let http = |source| ClientError::Http {
            service: self.service,
            source,
        };
        let body = body.map(Bytes::from);
        let idle = self.take_idle();
        let reused = idle.is_some();
        let mut sender = match idle {
            Some(s) => s,
            None => self.connect().await?,
        };
        let req = self.request(method.clone(), path_and_query, body.clone(), &[]);
        let resp = match sender.send_request(req).await {
            Ok(resp) => resp,
            // An idle connection that went away before the request was written: a new one.
            Err(e) if reused && (e.is_canceled() || e.is_closed()) => {
                sender = self.connect().await?;
                let req = self.request(method, path_and_query, body, &[]);
                sender.send_request(req).await.map_err(http)?
            }
            Err(e) => return Err(http(e)),
        };
        let resp = self.check(resp).await?;
        let bytes = self.collect(resp).await?;
        if sender.is_ready() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push((sender, Instant::now()));
            }
        }
        Ok(bytes)
    }

    /// An idle connection young enough to reuse.
    fn take_idle(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((sender, since)) = idle.pop() {
            if since.elapsed() < IDLE_REUSE && sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Request<Full<Bytes>> {
        let host = match (&self.host, &self.endpoint) {
            (Some(h), _) => h.clone(),
            (None, Endpoint::Unix(_)) => self.service.to_string(),
            (None, Endpoint::Tcp(a)) => a.to_string(),
        };
        let mut b = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("host", host);
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Full::new(body.unwrap_or_default()))
            .expect("a path, method and headers this client built are valid")
    }

    /// A new connection.
    async fn connect(&self) -> Result<Sender, ClientError> {
        let connect_err = |source| ClientError::Connect {
            service: self.service,
            endpoint: self.endpoint.clone(),
            source,
        };
        match &self.endpoint {
            Endpoint::Unix(p) => {
                let s = UnixStream::connect(p).await.map_err(connect_err)?;
                self.handshake(s).await
            }
            Endpoint::Tcp(a) => {
                let s = TcpStream::connect(a).await.map_err(connect_err)?;
                let _ = s.set_nodelay(true);
                #[cfg(feature = "tls")]
                if let Some(tls) = &self.tls {
                    let s = tls
                        .connector
                        .connect(tls.name.clone(), s)
                        .await
                        .map_err(|source| ClientError::Tls {
                            service: self.service,
                            endpoint: self.endpoint.clone(),
                            source,
                        })?;
                    return self.handshake(s).await;
                }
                self.handshake(s).await
            }
        }
    }

    /// Error statuses as [`ClientError::Api`].
    async fn check(&self, resp: Response<Incoming>) -> Result<Response<Incoming>, ClientError> {
        if resp.status().is_client_error() || resp.status().is_server_error() {
            let status = resp.status().as_u16();
            let bytes = self.collect(resp).await?;
            let body = crate::json::from_slice(&bytes).unwrap_or_else(|_| {
                ErrorBody::new(
                    ErrorCode::Unknown,
                    format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes).trim()),
                )
            });
            return Err(ClientError::Api { status, body });
        }
        Ok(resp)
    }

    async fn handshake<S>(&self, io: S) -> Result<Sender, ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|source| ClientError::Http {
                service: self.service,
                source,
            })?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    async fn collect(&self, resp: Response<Incoming>) -> Result<Bytes, ClientError> {
        Ok(resp
            .into_body()
            .collect()
            .await
            .map_err(|source| ClientError::Http {
                service: self.service,
                source,
            })?
            .to_bytes())
    }

    /// A request whose JSON answer is decoded as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("requests serialise"));
        let bytes = self.send_whole(method, path, body).await?;
        crate::json::from_slice(&bytes).map_err(|source| ClientError::Decode {
            service: self.service,
            source,
        })
    }

    /// Like [`Client::call`], with a 404 of this code read as `None`.
    pub async fn call_optional<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        absent: ErrorCode,
    ) -> Result<Option<T>, ClientError> {
        match self.call(method, path, None::<&()>).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code() == Some(absent) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A request whose answer has no body worth reading.
    pub async fn call_empty(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<(), ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("requests serialise"));
        self.send_whole(method, path, body).await.map(|_| ())
    }

    /// A request whose answer streams NDJSON values of `T`.
    pub async fn stream<T>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Lines<T>, ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("requests serialise"));
        let resp = self.send(method, path, body, &[]).await?;
        Ok(self.lines(resp, Format::Ndjson))
    }

    /// A `GET` whose answer streams server-sent events with a `T` as data
    /// (`Accept: text/event-stream`).
    pub async fn events<T>(&self, path: &str) -> Result<Lines<T>, ClientError> {
        let accept = [("accept", "text/event-stream")];
        let resp = self.send(Method::GET, path, None, &accept).await?;
        Ok(self.lines(resp, Format::Sse))
    }

    fn lines<T>(&self, resp: Response<Incoming>, format: Format) -> Lines<T> {
        Lines {
            service: self.service,
            body: resp.into_body(),
            buf: BytesMut::new(),
            sse: SseReader::default(),
            format,
            _item: PhantomData,
        }
    }

    /// A request upgraded to `protocol` (`Connection: Upgrade`): the connection after the
    /// `101 Switching Protocols`.
    pub async fn upgrade(
        &self,
        method: Method,
        path: &str,
        protocol: &str,
    ) -> Result<TokioIo<Upgraded>, ClientError> {
        let (_, io) = self
            .upgrade_with(method, path, protocol, None::<&()>)
            .await?;
        Ok(io)
    }

    /// [`Client::upgrade`] with a JSON request body; also returns the `101`'s headers.
    pub async fn upgrade_with(
        &self,
        method: Method,
        path: &str,
        protocol: &str,
        body: Option<&impl Serialize>,
    ) -> Result<(hyper::HeaderMap, TokioIo<Upgraded>), ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("requests serialise"));
        let headers = [("connection", "Upgrade"), ("upgrade", protocol)];
        let resp = self.send(method, path, body, &headers).await?;
        let head = resp.headers().clone();
        let upgraded = hyper::upgrade::on(resp)
            .await
            .map_err(|source| ClientError::Http {
                service: self.service,
                source,
            })?;
        Ok((head, TokioIo::new(upgraded)))
    }
}

/// A streamed response, read as it arrives: NDJSON values of `T`, or server-sent events
/// whose data is a `T`; [`Lines::next`] reads the format the request asked for.
#[derive(Debug)]
pub struct Lines<T> {
    service: &'static str,
    body: Incoming,
    buf: BytesMut,
    sse: SseReader,
    format: Format,
    _item: PhantomData<fn() -> T>,
}

/// How a streamed body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Ndjson,
    Sse,
}

impl<T: DeserializeOwned> Lines<T> {
    /// More bytes of the body; false at its end.
    async fn fill(&mut self) -> Result<bool, ClientError> {
        match self.body.frame().await {
            Some(frame) => {
                let frame = frame.map_err(|source| ClientError::Http {
                    service: self.service,
                    source,
                })?;
                if let Ok(mut data) = frame.into_data() {
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        self.buf.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The next line without its newline; `None` at the end of the stream.
    pub async fn next_line(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(i + 1).freeze();
                return Ok(Some(line.slice(..i)));
            }
            if !self.fill().await? {
                return Ok((!self.buf.is_empty()).then(|| self.buf.split().freeze()));
            }
        }
    }

    /// The next value (an NDJSON line, or an event's data); `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<T>, ClientError> {
        match self.format {
            Format::Ndjson => self.next_json().await,
            Format::Sse => self.next_event().await,
        }
    }

    async fn next_json(&mut self) -> Result<Option<T>, ClientError> {
        loop {
            match self.next_line().await? {
                None => return Ok(None),
                Some(l) if l.iter().all(u8::is_ascii_whitespace) => continue,
                Some(l) => {
                    return crate::json::from_slice(&l).map(Some).map_err(|source| {
                        ClientError::Decode {
                            service: self.service,
                            source,
                        }
                    })
                }
            }
        }
    }

    /// The next server-sent event, raw; `None` at the end of the stream.
    pub async fn next_sse(&mut self) -> Result<Option<SseEvent>, ClientError> {
        loop {
            if !self.buf.is_empty() {
                let bytes = self.buf.split();
                self.sse.feed(&bytes);
            }
            if let Some(e) = self.sse.next_event() {
                return Ok(Some(e));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// The next server-sent event whose data is a `T` (others, such as `lagged`, skipped);
    /// `None` at the end of the stream.
    async fn next_event(&mut self) -> Result<Option<T>, ClientError> {
        while let Some(e) = self.next_sse().await? {
            match crate::json::from_str(&e.data) {
                Ok(v) => return Ok(Some(v)),
                Err(err) => tracing::debug!(
                    service = self.service,
                    event = e.event.as_deref().unwrap_or("message"),
                    %err,
                    "skipped an event that does not read as this stream's type"
                ),
            }
        }
        Ok(None)
    }
}
