//! The HTTP/1.1 fast path of plain-TCP connections: the common request (HTTP/1.1, a
//! `Host`, no body or a small `Content-Length` one, on a route to HTTP/1.1 backends without
//! sticky sessions) is read with `httparse`, its head rewritten and written to a pooled
//! backend socket, and the response relayed as its bytes come, its framing followed only to
//! know where it ends. One task, one buffer each way, no per-request channel.
//!
//! Anything else (upgrades, `Expect`, chunked request bodies, malformed or oversized heads,
//! unknown hosts, routes to HTTP/2 backends or with sticky sessions, no backend at all) is
//! handed to hyper before a byte of it has gone anywhere: what was read is put back in front
//! of the socket and hyper serves the connection from there, answering as it always has
//! (400, 404, 431, 503).

mod chunked;
mod client;
mod response;
mod upstream;
mod wire;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use flynn_http::service::Shutdown;
use hyper::header::HeaderValue;
use hyper::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::access_log::{self, Entry};
use crate::headers;
use crate::metrics::{Held, Metrics};
use crate::park::{Stream, PARK_AFTER};
use crate::proxy::{local_text, Peer, TEXT_PLAIN};
use crate::server::HttpListener;
use crate::table::HttpEntry;

use chunked::{Chunked, ChunkedError};
pub use client::RawBody;
pub(crate) use client::{send, Failed};
use upstream::NoConn;
pub(crate) use wire::Added;

/// The largest request body the fast path reads before sending it on (larger, and bodies of
/// unknown length, are streamed by hyper).
const MAX_BODY: u64 = 64 * 1024;
/// Bytes a read asks for at least.
const READ_CHUNK: usize = 16 * 1024;
/// The largest response head read from a backend.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// How the fast path left a connection.
pub(crate) enum Fast {
    /// No request came for a while: the connection may be parked.
    Idle,
    /// It is over (closed, timed out, failed, or ended by `Connection: close`).
    Over,
    /// hyper serves it from here, with what was read put back in front.
    Hyper,
}

/// A request the fast path took, once its head has been written for the backend.
struct Plan {
    entry: Arc<HttpEntry>,
    head_len: usize,
    body: usize,
    close: bool,
    head_request: bool,
    /// The request may be sent again on a new connection (an idempotent method).
    replay: bool,
    request_id: HeaderValue,
    /// Method, host and path, when requests are logged.
    logged: Option<(String, String, String)>,
}

/// Where a response body ends, followed through its bytes.
enum Remaining {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

impl Remaining {
    fn new(framing: response::Framing) -> Self {
        match framing {
            response::Framing::Empty | response::Framing::Length(0) => Self::Done,
            response::Framing::Length(n) => Self::Length(n),
            response::Framing::Chunked => Self::Chunked(Chunked::new()),
            response::Framing::UntilClose => Self::UntilClose,
        }
    }

    /// How many of `bytes` (the next ones from the backend) belong to the body.
    fn take(&mut self, bytes: &[u8]) -> Result<usize, ChunkedError> {
        self.decode(bytes, |_| {})
    }

    /// As [`Remaining::take`], calling `data` with each range of `bytes` that is body data
    /// (a chunked body's framing left out), in order.
    fn decode(
        &mut self,
        bytes: &[u8],
        mut data: impl FnMut(std::ops::Range<usize>),
    ) -> Result<usize, ChunkedError> {
        let n = match self {
            Self::Done => 0,
            Self::UntilClose => bytes.len(),
            Self::Length(left) => {
                let n = (*left).min(bytes.len() as u64);
                *left -= n;
                if *left == 0 {
                    *self = Self::Done;
                }
                n as usize
            }
            Self::Chunked(c) => {
                let n = c.decode(bytes, data)?;
                if c.done() {
                    *self = Self::Done;
                }
                return Ok(n);
            }
        };
        if n > 0 {
            data(0..n);
        }
        Ok(n)
    }
}

/// Reads more bytes onto the end of `buf`; 0 at the end of the stream.
async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    io.read_buf(buf).await
}

/// Reads a backend's response head into `buf` (which starts empty), skipping informational
/// (1xx) responses.
async fn read_response_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        while !wire::head_complete(buf) {
            if buf.len() > MAX_RESPONSE_HEAD {
                return Err(std::io::Error::other("response head too large"));
            }
            if read_more(stream, buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        // "HTTP/1.1 1xx", 101 aside (refused by the caller's parse).
        let informational = buf
            .get(9..12)
            .is_some_and(|code| code[0] == b'1' && code != b"101");
        if !informational {
            return Ok(());
        }
        let mut hs = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut hs);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                buf.drain(..n);
            }
            _ => return Ok(()), // the caller's parse reports it
        }
    }
}

