//! Routes, backends and router events as they travel between the controller, routers, the
//! scheduler and operators.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// A route: traffic for a domain and path (HTTP) or a port (TCP) goes to a discoverd service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Route {
    /// An HTTP route, matched on the request's host and path.
    Http(HttpRoute),
    /// A TCP route, matched on the port a connection arrives on.
    Tcp(TcpRoute),
}

impl Route {
    /// The route's id (unique in a route set).
    pub fn id(&self) -> &str {
        match self {
            Route::Http(r) => &r.id,
            Route::Tcp(r) => &r.id,
        }
    }

    /// The discoverd service its traffic goes to.
    pub fn service(&self) -> &str {
        match self {
            Route::Http(r) => &r.service,
            Route::Tcp(r) => &r.service,
        }
    }

    /// True when only the service's discoverd leader gets traffic.
    pub fn leader(&self) -> bool {
        match self {
            Route::Http(r) => r.leader,
            Route::Tcp(r) => r.leader,
        }
    }

    /// The same route with any certificate's private key left out (for APIs and events).
    pub fn redacted(&self) -> Route {
        let mut r = self.clone();
        if let Route::Http(h) = &mut r {
            if let Some(c) = &mut h.certificate {
                c.key.clear();
            }
        }
        r
    }

    /// True when a backend leaving discoverd is drained (its in-flight requests finish and
    /// `backend-drained` is reported) rather than dropped.
    pub fn drain_backends(&self) -> bool {
        match self {
            Route::Http(r) => r.drain_backends,
            Route::Tcp(r) => r.drain_backends,
        }
    }
}

fn root_path() -> String {
    "/".to_string()
}

/// An HTTP route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRoute {
    /// Unique id.
    pub id: String,
    /// What owns it (`controller/apps/<id>`), for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_ref: Option<String>,
    /// The discoverd service that serves it.
    pub service: String,
    /// The host it answers for: `example.com`, `*.example.com`, or `*` for every host no
    /// other route claims. Matched case-insensitively, the request's port ignored.
    pub domain: String,
    /// A path prefix ending in `/` (default `/`); the longest matching prefix wins.
    #[serde(default = "root_path")]
    pub path: String,
    /// Only the service's discoverd leader gets requests.
    #[serde(default)]
    pub leader: bool,
    /// Backends leaving discoverd are drained, and the router reports them drained.
    #[serde(default)]
    pub drain_backends: bool,
    /// Requests of one client go to one backend (an encrypted `_backend` cookie).
    #[serde(default)]
    pub sticky: bool,
    /// Every backend connection carries one request.
    #[serde(default)]
    pub disable_keep_alives: bool,
    /// Backends speak HTTP/2 without TLS (h2c), as gRPC servers do.
    #[serde(default)]
    pub http2: bool,
    /// The certificate served for this domain (SNI); the router's default otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
}

impl HttpRoute {
    /// A route for `domain` (path `/`) to `service`, all options off.
    pub fn new(
        id: impl Into<String>,
        domain: impl Into<String>,
        service: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            parent_ref: None,
            service: service.into(),
            domain: domain.into(),
            path: root_path(),
            leader: false,
            drain_backends: false,
            sticky: false,
            disable_keep_alives: false,
            http2: false,
            certificate: None,
        }
    }
}

/// A TLS certificate chain and its private key, PEM.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// The chain, leaf first (PEM).
    pub cert: String,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("cert", &format_args!("{} bytes", self.cert.len()))
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A TCP route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpRoute {
    /// Unique id.
    pub id: String,
    /// What owns it, for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_ref: Option<String>,
    /// The discoverd service that serves it.
    pub service: String,
    /// The port the router listens on for it.
    pub port: u16,
    /// Only the service's discoverd leader gets connections.
    #[serde(default)]
    pub leader: bool,
    /// Backends leaving discoverd are drained (open connections finish).
    #[serde(default)]
    pub drain_backends: bool,
    /// Each backend connection starts with a PROXY protocol v2 header naming the client.
    #[serde(default)]
    pub send_proxy_protocol: bool,
}

