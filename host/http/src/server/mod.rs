//! The server side: listeners on unix sockets and TCP, an optional bearer token for TCP
//! clients, limits on slow or many clients and on bodies, one hyper connection task per
//! client, HTTP upgrades, and graceful shutdown. Requests go to a [`Router`].

pub mod keys;
mod request;
mod response;
mod router;

pub use request::{bearer, read_json, secret_eq, wants_sse, Query};
pub use response::{
    bytes_response, json, ndjson, ndjson_line, no_content, sse, stream_response,
    switching_protocols, ApiError, Body,
};
pub use router::{Params, RouteList, Router};

use std::convert::Infallible;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::endpoint::Endpoint;
use crate::error::ErrorCode;

/// How the server treats its clients. Handlers read it from the request's extensions
/// ([`read_json`] does).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a client may take to send a request's headers; the connection is closed then.
    pub header_timeout: Duration,
    /// Most connections served at once per listener; more wait to be accepted.
    pub max_connections: usize,
    /// Longest a client may take to send a request body (`408` then).
    pub body_timeout: Duration,
    /// Largest request body accepted (`413` above).
    pub max_body: usize,
    /// Longest shutdown waits for requests in flight before it drops them.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            body_timeout: Duration::from_secs(30),
            max_body: 1 << 20,
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// A listener that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding failed.
    #[error("cannot listen on {endpoint}")]
    Listen {
        /// The address.
        endpoint: Endpoint,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Another server answers on the socket.
    #[error("another server is listening on {0}; stop it first")]
    InUse(PathBuf),
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// A unix socket (removed when the server stops); no token is asked here.
    Unix(UnixListener, PathBuf),
    /// A TCP socket; the server's token, if it has one, is asked here.
    Tcp(TcpListener),
}

impl Listener {
    /// Binds `endpoint`. A unix socket's directory is created and the socket made mode
    /// 0660; a socket left by a server that died is replaced, a live one is refused.
    pub async fn bind(endpoint: &Endpoint) -> Result<Self, ServerError> {
        let listen_err = |source| ServerError::Listen {
            endpoint: endpoint.clone(),
            source,
        };
        match endpoint {
            Endpoint::Unix(path) => bind_unix(path)
                .map(|l| Listener::Unix(l, path.clone()))
                .map_err(|e| match e {
                    BindError::InUse => ServerError::InUse(path.clone()),
                    BindError::Io(e) => listen_err(e),
                }),
            Endpoint::Tcp(addr) => TcpListener::bind(addr)
                .await
                .map(Listener::Tcp)
                .map_err(listen_err),
        }
    }

    /// Binds TCP `addr` with `SO_REUSEPORT`: other processes of the same user may bind it
    /// too, and the kernel spreads new connections among them, so that a service's successor
    /// takes its port over while it still serves.
    pub fn bind_shared(addr: std::net::SocketAddr) -> Result<Self, ServerError> {
        let bind = || -> io::Result<TcpListener> {
            let socket = match addr {
                std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }?;
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket.bind(addr)?;
            socket.listen(1024)
        };
        bind()
            .map(Listener::Tcp)
            .map_err(|source| ServerError::Listen {
                endpoint: Endpoint::Tcp(addr),
                source,
            })
    }

    /// Where it listens (a TCP port 0 resolved to the port bound).
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Listener::Unix(_, p) => Endpoint::Unix(p.clone()),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => Endpoint::Tcp(a),
                Err(_) => Endpoint::Tcp(([0, 0, 0, 0], 0).into()),
            },
        }
    }
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

enum BindError {
    InUse,
    Io(io::Error),
}

fn bind_unix(path: &Path) -> Result<UnixListener, BindError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(BindError::Io)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(BindError::InUse);
        }
        // A socket left by a server that died.
        std::fs::remove_file(path).map_err(BindError::Io)?;
    }
    let l = UnixListener::bind(path).map_err(BindError::Io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(BindError::Io)?;
    Ok(l)
}

/// A server: a router, the state its handlers get, limits and an optional TCP token.
#[derive(Debug)]
pub struct Server<S> {
    router: Arc<Router<S>>,
    state: S,
    limits: Limits,
    token: Option<Arc<Token>>,
}

#[derive(Debug)]
struct Token {
    secret: String,
    hint: String,
}

