//! discoverd: service discovery for the platform. Services register instances with a TTL kept
//! by heartbeats; clients list them, watch them (server-sent events: the current state, then
//! up/down/update/leader), follow each service's leader (its oldest live instance), and
//! resolve them through DNS (`NAME.discoverd`). Registrations live in a [`store::Store`]: the
//! embedded one for a single host. Writes need a key ([`auth`]); reads are open.

pub mod auth;
pub mod client;
pub mod dns;
pub mod embedded;
pub mod etcd;
pub mod http;
pub mod model;
pub mod registry;
pub mod store;

pub use client::Client;
pub use model::{Event, EventKind, Instance, Registration, ServiceMeta};
pub use registry::Registry;
