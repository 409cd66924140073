//! The host's HTTP edge on `flynn-http`: the routes ([`routes`]), attach's upgrade, the API
//! token, and serving them on the daemon's listeners.

mod attach;
mod routes;

pub use host_api::ATTACH_PROTOCOL;
pub use routes::router;

use std::io;
use std::path::{Path, PathBuf};

use flynn_http::server::{Limits, Listener, Server, ServerError};
use flynn_http::Endpoint;

use crate::host::Host;

/// The API description served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// The API token file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("token file {path}")]
pub struct TokenError {
    /// The file it concerns.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

/// Reads the API token from `STATE/token`, generating it (mode 0600) on first start.
pub fn load_or_create_token(state: &Path) -> Result<String, TokenError> {
    let path = state.join("token");
    crate::secret::load_or_create(&path).map_err(|source| TokenError { path, source })
}

/// Serves the API on every endpoint until `shutdown` completes; TCP clients need `token`.
pub async fn serve(
    host: Host,
    endpoints: &[Endpoint],
    token: String,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let mut listeners = Vec::new();
    for ep in endpoints {
        listeners.push(Listener::bind(ep).await?);
    }
    Server::new(router(), host)
        .limits(limits)
        .tcp_token(token, "it is in the state directory's token file")
        .serve(listeners, shutdown)
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        assert_eq!(router().openapi_mismatch(OPENAPI), (vec![], vec![]));
    }
}
