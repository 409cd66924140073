//! Plain-TCP HTTP/1.1 connections that hold no HTTP state while idle.
//!
//! hyper keeps a connection's read and write buffers and its parser for as long as the
//! connection lives, about 33 KiB each, idle or not. Here a kept-alive connection that has
//! been quiet for [`PARK_AFTER`] with no request under way is *parked*: its hyper
//! connection ends without shutting the socket (the stream's shutdown is a no-op while
//! parking), its buffers are freed, and the socket waits for readability alone. The next
//! bytes start a new hyper connection, with whatever hyper had read but not parsed put back
//! in front. A client sees one keep-alive connection throughout.
//!
//! HTTP/2 with prior knowledge (its preface) and upgrades are served as before: an upgraded
//! connection is a byte tunnel that never comes back to HTTP.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flynn_http::service::Shutdown;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::ProxyBody;
use crate::fast::Fast;
use crate::metrics::{Held, Metrics};
use crate::proxy::Peer;
use crate::proxy_protocol::Prefixed;
use crate::server::{service, Activity, HttpListener, Tracked, SHUTDOWN_SETTLE};

/// How long a kept-alive connection is quiet, with no request under way, before it is parked.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// The connection preface of HTTP/2 with prior knowledge.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A plain-TCP client connection.
pub(crate) type Stream = Tracked<Prefixed<TcpStream>>;

/// How a wait for a parked connection's next bytes ended.
enum Next {
    /// Bytes (or the client's close) are there to read.
    Readable,
    /// Nothing came in time, or the router is shutting down and nothing came while it settled.
    Close,
}

/// How one hyper connection on the stream ended.
enum Round {
    /// Parked: the stream is back, with hyper's unparsed bytes put back in front.
    Parked(Stream),
    /// The connection is over (closed, failed, upgraded or shut down).
    Over,
}

impl HttpListener {
    /// Serves a plain-TCP connection: HTTP/2 by its preface, else HTTP/1.1 in rounds, parked
    /// between them while idle.
    pub(crate) async fn serve_plain(&self, io: Stream, peer: Peer, shutdown: Shutdown) {
        let activity = io.activity.clone();
        match self.first_bytes(&io).await {
            Some(true) => {
                // Boxed, as each round is: a parked connection's task stays small.
                return Box::pin(self.serve(io, peer, activity.clone(), shutdown)).await;
            }
            Some(false) => {}
            None => return,
        }
        let waiting = Arc::new(AtomicUsize::new(0));
        let service = service(self.proxy.clone(), peer.clone(), waiting.clone());
        let mut io = io;
        let mut closing = false;
        loop {
            // The fast path first; hyper once a request is not of its kind, until the
            // connection next goes quiet.
            if !closing {
                match Box::pin(self.fast(&mut io, &peer, &shutdown)).await {
                    Fast::Idle => {
                        match self.parked(&io, &shutdown).await {
                            Next::Readable => closing = shutdown.is_triggered(),
                            Next::Close => return,
                        }
                        continue;
                    }
                    Fast::Over => return,
                    Fast::Hyper => closing = shutdown.is_triggered(),
                }
            }
            let conn = self
                .http1()
                .serve_connection(TokioIo::new(io), service.clone());
            // Boxed: the hyper connection and the round's state are freed while parked.
            let round = self.round(
                conn.with_upgrades(),
                &activity,
                &waiting,
                &shutdown,
                closing,
            );
            match Box::pin(round).await {
                Round::Parked(back) => io = back,
                Round::Over => return,
            }
            match self.parked(&io, &shutdown).await {
                Next::Readable => closing = shutdown.is_triggered(),
                Next::Close => return,
            }
        }
    }

