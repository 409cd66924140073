//! The `flynn-host` daemon and its client: an HTTP job API over pinkerton (images) and the
//! runtime (jobs), job records in an embedded database, re-adoption of running jobs after a
//! restart, log streaming, attach, events and host status; and the CLI that talks to it.

pub mod api;
pub mod cli;
pub mod client;
pub mod db;
pub mod endpoint;
pub mod error;
pub mod events;
pub mod host;
mod images;
pub mod logs;
mod secret;
pub mod server;
pub mod services;
mod status;
pub mod validate;
pub mod watch;

pub use endpoint::Endpoint;
pub use error::HostError;
pub use host::{Host, HostConfig};