impl<S: Clone + Send + Sync + 'static> Server<S> {
    /// A server answering with `router`, its handlers given clones of `state`.
    pub fn new(router: Router<S>, state: S) -> Self {
        Self {
            router: Arc::new(router),
            state,
            limits: Limits::default(),
            token: None,
        }
    }

    /// The same server with these limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The same server asking TCP clients for `Authorization: Bearer TOKEN`; a request
    /// without it gets 401 with `hint` (where the token is found) in its message.
    pub fn tcp_token(mut self, token: impl Into<String>, hint: impl Into<String>) -> Self {
        self.token = Some(Arc::new(Token {
            secret: token.into(),
            hint: hint.into(),
        }));
        self
    }

    /// Serves every listener until `shutdown` completes, then stops accepting, lets
    /// requests in flight finish (up to the shutdown grace) and removes unix sockets.
    pub async fn serve(self, listeners: Vec<Listener>, shutdown: impl std::future::Future) {
        // Connections hold a sender of `live` and watch `stop`: shutdown tells them to finish
        // and waits for the last sender to go.
        let (stop_tx, stop) = watch::channel(false);
        let (live_tx, mut live) = mpsc::channel::<()>(1);
        let mut tasks = Vec::new();
        let mut sockets = Vec::new();
        for l in listeners {
            tracing::info!(endpoint = %l.endpoint(), "listening");
            let slots = Arc::new(Semaphore::new(self.limits.max_connections.max(1)));
            let conn = Conn {
                router: self.router.clone(),
                state: self.state.clone(),
                limits: self.limits,
                token: None,
                stop: stop.clone(),
                live: live_tx.clone(),
            };
            tasks.push(match l {
                Listener::Unix(l, path) => {
                    sockets.push(path);
                    tokio::spawn(async move {
                        loop {
                            let Ok(slot) = slots.clone().acquire_owned().await else {
                                return;
                            };
                            let Ok((s, _)) = l.accept().await else { return };
                            conn.clone().spawn(s, slot);
                        }
                    })
                }
                Listener::Tcp(l) => {
                    let conn = Conn {
                        token: self.token.clone(),
                        ..conn
                    };
                    tokio::spawn(async move {
                        loop {
                            let Ok(slot) = slots.clone().acquire_owned().await else {
                                return;
                            };
                            let Ok((s, _)) = l.accept().await else { return };
                            let _ = s.set_nodelay(true);
                            conn.clone().spawn(s, slot);
                        }
                    })
                }
            });
        }
        shutdown.await;
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        for p in sockets {
            let _ = std::fs::remove_file(p);
        }
        drop(live_tx);
        let _ = stop_tx.send(true);
        if tokio::time::timeout(self.limits.shutdown_grace, live.recv())
            .await
            .is_err()
        {
            tracing::info!("shutdown: dropped requests still in flight");
        }
    }
}

/// What each connection task needs.
struct Conn<S> {
    router: Arc<Router<S>>,
    state: S,
    limits: Limits,
    token: Option<Arc<Token>>,
    stop: watch::Receiver<bool>,
    live: mpsc::Sender<()>,
}

impl<S: Clone> Clone for Conn<S> {
    fn clone(&self) -> Self {
        Self {
            router: self.router.clone(),
            state: self.state.clone(),
            limits: self.limits,
            token: self.token.clone(),
            stop: self.stop.clone(),
            live: self.live.clone(),
        }
    }
}

impl<S: Clone + Send + Sync + 'static> Conn<S> {
    fn spawn<IO>(self, stream: IO, slot: OwnedSemaphorePermit)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            router,
            state,
            limits,
            token,
            mut stop,
            live,
        } = self;
        let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(limits);
            let (router, state, token) = (router.clone(), state.clone(), token.clone());
            let span =
                tracing::debug_span!("request", method = %req.method(), path = %req.uri().path());
            async move {
                if let Some(t) = &token {
                    if !bearer(&req).is_some_and(|given| secret_eq(given, &t.secret)) {
                        let message = format!("missing or wrong bearer token; {}", t.hint);
                        return Ok::<_, Infallible>(
                            ApiError::new(ErrorCode::Unauthorized, message).response(),
                        );
                    }
                }
                let resp = router.handle(state, req).await;
                tracing::debug!(status = resp.status().as_u16(), "answered");
                Ok(resp)
            }
            .instrument(span)
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades();
        tokio::spawn(async move {
            let (_slot, _live) = (slot, live);
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { let _ = stop.wait_for(|s| *s).await.is_ok(); } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}
