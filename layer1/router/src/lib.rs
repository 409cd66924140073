//! The router: the platform's HTTP and TCP edge.
//!
//! Requests arrive on HTTP and HTTPS listeners ([`server`]), are matched against an
//! immutable route table swapped atomically on every change ([`table`]), and go to a backend
//! of the route's discoverd service ([`backends`]) over pooled connections ([`pool`]) by the
//! [`proxy`]; TCP routes are plain byte tunnels ([`tcp`]). Routes come from a
//! [`source::RouteSource`]; certificates are chosen by SNI ([`tls`]). The router reports
//! what it does as [`events`], [`metrics`] and an [`access_log`], and serves them on its
//! [`api`]. [`router::Router`] starts it all.

pub mod access_log;
pub mod api;
pub mod backends;
pub mod body;
pub mod cli;
mod clock;
pub mod events;
mod fast;
pub mod headers;
pub mod listen;
pub mod metrics;
pub mod park;
pub mod pool;
pub mod proxy;
pub mod proxy_protocol;
pub mod router;
pub mod server;
pub mod source;
pub mod sticky;
pub mod table;
pub mod tcp;
pub mod tls;

pub use backends::Discovery;
pub use events::Events;
pub use router::{Addrs, Router, Settings, StartError};
pub use source::{ControllerSource, FileSource, RouteSource, Update};
