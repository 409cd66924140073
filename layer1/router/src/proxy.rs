//! The HTTP proxy: one request in, matched against the live route table, sent to a backend
//! (sticky, leader or the less loaded of two), retried on another backend only when a
//! connection could not be made, and the response streamed back. Upgrades (WebSocket and
//! others) become byte tunnels that outlive route table swaps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;

use crate::access_log::{AccessLog, Entry};
use crate::backends::{Backend, InFlight};
use crate::body::{BackendBody, ProxyBody};
use crate::fast;
use crate::headers;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::sticky::Sticky;
use crate::table::{HttpEntry, RouteTable};
use router_api::HttpRoute;

/// Backends a request may be offered to when connections fail.
pub const MAX_ATTEMPTS: usize = 4;

/// Proxy settings.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// TCP connect timeout to a backend.
    pub connect_timeout: Duration,
    /// How long a backend may take to send response headers.
    pub response_header_timeout: Duration,
    /// The body of 503 answers (no backend), HTML; a short plain text otherwise.
    pub error_page_503: Option<Bytes>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            response_header_timeout: Duration::from_secs(600),
            error_page_503: None,
        }
    }
}

/// Where a request came from.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client (from the PROXY header when the listener reads one).
    pub client: SocketAddr,
    /// The `X-Forwarded-*` values of its connection.
    pub forwarded: headers::Forwarded,
}

impl Peer {
    /// A client at `client` on listener `port` (`tls`: HTTPS).
    pub fn new(client: SocketAddr, port: u16, tls: bool) -> Self {
        Self {
            client,
            forwarded: headers::Forwarded::new(client.ip(), tls, port),
        }
    }
}

/// The HTTP proxy.
#[derive(Debug)]
pub struct Proxy {
    pub(crate) table: Arc<ArcSwap<RouteTable>>,
    sticky: Sticky,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) access_log: Option<AccessLog>,
    pub(crate) config: ProxyConfig,
}

/// What came of a request, for metrics and the log.
struct Outcome {
    response: Response<ProxyBody>,
    backend: Option<SocketAddr>,
}

impl Outcome {
    fn local(status: StatusCode) -> Self {
        Self {
            response: text(status),
            backend: None,
        }
    }
}

/// The plain-text body of an answer the router makes itself.
pub(crate) fn local_text(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "Bad Request: no Host header\n",
        StatusCode::NOT_FOUND => "Not Found\n",
        StatusCode::BAD_GATEWAY => "Bad Gateway\n",
        StatusCode::SERVICE_UNAVAILABLE => "Service Unavailable\n",
        StatusCode::GATEWAY_TIMEOUT => "Gateway Timeout\n",
        _ => "",
    }
}

/// The content type of [`local_text`] answers.
pub(crate) const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

fn text(status: StatusCode) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::local(Bytes::from_static(
        local_text(status).as_bytes(),
    )));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    r
}

/// The host a request is for: `:authority` (HTTP/2, absolute-form) or `Host`.
fn host_of<B>(req: &Request<B>) -> Option<&str> {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
}

impl Proxy {
    /// A proxy over the live `table`.
    pub fn new(
        table: Arc<ArcSwap<RouteTable>>,
        sticky: Sticky,
        metrics: Arc<Metrics>,
        access_log: Option<AccessLog>,
        config: ProxyConfig,
    ) -> Self {
        Self {
            table,
            sticky,
            metrics,
            access_log,
            config,
        }
    }

    /// The metrics it counts in.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Answers one request.
    pub async fn serve(&self, req: Request<Incoming>, peer: Peer) -> Response<ProxyBody> {
        let start = Instant::now();
        self.metrics.in_flight(1);
        let logged = self.access_log.as_ref().map(|_| {
            (
                req.method().to_string(),
                host_of(&req).unwrap_or("").to_string(),
                req.uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
                    .to_string(),
                req.version(),
            )
        });
        let entry = host_of(&req)
            .and_then(|host| self.table.load().lookup(host, req.uri().path()).cloned());
        let (mut outcome, route_id, request_id) = match &entry {
            None if host_of(&req).is_none() => (Outcome::local(StatusCode::BAD_REQUEST), "", None),
            None => (Outcome::local(StatusCode::NOT_FOUND), "", None),
            Some(e) => {
                let plain = !e.route.http2
                    && hyper::body::Body::is_end_stream(req.body())
                    && !(req.version() == Version::HTTP_11
                        && headers::wants_upgrade(req.headers()));
                let (outcome, id) = if plain {
                    self.forward_plain(req, e, &peer).await
                } else {
                    // Boxed: hyper's client path makes a large future, and the request's
                    // future is moved whole.
                    Box::pin(self.forward(req, e, &peer)).await
                };
                (outcome, e.route.id.as_str(), Some(id))
            }
        };
        let status = outcome.response.status();
        if status == StatusCode::SERVICE_UNAVAILABLE && outcome.backend.is_none() {
            if let Some(page) = &self.config.error_page_503 {
                outcome.response = Response::new(ProxyBody::local(page.clone()));
                *outcome.response.status_mut() = status;
                outcome.response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
            }
        }
        let elapsed = start.elapsed();
        self.metrics.in_flight(-1);
        match &entry {
            Some(e) => e.count(&self.metrics, status.as_u16()),
            None => self.metrics.count(route_id, status.as_u16()),
        }
        self.metrics.observe(elapsed.as_secs_f64());
        if let (Some(log), Some((method, host, path, version))) = (&self.access_log, logged) {
            log.log(Entry {
                time: flynn_http::Timestamp::now(),
                request_id: request_id
                    .and_then(|v: HeaderValue| v.to_str().ok().map(str::to_string))
                    .unwrap_or_default(),
                client: peer.client.ip().to_canonical().to_string(),
                method,
                host,
                path,
                proto: match version {
                    Version::HTTP_2 => "HTTP/2",
                    Version::HTTP_10 => "HTTP/1.0",
                    _ => "HTTP/1.1",
                },
                status: status.as_u16(),
                route: route_id.to_string(),
                backend: outcome.backend.map(|b| b.to_string()),
                duration_ms: crate::access_log::duration_ms(elapsed),
            });
        }
        outcome.response
    }

