//! The HTTP and HTTPS listeners: accept, read a PROXY header when configured, finish TLS,
//! then serve HTTP/1.1 (keep-alive, upgrades) or HTTP/2 (ALPN on TLS, prior knowledge on
//! plain TCP) with header-read and idle timeouts and no total-request timeout.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use flynn_http::service::Shutdown;
use std::convert::Infallible;
use std::future::Future;

use hyper::body::Incoming;
use hyper::service::{service_fn, Service};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::body::ProxyBody;
use crate::clock::now_ms;
use crate::proxy::{Peer, Proxy};
use crate::proxy_protocol::{self, Prefixed};

/// How long a connection keeps being served after shutdown begins, before it closes once its
/// request under way (if any) is answered.
pub(crate) const SHUTDOWN_SETTLE: Duration = Duration::from_millis(500);

/// Connection settings of the HTTP and HTTPS listeners.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a client may take to send a request's headers (HTTP/1.1; the wait for the
    /// next request on a kept-alive connection counts too), a PROXY header or a TLS
    /// handshake.
    pub header_read_timeout: Duration,
    /// A connection with no bytes moving either way and no request waiting on a backend for
    /// this long is closed.
    pub idle_timeout: Duration,
    /// The largest request head (HTTP/1.1; larger gets 431) and header list (HTTP/2).
    pub max_header_bytes: usize,
    /// Read a PROXY protocol (v1 or v2) header first on every connection.
    pub proxy_protocol: bool,
    /// How long open connections get to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
            max_header_bytes: 64 * 1024,
            proxy_protocol: false,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What a connection's stream records for its server loop.
#[derive(Debug)]
pub(crate) struct Activity {
    /// When bytes last moved (milliseconds on the router's coarse clock).
    pub(crate) last: AtomicU64,
    /// The hyper connection is ending only to be parked: its shutdown leaves the socket open.
    pub(crate) parking: AtomicBool,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            last: AtomicU64::new(now_ms()),
            parking: AtomicBool::new(false),
        })
    }

    /// How long no byte has moved.
    pub(crate) fn quiet(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.last.load(Ordering::Relaxed)))
    }
}

