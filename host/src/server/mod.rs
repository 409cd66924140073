//! The HTTP/1.1 API server: listeners on unix sockets and TCP, the bearer token for TCP, and
//! one hyper connection task per client. Requests are routed in [`routes`].

mod attach;
mod http;
mod routes;

pub use attach::PROTOCOL as ATTACH_PROTOCOL;
pub use routes::ROUTES;

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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::endpoint::Endpoint;
use crate::host::Host;

/// How the server treats its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a client may take to send a request's headers; the connection is closed then.
    pub header_timeout: Duration,
    /// Most connections served at once per listener; more wait to be accepted.
    pub max_connections: usize,
    /// Longest a client may take to send a request body (`408` then).
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// The API description served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// A listener that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding failed.
    #[error("cannot listen on {endpoint}: {source}")]
    Listen {
        /// The address.
        endpoint: String,
        /// The error.
        source: io::Error,
    },
    /// Another daemon answers on the socket.
    #[error("another daemon is listening on {0}; stop it first")]
    InUse(PathBuf),
    /// The token file could not be read or written.
    #[error("token file {path}: {source}")]
    Token {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Reads the API token from `STATE/token`, generating it (mode 0600) on first start.
pub fn load_or_create_token(state: &Path) -> Result<String, ServerError> {
    let path = state.join("token");
    crate::secret::load_or_create(&path).map_err(|source| ServerError::Token { path, source })
}

/// Serves the API on every endpoint until `shutdown` completes.
pub async fn serve(
    host: Host,
    endpoints: &[Endpoint],
    token: String,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let token = Arc::new(token);
    let mut tasks = Vec::new();
    for ep in endpoints {
        let listen_err = |source| ServerError::Listen {
            endpoint: ep.to_string(),
            source,
        };
        match ep {
            Endpoint::Unix(path) => {
                let l = bind_unix(path).map_err(|e| match e {
                    BindError::InUse => ServerError::InUse(path.clone()),
                    BindError::Io(e) => listen_err(e),
                })?;
                let (host, token) = (host.clone(), token.clone());
                let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
                tasks.push(tokio::spawn(async move {
                    loop {
                        let Ok(slot) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let Ok((s, _)) = l.accept().await else { return };
                        spawn_conn(s, host.clone(), token.clone(), false, limits, slot);
                    }
                }));
            }
            Endpoint::Tcp(addr) => {
                let l = TcpListener::bind(addr).await.map_err(listen_err)?;
                let (host, token) = (host.clone(), token.clone());
                let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
                tasks.push(tokio::spawn(async move {
                    loop {
                        let Ok(slot) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let Ok((s, _)) = l.accept().await else { return };
                        let _ = s.set_nodelay(true);
                        spawn_conn(s, host.clone(), token.clone(), true, limits, slot);
                    }
                }));
            }
        }
        tracing::info!(endpoint = %ep, "listening");
    }
    shutdown.await;
    for t in tasks {
        t.abort();
    }
    for ep in endpoints {
        if let Endpoint::Unix(p) = ep {
            let _ = std::fs::remove_file(p);
        }
    }
    Ok(())
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
        // A socket left by a daemon that died.
        std::fs::remove_file(path).map_err(BindError::Io)?;
    }
    let l = UnixListener::bind(path).map_err(BindError::Io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(BindError::Io)?;
    Ok(l)
}

fn spawn_conn<S>(
    stream: S,
    host: Host,
    token: Arc<String>,
    needs_token: bool,
    limits: Limits,
    slot: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _slot = slot;
        let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(http::BodyTimeout(limits.body_timeout));
            let (host, token) = (host.clone(), token.clone());
            async move {
                Ok::<_, Infallible>(routes::handle(host, req, needs_token.then_some(&*token)).await)
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades();
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.push((method.clone(), path.clone()));
            }
        }
        let mut served: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
    }
}