    /// Whether the client speaks HTTP/2 with prior knowledge, once its first bytes tell;
    /// `None` when it sends nothing in time or closes.
    async fn first_bytes(&self, io: &Stream) -> Option<bool> {
        let decide = async {
            let mut buf = [0u8; H2_PREFACE.len()];
            loop {
                let head = io.inner.buffered();
                let n = if head.is_empty() {
                    io.inner.get_ref().peek(&mut buf).await.ok()?
                } else {
                    let n = head.len().min(buf.len());
                    buf[..n].copy_from_slice(&head[..n]);
                    n
                };
                if n == 0 {
                    return None;
                }
                if !H2_PREFACE.starts_with(&buf[..n]) {
                    return Some(false);
                }
                if n == H2_PREFACE.len() {
                    return Some(true);
                }
                // A prefix of the preface so far: wait for more (peek returns at once while
                // those bytes are unread).
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(self.config.header_read_timeout, decide)
            .await
            .ok()
            .flatten()
    }

    fn http1(&self) -> http1::Builder {
        let mut b = http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(self.config.header_read_timeout)
            .max_buf_size(self.config.max_header_bytes.max(8192))
            .max_header_size(self.config.max_header_bytes)
            .keep_alive(true);
        b
    }

    /// Runs one hyper connection until it ends, parking it once it has been idle long enough.
    /// With `closing`, the router is shutting down: it serves the request already there (or
    /// arriving within [`SHUTDOWN_SETTLE`]) and closes. (A graceful shutdown of a hyper
    /// connection that has read nothing yet closes it at once, so it waits for the settle.)
    async fn round<S>(
        &self,
        mut conn: http1::UpgradeableConnection<TokioIo<Stream>, S>,
        activity: &Activity,
        waiting: &AtomicUsize,
        shutdown: &Shutdown,
        mut closing: bool,
    ) -> Round
    where
        S: HttpService<Incoming, ResBody = ProxyBody, Error = Infallible> + Unpin,
        http1::UpgradeableConnection<TokioIo<Stream>, S>: Future<Output = hyper::Result<()>>,
    {
        let idle = self.config.idle_timeout;
        let mut parking = false;
        let mut settling = closing;
        let check = tokio::time::sleep(PARK_AFTER);
        tokio::pin!(check);
        let settle = tokio::time::sleep(if closing {
            SHUTDOWN_SETTLE
        } else {
            Duration::ZERO
        });
        tokio::pin!(settle);
        let mut stop = std::pin::pin!(shutdown.clone().wait());
        loop {
            tokio::select! {
                r = &mut conn => {
                    if let Err(e) = &r {
                        tracing::debug!(error = %e, "connection ended");
                    }
                    if !parking || r.is_err() {
                        return Round::Over;
                    }
                    let Some(parts) = conn.into_parts() else {
                        return Round::Over;
                    };
                    let mut io = parts.io.into_inner();
                    io.activity.parking.store(false, Ordering::Relaxed);
                    io.inner.put_back(&parts.read_buf);
                    return Round::Parked(io);
                }
                _ = &mut check => {
                    let quiet = activity.quiet();
                    let busy = waiting.load(Ordering::Relaxed) > 0;
                    if !busy && quiet >= idle {
                        tracing::debug!("idle connection closed");
                        return Round::Over;
                    }
                    if !busy && !parking && !closing && quiet >= PARK_AFTER {
                        parking = true;
                        activity.parking.store(true, Ordering::Relaxed);
                        std::pin::Pin::new(&mut conn).graceful_shutdown();
                    }
                    let wait = PARK_AFTER.saturating_sub(quiet).max(Duration::from_millis(100));
                    check.as_mut().reset(Instant::now() + wait);
                }
                _ = &mut stop, if !closing => {
                    closing = true;
                    if parking {
                        // Ending anyway: the end closes the socket.
                        activity.parking.store(false, Ordering::Relaxed);
                        parking = false;
                    } else {
                        // A request may be on its way: it gets a moment to be read first.
                        settle.as_mut().reset(Instant::now() + SHUTDOWN_SETTLE);
                        settling = true;
                    }
                }
                _ = &mut settle, if settling => {
                    settling = false;
                    std::pin::Pin::new(&mut conn).graceful_shutdown();
                }
            }
        }
    }

    /// Waits, holding nothing but the socket, for a parked connection's next bytes.
    async fn parked(&self, io: &Stream, shutdown: &Shutdown) -> Next {
        if !io.inner.buffered().is_empty() {
            return Next::Readable;
        }
        let _gauge = Held::new(self.proxy.metrics(), Metrics::parked);
        let limit = self
            .config
            .header_read_timeout
            .min(self.config.idle_timeout);
        let readable = io.inner.get_ref().readable();
        tokio::pin!(readable);
        tokio::select! {
            r = &mut readable => return if r.is_ok() { Next::Readable } else { Next::Close },
            _ = tokio::time::sleep(limit) => return Next::Close,
            _ = shutdown.clone().wait() => {}
        }
        // Shutting down: a request sent just before still gets served.
        match tokio::time::timeout(SHUTDOWN_SETTLE, readable).await {
            Ok(Ok(())) => Next::Readable,
            _ => Next::Close,
        }
    }
}
