//! The HTTP layer every platform service shares.
//!
//! Always present (serde only, for wire crates): the error body every service answers with
//! ([`ErrorBody`], [`ErrorCode`]), the one timestamp type ([`Timestamp`]), service addresses
//! ([`Endpoint`]), transport protocols ([`Proto`]), the server-sent events format ([`sse`]) and
//! enums of wire names a newer peer may add to ([`wire_enum!`]).
//!
//! With the `server` feature: listeners on unix sockets and TCP with bearer tokens, limits
//! and graceful shutdown ([`server`]), a typed router, JSON/NDJSON/SSE responses, and the
//! [`service`] lifecycle a binary's `main` runs. With `client`: one hyper client ([`client`])
//! with typed errors, NDJSON and SSE readers and upgrades.

pub mod endpoint;
pub mod error;
pub mod json;
pub mod name;
pub mod proto;
pub mod sse;
pub mod time;
pub mod wire_enum;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod service;
#[cfg(feature = "tls")]
pub mod tls;

pub use endpoint::{Endpoint, EndpointError};
pub use error::{ErrorBody, ErrorCode};
pub use proto::Proto;
pub use time::Timestamp;

/// Percent-encodes a path segment or query value (everything but `A-Za-z0-9`).
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