impl HttpListener {
    /// Serves requests on `io` for as long as they are of the fast path's kind.
    pub(crate) async fn fast(&self, io: &mut Stream, peer: &Peer, shutdown: &Shutdown) -> Fast {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut back = Vec::new();
        // One timer for each wait, pushed later for each request (which takes no lock while
        // the deadline only moves later), and one wait for the shutdown.
        let mut timers = Timers {
            park: Box::pin(tokio::time::sleep(PARK_AFTER)),
            answer: Box::pin(tokio::time::sleep(
                self.proxy.config.response_header_timeout,
            )),
        };
        let mut stop = std::pin::pin!(shutdown.clone().wait());
        loop {
            if shutdown.is_triggered() {
                return hand_over(io, &buf);
            }
            if buf.is_empty() {
                let park = &mut timers.park;
                park.as_mut()
                    .reset(tokio::time::Instant::now() + PARK_AFTER);
                let first = tokio::select! {
                    biased;
                    r = read_more(io, &mut buf) => r,
                    _ = park => return Fast::Idle,
                    _ = &mut stop => return Fast::Idle,
                };
                match first {
                    Ok(n) if n > 0 => {}
                    _ => return Fast::Over,
                }
            }
            if !wire::head_complete(&buf) {
                let deadline = tokio::time::Instant::now() + self.config.header_read_timeout;
                while !wire::head_complete(&buf) {
                    if buf.len() > self.config.max_header_bytes {
                        return hand_over(io, &buf);
                    }
                    match tokio::time::timeout_at(deadline, read_more(io, &mut buf)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return Fast::Over,
                    }
                }
            }
            let Some(plan) = self.plan(&buf, peer, &mut out) else {
                return hand_over(io, &buf);
            };
            let total = plan.head_len + plan.body;
            while buf.len() < total {
                match tokio::time::timeout(self.config.idle_timeout, read_more(io, &mut buf)).await
                {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return Fast::Over,
                }
            }
            out.extend_from_slice(&buf[plan.head_len..total]);
            match self
                .exchange(io, &plan, peer, &mut out, &mut back, &mut timers)
                .await
            {
                Exchange::Done => {}
                Exchange::Hyper => return hand_over(io, &buf),
                Exchange::Over => return Fast::Over,
            }
            buf.drain(..total);
            if plan.close {
                let _ = io.shutdown().await;
                return Fast::Over;
            }
        }
    }

    /// Reads the head at the start of `buf`; `None` when hyper is to serve it. Writes the
    /// backend's head into `out`.
    fn plan(&self, buf: &[u8], peer: &Peer, out: &mut Vec<u8>) -> Option<Plan> {
        let mut hs = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
        let req = wire::Request::parse(buf, &mut hs)?;
        if req.head_len > self.config.max_header_bytes || req.content_length > MAX_BODY {
            return None;
        }
        let entry = self
            .proxy
            .table
            .load()
            .lookup(req.host, req.path())?
            .clone();
        let route = &entry.route;
        if route.http2 || route.sticky || route.disable_keep_alives {
            return None;
        }
        let request_id = match req.request_id() {
            Some(id) => HeaderValue::from_bytes(id).ok()?,
            None => headers::new_request_id(),
        };
        out.clear();
        let ours = wire::Added {
            forwarded: &peer.forwarded,
            request_id: request_id.as_bytes(),
            start_ms: headers::request_start(),
            close: false,
        };
        req.write_backend_head(out, &ours);
        let logged = self.proxy.access_log.as_ref().map(|_| {
            (
                req.method.to_string(),
                req.host.to_string(),
                req.target.to_string(),
            )
        });
        Some(Plan {
            head_len: req.head_len,
            body: req.content_length as usize,
            close: req.close,
            head_request: req.method == "HEAD",
            replay: upstream::idempotent(req.method.as_bytes()),
            request_id,
            logged,
            entry,
        })
    }

