//! discoverd's API: the wire types of registrations, instances, service metadata and watch
//! events (serde only), and with the `client` feature the typed [`client::Client`] that
//! services use to register with heartbeats, look up, and watch.

mod model;

#[cfg(feature = "client")]
pub mod client;

pub use flynn_http::{Endpoint, ErrorBody, ErrorCode, Proto, Timestamp};
pub use model::{
    valid_instance_id, valid_service, Event, EventKind, Instance, Registration, ServiceMeta,
    ServiceName, ServiceNameError, SetMeta,
};

/// Default and largest instance TTLs, in seconds.
pub const DEFAULT_TTL: u64 = 10;
/// The largest instance TTL accepted, in seconds.
pub const MAX_TTL: u64 = 3600;
