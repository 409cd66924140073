//! What discoverd stores and tells: instances of services, and the events of a watch.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use flynn_http::{Proto, Timestamp};
use serde::{Deserialize, Serialize};

/// One registered instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The instance id, unique within its service.
    pub id: String,
    /// The service name.
    pub service: String,
    /// Where it serves.
    pub addr: SocketAddr,
    /// The protocol it serves.
    pub proto: Proto,
    /// Free-form metadata.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// Registration order across all services: the lowest live index of a service leads.
    pub index: u64,
    /// When it first registered.
    pub registered_at: Timestamp,
}

/// `PUT /services/{service}/instances/{id}`: register or heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Where it serves (`IP:PORT`).
    pub addr: SocketAddr,
    /// The protocol it serves (default `tcp`).
    #[serde(default)]
    pub proto: Proto,
    /// Metadata; a change is announced as an `update`.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

/// What an [`Event`] says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An instance appeared (and, at the start of a watch, each existing one).
    Up,
    /// An instance's metadata or address changed.
    Update,
    /// An instance deregistered or expired.
    Down,
    /// The service's leader changed (`instance` is the new leader, absent when none is left).
    Leader,
    /// The service's metadata was set (`meta`).
    ServiceMeta,
    /// The end of the current state at the start of a watch.
    Current,
}

impl EventKind {
    /// The wire name, also the SSE `event:` field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Up => "up",
            EventKind::Update => "update",
            EventKind::Down => "down",
            EventKind::Leader => "leader",
            EventKind::ServiceMeta => "service_meta",
            EventKind::Current => "current",
        }
    }
}

/// A service's metadata: any JSON, versioned for compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceMeta {
    /// The service.
    pub service: String,
    /// The data.
    pub data: serde_json::Value,
    /// Its version: changes with every write.
    pub index: u64,
}

/// `PUT /services/{service}/meta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetMeta {
    /// The new data.
    pub data: serde_json::Value,
    /// Write only if the current version is this (0: only if there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
}

/// One message of a watch (server-sent events; `event:` and the `kind` field name it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// An instance appeared (and, at the start of a watch, each existing one).
    Up {
        /// The service.
        service: String,
        /// The instance.
        instance: Instance,
    },
    /// An instance's metadata or address changed.
    Update {
        /// The service.
        service: String,
        /// The instance as it is now.
        instance: Instance,
    },
    /// An instance deregistered or expired.
    Down {
        /// The service.
        service: String,
        /// The instance as it was.
        instance: Instance,
    },
    /// The service's leader changed.
    Leader {
        /// The service.
        service: String,
        /// The new leader; absent when no instance is left.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<Instance>,
    },
    /// The service's metadata was set.
    ServiceMeta {
        /// The service.
        service: String,
        /// The metadata.
        meta: ServiceMeta,
    },
    /// The end of the current state at the start of a watch.
    Current {
        /// The service watched (empty for a watch of all services).
        service: String,
    },
}

impl Event {
    /// What happened.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Up { .. } => EventKind::Up,
            Event::Update { .. } => EventKind::Update,
            Event::Down { .. } => EventKind::Down,
            Event::Leader { .. } => EventKind::Leader,
            Event::ServiceMeta { .. } => EventKind::ServiceMeta,
            Event::Current { .. } => EventKind::Current,
        }
    }

    /// The service it is about.
    pub fn service(&self) -> &str {
        match self {
            Event::Up { service, .. }
            | Event::Update { service, .. }
            | Event::Down { service, .. }
            | Event::Leader { service, .. }
            | Event::ServiceMeta { service, .. }
            | Event::Current { service } => service,
        }
    }

    /// The instance it is about, if any.
    pub fn instance(&self) -> Option<&Instance> {
        match self {
            Event::Up { instance, .. }
            | Event::Update { instance, .. }
            | Event::Down { instance, .. } => Some(instance),
            Event::Leader { instance, .. } => instance.as_ref(),
            Event::ServiceMeta { .. } | Event::Current { .. } => None,
        }
    }

    /// The metadata, for `service_meta` events.
    pub fn meta(&self) -> Option<&ServiceMeta> {
        match self {
            Event::ServiceMeta { meta, .. } => Some(meta),
            _ => None,
        }
    }
}

/// True for names usable as service names and instance ids: 1-63 of `[a-z0-9-]` for
/// services (they become DNS labels), and `[A-Za-z0-9_.:-]` up to 128 for instance ids.
pub fn valid_service(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s != "leader"
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// See [`valid_service`].
pub fn valid_instance_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

flynn_http::checked_name!(
    /// A service name: 1-63 of `[a-z0-9-]`, not starting or ending with `-`, not `leader`
    /// (it becomes a DNS label, `NAME.discoverd`).
    ServiceName,
    ServiceNameError,
    valid_service,
    "service name",
    "use 1-63 of a-z, 0-9 and '-' (not \"leader\")"
);