    /// Sends the request in `out` (head and body) to a backend of its route and relays the
    /// answer to `io`.
    async fn exchange(
        &self,
        io: &mut Stream,
        plan: &Plan,
        peer: &Peer,
        out: &mut Vec<u8>,
        back: &mut Vec<u8>,
        timers: &mut Timers,
    ) -> Exchange {
        let start = Instant::now();
        let proxy = &self.proxy;
        let gauge = Held::new(&proxy.metrics, Metrics::in_flight);
        let route = &plan.entry.route;
        let mut conn = match upstream::connect(&plan.entry, None, &proxy.config).await {
            Ok(c) => c,
            // No backend was tried: hyper answers (503, the custom page).
            Err(NoConn::NoBackend) => return Exchange::Hyper,
            Err(NoConn::Failed) => {
                drop(gauge);
                return self
                    .answer(io, plan, peer, out, StatusCode::BAD_GATEWAY, None, start)
                    .await;
            }
        };
        let backend = conn.backend().clone();
        let trip = conn
            .round_trip(
                out,
                back,
                &proxy.config,
                timers.answer.as_mut(),
                plan.replay,
            )
            .await;
        let failed = trip.err().map(|f| f.status(&route.id, backend.addr));
        let mut hs = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
        let parsed = match failed {
            Some(status) => Err(status),
            None => response::Response::parse(back, &mut hs, plan.head_request).map_err(|e| {
                tracing::warn!(route = %route.id, backend = %backend.addr, error = %e, "backend failed the request");
                StatusCode::BAD_GATEWAY
            }),
        };
        let resp = match parsed {
            Ok(r) => r,
            Err(status) => {
                drop(gauge);
                return self
                    .answer(io, plan, peer, out, status, Some(backend.addr), start)
                    .await;
            }
        };
        let status = resp.status;
        let close = plan.close;
        let mut reusable = resp.reusable;
        let mut remaining = Remaining::new(resp.framing);
        out.clear();
        resp.write_client_head(out, close);
        let head_len = resp.head_len;
        drop(gauge);
        self.done(plan, peer, status, Some(backend.addr), start);

        // The body: what came with the head, then as it comes.
        let mut from = head_len;
        loop {
            let bytes = &back[from..];
            let Ok(k) = remaining.take(bytes) else {
                return Exchange::Over;
            };
            reusable &= k == bytes.len();
            if matches!(remaining, Remaining::UntilClose) {
                response::write_chunk(out, &bytes[..k]);
            } else {
                out.extend_from_slice(&bytes[..k]);
            }
            if !out.is_empty() && io.write_all(out).await.is_err() {
                return Exchange::Over;
            }
            out.clear();
            if matches!(remaining, Remaining::Done) {
                break;
            }
            back.clear();
            from = 0;
            match tokio::time::timeout(self.config.idle_timeout, read_more(&mut conn.stream, back))
                .await
            {
                Ok(Ok(0)) if matches!(remaining, Remaining::UntilClose) => {
                    if io.write_all(response::LAST_CHUNK).await.is_err() {
                        return Exchange::Over;
                    }
                    break;
                }
                Ok(Ok(n)) if n > 0 => {}
                _ => return Exchange::Over,
            }
        }
        if reusable && !backend.is_down() {
            backend.pool.put_stream(conn.stream);
        }
        Exchange::Done
    }

    /// Answers with an error of the router's own, the request having been read whole.
    #[allow(clippy::too_many_arguments)]
    async fn answer(
        &self,
        io: &mut Stream,
        plan: &Plan,
        peer: &Peer,
        out: &mut Vec<u8>,
        status: StatusCode,
        backend: Option<SocketAddr>,
        start: Instant,
    ) -> Exchange {
        out.clear();
        response::write_local(
            out,
            status,
            TEXT_PLAIN,
            local_text(status).as_bytes(),
            plan.close,
        );
        self.done(plan, peer, status.as_u16(), backend, start);
        match io.write_all(out).await {
            Ok(()) => Exchange::Done,
            Err(_) => Exchange::Over,
        }
    }

    /// Counts an answered request and logs it.
    fn done(
        &self,
        plan: &Plan,
        peer: &Peer,
        status: u16,
        backend: Option<SocketAddr>,
        start: Instant,
    ) {
        let proxy = &self.proxy;
        let elapsed = start.elapsed();
        plan.entry.count(&proxy.metrics, status);
        proxy.metrics.observe(elapsed.as_secs_f64());
        if let (Some(log), Some((method, host, path))) = (&proxy.access_log, &plan.logged) {
            log.log(Entry {
                time: flynn_http::Timestamp::now(),
                request_id: plan.request_id.to_str().unwrap_or("").to_string(),
                client: peer.client.ip().to_canonical().to_string(),
                method: method.clone(),
                host: host.clone(),
                path: path.clone(),
                proto: "HTTP/1.1",
                status,
                route: plan.entry.route.id.clone(),
                backend: backend.map(|b| b.to_string()),
                duration_ms: access_log::duration_ms(elapsed),
            });
        }
    }
}

/// The timers of a connection's waits, reused from request to request.
struct Timers {
    /// For the first bytes of the next request.
    park: Pin<Box<Sleep>>,
    /// For a backend's response head.
    answer: Pin<Box<Sleep>>,
}

/// How one request's exchange with a backend ended.
enum Exchange {
    /// Answered; the connection may carry another request.
    Done,
    /// hyper is to serve the request (nothing of it was sent).
    Hyper,
    /// The connection is over.
    Over,
}

/// Puts `read` back in front of `io` for hyper.
fn hand_over(io: &mut Stream, read: &[u8]) -> Fast {
    io.inner.put_back(read);
    Fast::Hyper
}
