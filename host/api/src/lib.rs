//! The host API: the wire types of every request and answer (serde only), shared by the
//! daemon, its CLI and every service that talks to hosts, and with the `client` feature the
//! typed [`client::Client`]. `openapi.json` in `flynn-host` describes the same shapes; a test
//! keeps the two in step.

mod cluster;
mod event;
mod image;
mod job;
mod query;
mod status;

#[cfg(feature = "client")]
pub mod client;

pub use cluster::{ClusterInfo, ClusterJoin};
pub use discoverd_api::ServiceName;
pub use event::{Event, EventFilter, EventKind, EventPayload, ImageAction, JobAction};
pub use flynn_http::{Endpoint, ErrorBody, ErrorCode, Proto, Timestamp};
pub use image::{CreateVolume, Image, PullMessage, PullRequest, Volume};
pub use job::{CheckTiming, CreateJob, HttpCheck, Job, JobState, RestartPolicy, SignalRequest};
pub use query::{JobFilter, LogOptions};
pub use runtime_api::attach;
pub use runtime_api::{
    BindMount, ExitStatus, JobConfig, JobId, JobIdError, LogLine, NetworkMode, PortMap, Resources,
    Stream, VolumeMount,
};
pub use status::{is_draining, Capacity, HostStatus, DRAINING_META, HOST_SERVICE};

/// Where the daemon listens and the CLI looks when nothing else is said.
pub const DEFAULT_SOCKET: &str = "/run/flynn/host.sock";

/// The daemon's default endpoint: [`DEFAULT_SOCKET`].
pub fn default_endpoint() -> Endpoint {
    Endpoint::Unix(DEFAULT_SOCKET.into())
}

/// The attach protocol's name in `Upgrade` headers.
pub const ATTACH_PROTOCOL: &str = runtime_api::attach::PROTOCOL;