    /// Sends a matched request to a backend of its route through hyper's client (requests
    /// with a body, upgrades, routes to HTTP/2 backends).
    async fn forward(
        &self,
        mut req: Request<Incoming>,
        entry: &Arc<HttpEntry>,
        peer: &Peer,
    ) -> (Outcome, HeaderValue) {
        let route = &entry.route;
        let upgrade = req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let request_id = headers::request_id(&mut parts.headers);
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        headers::add_forwarded(&mut parts.headers, &peer.forwarded);
        headers::add_request_start(&mut parts.headers);
        if !parts.headers.contains_key(header::HOST) {
            if let Some(a) = parts.uri.authority() {
                if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                    parts.headers.insert(header::HOST, v);
                }
            }
        }
        if route.http2 {
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost")
                .to_string();
            parts.uri = Uri::try_from(format!("http://{host}{path}")).unwrap_or_default();
            parts.version = Version::HTTP_2;
            parts.headers.remove(header::HOST);
        } else {
            if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
                // HTTP/2 or absolute-form: backends get origin-form.
                let path = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                parts.uri = Uri::try_from(path).unwrap_or_default();
            }
            parts.version = Version::HTTP_11;
            if route.disable_keep_alives && !upgrade {
                parts
                    .headers
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
        let sticky = route
            .sticky
            .then(|| self.sticky.from_headers(&parts.headers))
            .flatten();
        let mut req = Request::from_parts(parts, body);
        let mut tried: Vec<SocketAddr> = Vec::with_capacity(MAX_ATTEMPTS);
        let mut attempts = 0;
        // Backends chosen that left discoverd before the request began: not failures.
        let mut gone = 0;
        let service = &entry.service;
        let (mut resp, flight, reuse) = loop {
            attempts += 1;
            let backend = match sticky
                .filter(|_| tried.is_empty())
                .and_then(|a| service.find(a))
                .or_else(|| service.pick(route.leader, &tried))
            {
                Some(b) if attempts <= MAX_ATTEMPTS => b,
                _ if tried.len() == gone => {
                    let o = Outcome::local(StatusCode::SERVICE_UNAVAILABLE);
                    return (o, request_id);
                }
                _ => {
                    let o = Outcome::local(StatusCode::BAD_GATEWAY);
                    return (o, request_id);
                }
            };
            tried.push(backend.addr);
            let Some(flight) = backend.begin() else {
                gone += 1;
                continue;
            };
            match self.send(&backend, req, route.http2).await {
                Sent::Response(resp, reuse) => break (resp, flight, reuse),
                Sent::NoConnection(back, e) => {
                    tracing::warn!(route = %route.id, backend = %backend.addr, error = %e, "backend connect failed; trying another");
                    backend.eject();
                    req = back;
                }
                Sent::Stale(back) => {
                    // The pooled connection closed before the request was written: the
                    // same backend gets it again on a new connection.
                    tried.pop();
                    req = back;
                }
                Sent::Failed(e) => {
                    tracing::warn!(route = %route.id, backend = %backend.addr, error = %e, "backend failed the request");
                    let o = Outcome {
                        response: text(StatusCode::BAD_GATEWAY),
                        backend: Some(backend.addr),
                    };
                    return (o, request_id);
                }
                Sent::Timeout => {
                    let o = Outcome {
                        response: text(StatusCode::GATEWAY_TIMEOUT),
                        backend: Some(backend.addr),
                    };
                    return (o, request_id);
                }
            }
        };
        let backend = flight.backend().clone();
        if let (Some(client), StatusCode::SWITCHING_PROTOCOLS) = (client_upgrade, resp.status()) {
            let backend_upgrade = hyper::upgrade::on(&mut resp);
            let drain = route.drain_backends;
            tokio::spawn(tunnel(client, backend_upgrade, flight, drain));
            let (parts, _) = resp.into_parts();
            let response = Response::from_parts(parts, ProxyBody::empty());
            return (
                Outcome {
                    response,
                    backend: Some(backend.addr),
                },
                request_id,
            );
        }
        let (mut parts, body) = resp.into_parts();
        // The router answers in its own HTTP version, whatever the backend spoke (an
        // HTTP/1.0 backend's status line is not passed on to HTTP/1.1 clients).
        parts.version = Version::HTTP_11;
        headers::strip_hop_by_hop(&mut parts.headers, false);
        self.set_sticky(route, sticky, backend.addr, &mut parts.headers);
        let reuse = reuse.filter(|_| !route.disable_keep_alives);
        let response = Response::from_parts(
            parts,
            ProxyBody::Backend(BackendBody::new(body, reuse, flight)),
        );
        (
            Outcome {
                response,
                backend: Some(backend.addr),
            },
            request_id,
        )
    }

