//! discoverd: service discovery for the platform. Services register instances with a TTL kept
//! by heartbeats; clients list them, watch them (server-sent events: the current state, then
//! up/down/update/leader), follow each service's leader (its oldest live instance), and
//! resolve them through DNS (`NAME.discoverd`). Registrations live in a [`store::Store`]: the
//! embedded one for a single host, or etcd for a cluster. The wire types and the client are in
//! `discoverd-api`. Writes need a key ([`auth`]); reads are open.

pub mod auth;
pub mod dns;
pub mod embedded;
pub mod etcd;
pub mod http;
pub mod registry;
pub mod store;

pub use discoverd_api::client::{Client, Heartbeat};
pub use discoverd_api::{Event, EventKind, Instance, Registration, ServiceMeta};
pub use registry::Registry;
