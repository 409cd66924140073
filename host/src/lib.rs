//! The `flynn-host` daemon and its CLI: an HTTP job API over pinkerton (images) and the
//! runtime (jobs), job records in an embedded database, re-adoption of running jobs after a
//! restart, log streaming, attach, events and host status. The wire types and the typed
//! client are in `host-api`; the HTTP plumbing in `flynn-http`.

pub mod bootstrap;
pub mod cli;
pub mod cluster;
pub mod db;
pub mod error;
pub mod events;
mod health;
pub mod host;
mod images;
pub mod log_stream;
pub mod pull_progress;
pub mod registration;
mod secret;
pub mod server;
mod status;
pub mod validate;
mod volumes;
pub mod watch;

pub use error::HostError;
pub use flynn_http::Endpoint;
pub use host::{Host, HostConfig};
