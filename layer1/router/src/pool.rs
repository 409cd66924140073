//! Connections to one backend: dialing with a timeout, HTTP/1.1 connections kept idle for
//! reuse (a connection goes back only once its response body has been read to the end),
//! hyper's and the fast path's (plain sockets) apart, and one shared HTTP/2 (h2c) connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::clock::now_ms;

/// Idle HTTP/1.1 connections kept per backend: at least the requests a busy router has in
/// flight to it, or connections are closed and dialled again under steady load (256 cost
/// HTTP/2 clients with 320 streams in flight a third of their throughput).
const MAX_IDLE: usize = 1024;
/// How long an idle connection is kept (backends commonly close theirs after 60-75 s).
const IDLE_FOR: Duration = Duration::from_secs(50);

/// Why no connection to a backend could be made (the request may go to another backend).
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The TCP connect failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The backend.
        addr: SocketAddr,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The TCP connect took too long.
    #[error("connecting to {addr}: no answer within {timeout:?}")]
    Timeout {
        /// The backend.
        addr: SocketAddr,
        /// The dial timeout.
        timeout: Duration,
    },
    /// The HTTP/2 handshake failed.
    #[error("HTTP/2 handshake with {addr}: {source}")]
    Handshake {
        /// The backend.
        addr: SocketAddr,
        /// The failure.
        #[source]
        source: hyper::Error,
    },
}

/// Opens a TCP connection to `addr` within `timeout`, with Nagle off.
pub async fn dial(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, DialError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| DialError::Timeout { addr, timeout })?
        .map_err(|source| DialError::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

struct Idle {
    sender: http1::SendRequest<Incoming>,
    since: Instant,
}

/// The connection pool of one backend.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    /// The fast path's idle sockets, with when each was put back (coarse clock, ms).
    streams: Mutex<Vec<(TcpStream, u64)>>,
    h2: tokio::sync::Mutex<Option<http2::SendRequest<Incoming>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().map(|i| i.len()).unwrap_or(0);
        let streams = self.streams.lock().map(|i| i.len()).unwrap_or(0);
        f.debug_struct("Pool")
            .field("idle", &idle)
            .field("streams", &streams)
            .finish()
    }
}

impl Pool {
    /// An idle HTTP/1.1 connection not known to be closed, newest first.
    pub fn take(&self) -> Option<http1::SendRequest<Incoming>> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some(c) = idle.pop() {
            if c.since.elapsed() < IDLE_FOR && !c.sender.is_closed() {
                return Some(c.sender);
            }
        }
        None
    }

    /// Keeps a connection whose last response was read to the end (the caller of
    /// [`Pool::take`] waits for it to be ready).
    pub fn put(&self, sender: http1::SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Drops every idle connection (the backend went away).
    pub fn clear(&self) {
        self.idle.lock().expect("pool lock").clear();
        self.streams.lock().expect("pool lock").clear();
    }

    /// An idle socket of the fast path, newest first, that has not been closed and has
    /// nothing unread (a backend's close or stray bytes rule it out).
    pub fn take_stream(&self) -> Option<TcpStream> {
        let mut idle = self.streams.lock().expect("pool lock");
        let fresh = now_ms().saturating_sub(IDLE_FOR.as_millis() as u64);
        while let Some((stream, since)) = idle.pop() {
            let mut probe = [0u8; 1];
            let open = matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
            if since >= fresh && open {
                return Some(stream);
            }
        }
        None
    }

    /// Keeps a fast-path socket whose last response was read to the end.
    pub fn put_stream(&self, stream: TcpStream) {
        let mut idle = self.streams.lock().expect("pool lock");
        if idle.len() < MAX_IDLE {
            idle.push((stream, now_ms()));
        }
    }

    /// A new HTTP/1.1 connection to `addr` (upgrades allowed).
    pub async fn connect_h1(
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<http1::SendRequest<Incoming>, DialError> {
        let stream = dial(addr, timeout).await?;
        let (sender, conn) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| DialError::Handshake { addr, source })?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%addr, error = %e, "backend connection ended");
            }
        });
        Ok(sender)
    }

    /// The backend's HTTP/2 connection, made on first use and again after it closes.
    pub async fn h2(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<http2::SendRequest<Incoming>, DialError> {
        let mut shared = self.h2.lock().await;
        if let Some(s) = shared.as_ref() {
            if !s.is_closed() {
                return Ok(s.clone());
            }
        }
        let stream = dial(addr, timeout).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| DialError::Handshake { addr, source })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "backend h2 connection ended");
            }
        });
        *shared = Some(sender.clone());
        Ok(sender)
    }
}