/// A routes file for a router running alone: `{"routes": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// Every route.
    pub routes: Vec<Route>,
}

/// A backend: one instance of a service, as the router sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    /// The discoverd service.
    pub service: String,
    /// Its address.
    pub addr: SocketAddr,
    /// The discoverd instance id (the job id, for jobs the host registers).
    pub id: String,
    /// Requests (or connections) in flight to it from this router.
    #[serde(default)]
    pub in_flight: u64,
}

macro_rules! event_kinds {
    ($($variant:ident => $wire:literal, $doc:literal;)*) => {
        /// What a router event reports.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum EventKind {
            $(#[doc = $doc] #[serde(rename = $wire)] $variant,)*
        }

        impl EventKind {
            /// Every kind.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),*];

            /// The wire name (`backend-up`, ...).
            pub fn as_str(self) -> &'static str {
                match self { $(EventKind::$variant => $wire,)* }
            }
        }

        impl FromStr for EventKind {
            type Err = UnknownEventKind;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok(EventKind::$variant),)*
                    _ => Err(UnknownEventKind(s.to_string())),
                }
            }
        }
    };
}

event_kinds! {
    Set => "set", "A route was added or changed.";
    Remove => "remove", "A route was removed.";
    BackendUp => "backend-up", "A backend of a routed service became reachable through this router.";
    BackendDown => "backend-down", "A backend left discoverd; it gets no new requests.";
    BackendDrained => "backend-drained", "A backend that went down has no request in flight left.";
}

/// An event kind that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEventKind(pub String);

impl fmt::Display for UnknownEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown router event type {:?}: expected set, remove, backend-up, backend-down or backend-drained",
            self.0
        )
    }
}

impl std::error::Error for UnknownEventKind {}

/// One router event (server-sent events on `GET /events`; `event:` names the kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Increases by one per event of this router process.
    pub seq: u64,
    /// When it happened.
    pub time: Timestamp,
    /// What happened.
    pub event: EventKind,
    /// The route, for `set` and `remove` (on `remove`, only its id is certain to be current).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// The backend, for `backend-*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
}

/// True for a route domain: a host name (labels of letters, digits, `-`, `_`), a `*.suffix`
/// wildcard, or `*` (the catch-all). Compare in lowercase.
pub fn valid_domain(d: &str) -> bool {
    if d == "*" {
        return true;
    }
    let name = d.strip_prefix("*.").unwrap_or(d);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// True for a route path prefix: starts and ends with `/`, no empty segment, no `?`, `#` or
/// space.
pub fn valid_path(p: &str) -> bool {
    p.starts_with('/') && p.ends_with('/') && !p.contains("//") && !p.contains(['?', '#', ' '])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_read_with_defaults_and_refuse_unknown_fields() {
        let r: Route = serde_json::from_str(
            r#"{"type":"http","id":"a","service":"web","domain":"example.test"}"#,
        )
        .unwrap();
        assert_eq!(r, Route::Http(HttpRoute::new("a", "example.test", "web")));
        let err = serde_json::from_str::<Route>(
            r#"{"type":"http","id":"a","service":"web","domain":"x","stikcy":true}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("stikcy"), "{err}");
        let t: Route =
            serde_json::from_str(r#"{"type":"tcp","id":"t","service":"db","port":3001}"#).unwrap();
        assert_eq!(t.service(), "db");
        // a route from a newer controller: its added fields are skipped, not refused
        let newer = r#"{"type":"http","id":"a","service":"web","domain":"example.test",
            "certificate":null,"rate_limit":{"rps":10}}"#;
        assert!(serde_json::from_str::<Route>(newer).is_err());
        let r: Route = flynn_http::json::from_str(newer).unwrap();
        assert_eq!(r, Route::Http(HttpRoute::new("a", "example.test", "web")));
    }

    #[test]
    fn event_kinds_have_one_wire_name() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), *k);
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert!("up".parse::<EventKind>().is_err());
    }

    #[test]
    fn certificate_keys_are_not_printed() {
        let c = Certificate {
            cert: "C".into(),
            key: "SECRET".into(),
        };
        assert!(!format!("{c:?}").contains("SECRET"));
    }
}