/// A stream that records when bytes last moved.
pub(crate) struct Tracked<S> {
    pub(crate) inner: S,
    pub(crate) activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.last.store(now_ms(), Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.last.store(now_ms(), Ordering::Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.last.store(now_ms(), Ordering::Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.activity.parking.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Open connections, for a bounded wait at shutdown.
#[derive(Debug, Default)]
pub struct Connections(AtomicUsize);

impl Connections {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

struct ConnGuard(Arc<Connections>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Requests waiting on the proxy, counted while its future lives.
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's service: each request goes to the proxy as from `peer`; `waiting` counts
/// those not yet answered with a response head.
pub(crate) fn service(
    proxy: Arc<Proxy>,
    peer: Peer,
    waiting: Arc<AtomicUsize>,
) -> impl Service<
    Request<Incoming>,
    Response = Response<ProxyBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send,
> + Clone
       + Send {
    service_fn(move |req| {
        let proxy = proxy.clone();
        let peer = peer.clone();
        let waiting = Waiting::new(&waiting);
        async move {
            // Boxed: the request future is kilobytes, and hyper moves the one it is given
            // several times (into its dispatcher, into a task for each HTTP/2 stream).
            let resp = Box::pin(proxy.serve(req, peer)).await;
            drop(waiting);
            Ok::<_, Infallible>(resp)
        }
    })
}

/// One listener's accept loop.
#[derive(Clone)]
pub struct HttpListener {
    /// The proxy requests go to.
    pub proxy: Arc<Proxy>,
    /// TLS, on an HTTPS listener.
    pub tls: Option<TlsAcceptor>,
    /// Connection settings.
    pub config: Arc<ServerConfig>,
    /// Open connections of every listener.
    pub connections: Arc<Connections>,
    /// True once the router is ready: connections are accepted from then on.
    pub serving: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for HttpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpListener")
            .field("tls", &self.tls.is_some())
            .field("config", &self.config)
            .finish()
    }
}

impl HttpListener {
    /// Accepts connections on `listener` until `shutdown`; each then gets a graceful close.
    pub async fn run(self, listener: TcpListener, shutdown: Shutdown) {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        // Connections wait in the accept queue until the router is ready.
        let mut serving = self.serving.clone();
        tokio::select! {
            _ = serving.wait_for(|s| *s) => {}
            _ = shutdown.clone().wait() => return,
        }
        loop {
            let (stream, addr) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of descriptors, most often: wait instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.clone().wait() => return,
            };
            let this = self.clone();
            let shutdown = shutdown.clone();
            self.connections.0.fetch_add(1, Ordering::Relaxed);
            let guard = ConnGuard(self.connections.clone());
            tokio::spawn(async move {
                let _guard = guard;
                if let Err(e) = this.connection(stream, addr, port, shutdown).await {
                    tracing::debug!(client = %addr, error = %e, "connection refused");
                }
            });
        }
    }

    async fn connection(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
        port: u16,
        shutdown: Shutdown,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let _ = stream.set_nodelay(true);
        let (client, stream) = if self.config.proxy_protocol {
            let (client, s) =
                proxy_protocol::accept(stream, self.config.header_read_timeout).await?;
            (client.unwrap_or(addr), s)
        } else {
            (addr, Prefixed::new(stream))
        };
        let peer = Peer::new(client, port, self.tls.is_some());
        let tracked = Tracked {
            inner: stream,
            activity: Activity::new(),
        };
        match &self.tls {
            Some(acceptor) => {
                let activity = tracked.activity.clone();
                let tls =
                    tokio::time::timeout(self.config.header_read_timeout, acceptor.accept(tracked))
                        .await
                        .map_err(|_| "TLS handshake timed out")??;
                Box::pin(self.serve(tls, peer, activity, shutdown)).await;
            }
            None => self.serve_plain(tracked, peer, shutdown).await,
        }
        Ok(())
    }

    /// Serves HTTP/1.1 or HTTP/2 on `io` with hyper's automatic choice, until it closes.
    pub(crate) async fn serve<S>(
        &self,
        io: S,
        peer: Peer,
        activity: Arc<Activity>,
        shutdown: Shutdown,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let client = peer.client;
        let waiting = Arc::new(AtomicUsize::new(0));
        let service = service(self.proxy.clone(), peer, waiting.clone());
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.header_read_timeout)
            .max_buf_size(self.config.max_header_bytes.max(8192))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(self.config.max_header_bytes as u32)
            .max_concurrent_streams(256)
            .keep_alive_interval(Some(Duration::from_secs(60)))
            .keep_alive_timeout(Duration::from_secs(20));
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        let idle = self.config.idle_timeout;
        let check = (idle / 4).max(Duration::from_millis(100));
        let mut closing = false;
        let mut settling = false;
        let settle = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(settle);
        let mut stop = std::pin::pin!(shutdown.wait());
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(client = %client, error = %e, "connection ended");
                    }
                    return;
                }
                _ = tokio::time::sleep(check) => {
                    if activity.quiet() >= idle && waiting.load(Ordering::Relaxed) == 0 && !closing {
                        tracing::debug!(client = %client, "idle connection closed");
                        return;
                    }
                }
                _ = &mut stop, if !closing => {
                    closing = true;
                    // A connection accepted just before the listener closed may not have had
                    // its request read yet, and a graceful shutdown closes a connection with
                    // none under way: it gets a moment to be read first.
                    settle.as_mut().reset(tokio::time::Instant::now() + SHUTDOWN_SETTLE);
                    settling = true;
                }
                _ = &mut settle, if settling => {
                    settling = false;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