    /// Sends a bodiless request to an HTTP/1.1 backend over a plain socket, without hyper's
    /// client (the fast path's [`fast::send`]).
    async fn forward_plain(
        &self,
        req: Request<Incoming>,
        entry: &Arc<HttpEntry>,
        peer: &Peer,
    ) -> (Outcome, HeaderValue) {
        let route = &entry.route;
        let (parts, _) = req.into_parts();
        let request_id = headers::request_id_of(&parts.headers);
        let sticky = route
            .sticky
            .then(|| self.sticky.from_headers(&parts.headers))
            .flatten();
        let first = sticky.and_then(|a| entry.service.find(a));
        let ours = fast::Added {
            forwarded: &peer.forwarded,
            request_id: request_id.as_bytes(),
            start_ms: headers::request_start(),
            close: route.disable_keep_alives,
        };
        let outcome = match fast::send(&parts, entry, first, &self.config, &ours).await {
            Ok((mut head, body, addr)) => {
                self.set_sticky(route, sticky, addr, &mut head.headers);
                Outcome {
                    response: Response::from_parts(head, ProxyBody::Raw(body)),
                    backend: Some(addr),
                }
            }
            Err(fast::Failed { status, backend }) => Outcome {
                response: text(status),
                backend,
            },
        };
        (outcome, request_id)
    }

    /// Gives the client a sticky cookie for `backend` on a sticky route, unless the one it
    /// sent (`sticky`) already names it.
    fn set_sticky(
        &self,
        route: &HttpRoute,
        sticky: Option<SocketAddr>,
        backend: SocketAddr,
        headers: &mut hyper::HeaderMap,
    ) {
        if route.sticky && sticky != Some(backend) {
            if let Ok(v) = HeaderValue::from_str(&self.sticky.set_cookie(backend)) {
                headers.append(header::SET_COOKIE, v);
            }
        }
    }

    /// One try of a request on one backend.
    async fn send(&self, backend: &Arc<Backend>, req: Request<Incoming>, h2: bool) -> Sent {
        let timeout = self.config.connect_timeout;
        if h2 {
            let mut sender = match Box::pin(backend.pool.h2(backend.addr, timeout)).await {
                Ok(s) => s,
                Err(e) => return Sent::NoConnection(req, e.to_string()),
            };
            return match tokio::time::timeout(
                self.config.response_header_timeout,
                sender.try_send_request(req),
            )
            .await
            {
                Err(_) => Sent::Timeout,
                Ok(Ok(resp)) => Sent::Response(resp, None),
                Ok(Err(mut e)) => match e.take_message() {
                    Some(req) => Sent::Stale(req),
                    None => Sent::Failed(e.into_error().to_string()),
                },
            };
        }
        let pooled = match backend.pool.take() {
            Some(mut s) => s.ready().await.is_ok().then_some(s),
            None => None,
        };
        let mut sender = match pooled {
            Some(s) => s,
            None => match Box::pin(Pool::connect_h1(backend.addr, timeout)).await {
                Ok(s) => s,
                Err(e) => return Sent::NoConnection(req, e.to_string()),
            },
        };
        match tokio::time::timeout(
            self.config.response_header_timeout,
            sender.try_send_request(req),
        )
        .await
        {
            Err(_) => Sent::Timeout,
            Ok(Ok(resp)) => Sent::Response(resp, Some(sender)),
            Ok(Err(mut e)) => match e.take_message() {
                Some(req) => Sent::Stale(req),
                None => Sent::Failed(e.into_error().to_string()),
            },
        }
    }
}

/// What one try came to.
enum Sent {
    Response(
        Response<Incoming>,
        Option<hyper::client::conn::http1::SendRequest<Incoming>>,
    ),
    NoConnection(Request<Incoming>, String),
    Stale(Request<Incoming>),
    Failed(String),
    Timeout,
}

/// Copies bytes both ways between an upgraded client and backend until both sides close
/// (half-close passes through), or the backend leaves discoverd on a route that does not
/// drain. The in-flight count lasts as long as the tunnel.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    backend: hyper::upgrade::OnUpgrade,
    flight: InFlight,
    drain: bool,
) {
    let (client, upstream) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let gone = flight.backend().clone();
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "tunnel ended");
            }
        }
        _ = gone.gone(), if !drain => {
            tracing::debug!(backend = %gone.addr, "tunnel closed: its backend left");
        }
    }
    drop(flight);
}
