//! A backend connection for one request on a plain socket: a pooled one or a new one (the
//! next backend tried when a connect fails), the request's bytes written to it and the
//! response head read back. The fast path uses it, and so do bodiless requests hyper read
//! (HTTP/2, TLS) on their way to HTTP/1.1 backends.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::read_response_head;
use crate::backends::{Backend, InFlight};
use crate::pool;
use crate::proxy::{ProxyConfig, MAX_ATTEMPTS};
use crate::table::HttpEntry;

/// A connection to a backend, holding one request in flight to it.
pub(crate) struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// It came from the pool (it may turn out closed).
    pooled: bool,
    /// The request's in-flight count on the backend.
    pub flight: InFlight,
}

/// Why no connection was made.
pub(crate) enum NoConn {
    /// No backend could be asked (none, or every one chosen had left): 503.
    NoBackend,
    /// Every backend tried failed to connect: 502.
    Failed,
}

/// How a request's round trip failed.
pub(crate) enum Failure {
    /// No response head within the response header timeout: 504.
    Timeout,
    /// The write or the read failed, or the backend closed: 502.
    Io(io::Error),
}

impl Failure {
    /// What the client is answered (a failed read or write is logged).
    pub fn status(self, route: &str, backend: SocketAddr) -> hyper::StatusCode {
        match self {
            Self::Timeout => hyper::StatusCode::GATEWAY_TIMEOUT,
            Self::Io(e) => {
                tracing::warn!(route, %backend, error = %e, "backend failed the request");
                hyper::StatusCode::BAD_GATEWAY
            }
        }
    }
}

/// A connection to a backend of `entry`'s route: `first` when given (a sticky cookie's),
/// then the less loaded of two, up to [`MAX_ATTEMPTS`] backends, a pooled socket when
/// there is one; a backend that refuses is ejected for a while.
pub(crate) async fn connect(
    entry: &HttpEntry,
    mut first: Option<Arc<Backend>>,
    config: &ProxyConfig,
) -> Result<Conn, NoConn> {
    let route = &entry.route;
    let mut tried = [SocketAddr::from(([0, 0, 0, 0], 0)); MAX_ATTEMPTS];
    let (mut n, mut gone) = (0, 0);
    loop {
        let backend = match first
            .take()
            .or_else(|| entry.service.pick(route.leader, &tried[..n]))
        {
            Some(b) if n < MAX_ATTEMPTS => b,
            _ if n == gone => return Err(NoConn::NoBackend),
            _ => return Err(NoConn::Failed),
        };
        tried[n] = backend.addr;
        n += 1;
        let Some(flight) = backend.begin() else {
            gone += 1;
            continue;
        };
        if let Some(stream) = backend.pool.take_stream() {
            return Ok(Conn {
                stream,
                pooled: true,
                flight,
            });
        }
        match pool::dial(backend.addr, config.connect_timeout).await {
            Ok(stream) => {
                return Ok(Conn {
                    stream,
                    pooled: false,
                    flight,
                })
            }
            Err(e) => {
                tracing::warn!(route = %route.id, backend = %backend.addr, error = %e, "backend connect failed; trying another");
                backend.eject();
            }
        }
    }
}

impl Conn {
    /// The backend.
    pub fn backend(&self) -> &Arc<Backend> {
        self.flight.backend()
    }

    /// Writes `request` (head and body) and reads the response head, and whatever followed
    /// it, into `back`, within the response header timeout (`answer`, reset here). A pooled
    /// socket that fails the write, or (when the request may be sent twice: `replay`) closes
    /// without a byte of answer, was closed by the backend as it was taken: the request goes
    /// again on a new connection.
    pub async fn round_trip(
        &mut self,
        request: &[u8],
        back: &mut Vec<u8>,
        config: &ProxyConfig,
        mut answer: Pin<&mut Sleep>,
        replay: bool,
    ) -> Result<(), Failure> {
        answer
            .as_mut()
            .reset(tokio::time::Instant::now() + config.response_header_timeout);
        loop {
            back.clear();
            let mut written = false;
            let trip = async {
                self.stream.write_all(request).await?;
                written = true;
                read_response_head(&mut self.stream, back).await
            };
            let result = tokio::select! {
                biased;
                r = trip => r,
                _ = answer.as_mut() => return Err(Failure::Timeout),
            };
            let stale = self.pooled && result.is_err() && (!written || (replay && back.is_empty()));
            if !stale {
                return result.map_err(Failure::Io);
            }
            self.pooled = false;
            let addr = self.backend().addr;
            self.stream = pool::dial(addr, config.connect_timeout)
                .await
                .map_err(|e| Failure::Io(io::Error::other(e)))?;
        }
    }
}

/// True for the methods a request may be sent twice with (RFC 9110 §9.2.2).
pub(crate) fn idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
    )
}
