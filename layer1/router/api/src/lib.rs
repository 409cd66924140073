//! The router's API: the wire types of routes (HTTP and TCP), backends and router events
//! (serde only), and with the `client` feature the typed [`client::Client`] of the router's
//! API (`router-api` in discoverd).

mod route;

#[cfg(feature = "client")]
pub mod client;

pub use flynn_http::{Endpoint, ErrorBody, ErrorCode, Timestamp};
pub use route::{
    valid_domain, valid_path, Backend, Certificate, Event, EventKind, HttpRoute, Route, RouteFile,
    TcpRoute, UnknownEventKind,
};
