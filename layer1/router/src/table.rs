//! The route table: every route, validated and compiled for lookups, as one immutable
//! snapshot. A new set of routes builds a new table (or fails as a whole, naming every bad
//! route); the proxy swaps it in atomically, and requests already matched keep theirs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::Arc;

use router_api::{HttpRoute, Route, TcpRoute};
use rustls::sign::CertifiedKey;

use crate::backends::{Discovery, Service};
use crate::metrics::{Counter, Metrics};
use crate::tls::{self, CertError};

/// Why a set of routes cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Two routes share an id.
    #[error("route id {0:?} is used twice: route ids must be unique")]
    DuplicateId(String),
    /// A route id is empty or too long.
    #[error("route id {0:?} is not valid: use 1-200 printable characters")]
    BadId(String),
    /// Two HTTP routes claim the same domain and path.
    #[error(
        "routes {first:?} and {second:?} both claim domain {domain:?} path {path:?}: remove one"
    )]
    DuplicateDomainPath {
        /// The route seen first.
        first: String,
        /// The route seen second.
        second: String,
        /// The domain.
        domain: String,
        /// The path.
        path: String,
    },
    /// A domain is not a host name, `*.suffix` or `*`.
    #[error("route {route:?}: domain {domain:?} is not a host name, a `*.suffix` wildcard or `*`")]
    BadDomain {
        /// The route.
        route: String,
        /// The domain.
        domain: String,
    },
    /// A path does not start and end with `/`.
    #[error("route {route:?}: path {path:?} must start and end with `/` (e.g. `/api/`)")]
    BadPath {
        /// The route.
        route: String,
        /// The path.
        path: String,
    },
    /// A service name is not a discoverd service name.
    #[error("route {route:?}: service {service:?} is not a service name (1-63 of a-z, 0-9, -)")]
    BadService {
        /// The route.
        route: String,
        /// The service.
        service: String,
    },
    /// Two TCP routes claim one port.
    #[error("routes {first:?} and {second:?} both claim TCP port {port}: remove one")]
    PortTaken {
        /// The route seen first.
        first: String,
        /// The route seen second.
        second: String,
        /// The port.
        port: u16,
    },
    /// A TCP port outside the router's TCP range or one of its own listeners' ports.
    #[error("route {route:?}: TCP port {port} is reserved (the router's own listeners) or outside the TCP route range {start}-{end}")]
    PortReserved {
        /// The route.
        route: String,
        /// The port.
        port: u16,
        /// The range's first port.
        start: u16,
        /// The range's last port.
        end: u16,
    },
    /// A certificate that cannot be served.
    #[error("route {route:?}: {source}")]
    Certificate {
        /// The route.
        route: String,
        /// What is wrong with it.
        #[source]
        source: CertError,
    },
    /// Two routes for one domain with different certificates.
    #[error("routes {first:?} and {second:?} give domain {domain:?} different certificates: give both the same one")]
    CertificateConflict {
        /// The route seen first.
        first: String,
        /// The route seen second.
        second: String,
        /// The domain.
        domain: String,
    },
}

/// A set of routes the table refused, with every reason.
#[derive(Debug, thiserror::Error)]
#[error("{} bad route(s): {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct RoutesRefused(pub Vec<RouteError>);

/// What the table may use: the TCP route range and the ports the router listens on itself.
#[derive(Debug, Clone)]
pub struct TableLimits {
    /// Ports TCP routes may take.
    pub tcp_range: RangeInclusive<u16>,
    /// Ports TCP routes may never take (the HTTP, HTTPS and API listeners).
    pub reserved: HashSet<u16>,
}

/// One HTTP route, compiled.
#[derive(Debug)]
pub struct HttpEntry {
    /// The route as configured.
    pub route: HttpRoute,
    /// Its backends.
    pub service: Arc<Service>,
    /// Its request counters by status, looked up once each.
    counters: std::sync::Mutex<Vec<(u16, Counter)>>,
}

impl HttpEntry {
    /// Counts one answer with `status`.
    pub fn count(&self, metrics: &Metrics, status: u16) {
        let mut counters = self.counters.lock().expect("counters lock");
        match counters.iter().find(|(s, _)| *s == status) {
            Some((_, c)) => {
                c.inc();
            }
            None => {
                let c = metrics.counter(&self.route.id, status);
                c.inc();
                counters.push((status, c));
            }
        }
    }
}

/// One TCP route, compiled.
#[derive(Debug)]
pub struct TcpEntry {
    /// The route as configured.
    pub route: TcpRoute,
    /// Its backends.
    pub service: Arc<Service>,
}

/// The routes of one domain key, longest path first.
#[derive(Debug, Default)]
struct Paths(Vec<Arc<HttpEntry>>);

impl Paths {
    fn find(&self, path: &str) -> Option<&Arc<HttpEntry>> {
        self.0.iter().find(|e| path_matches(&e.route.path, path))
    }
}

/// True when `path` is under the route prefix `prefix` (which ends in `/`): `/api/` takes
/// `/api`, `/api/`, `/api/x` and `/api?q`, never `/apix`.
fn path_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    if let Some(rest) = path.strip_prefix(&prefix[..prefix.len() - 1]) {
        rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')
    } else {
        false
    }
}

/// An immutable snapshot of every route.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: BTreeMap<String, Route>,
    /// Exact domains and `*.suffix` wildcards (keys as written, lower case).
    domains: HashMap<String, Paths>,
    catch_all: Option<Paths>,
    tcp: BTreeMap<u16, Arc<TcpEntry>>,
    certs: HashMap<String, Arc<CertifiedKey>>,
    wildcard_depth: usize,
}

/// Lower-cases `host` and strips a port (`Example.COM:8080` → `example.com`; IPv6
/// literals keep their brackets).
pub fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = if host.starts_with('[') {
        match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(i) => &host[..i],
            None => host,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

impl RouteTable {
    /// Validates `routes` and compiles them, resolving each service in `discovery`. Either
    /// every route is good and a table comes back, or nothing changes and every problem is
    /// named.
    pub fn build(
        routes: Vec<Route>,
        limits: &TableLimits,
        discovery: &Discovery,
    ) -> Result<Self, RoutesRefused> {
        let mut errors = Vec::new();
        let mut table = RouteTable::default();
        let mut owners: HashMap<(String, String), String> = HashMap::new();
        let mut cert_owner: HashMap<String, (String, String)> = HashMap::new();
        for route in routes {
            let id = route.id().to_string();
            if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
                errors.push(RouteError::BadId(id));
                continue;
            }
            if table.routes.contains_key(&id) {
                errors.push(RouteError::DuplicateId(id));
                continue;
            }
            if !discoverd_api::valid_service(route.service()) {
                errors.push(RouteError::BadService {
                    route: id,
                    service: route.service().to_string(),
                });
                continue;
            }
            match &route {
                Route::Http(r) => {
                    let domain = r.domain.to_ascii_lowercase();
                    if !router_api::valid_domain(&domain) {
                        errors.push(RouteError::BadDomain {
                            route: id,
                            domain: r.domain.clone(),
                        });
                        continue;
                    }
                    if !router_api::valid_path(&r.path) {
                        errors.push(RouteError::BadPath {
                            route: id,
                            path: r.path.clone(),
                        });
                        continue;
                    }
                    let key = (domain.clone(), r.path.clone());
                    if let Some(first) = owners.get(&key) {
                        errors.push(RouteError::DuplicateDomainPath {
                            first: first.clone(),
                            second: id,
                            domain: r.domain.clone(),
                            path: r.path.clone(),
                        });
                        continue;
                    }
                    if let Some(cert) = &r.certificate {
                        let fingerprint = format!("{}\0{}", cert.cert, cert.key);
                        if let Some((first, seen)) = cert_owner.get(&domain) {
                            if *seen != fingerprint {
                                errors.push(RouteError::CertificateConflict {
                                    first: first.clone(),
                                    second: id,
                                    domain: r.domain.clone(),
                                });
                                continue;
                            }
                        } else {
                            match tls::certified_key(cert) {
                                Ok(key) => {
                                    table.certs.insert(domain.clone(), Arc::new(key));
                                    cert_owner.insert(domain.clone(), (id.clone(), fingerprint));
                                }
                                Err(source) => {
                                    errors.push(RouteError::Certificate { route: id, source });
                                    continue;
                                }
                            }
                        }
                    }
                    owners.insert(key, id.clone());
                    let mut compiled = r.clone();
                    compiled.domain = domain.clone();
                    let entry = Arc::new(HttpEntry {
                        service: discovery.service(&r.service),
                        route: compiled,
                        counters: Default::default(),
                    });
                    let paths = if domain == "*" {
                        table.catch_all.get_or_insert_with(Paths::default)
                    } else {
                        if domain.starts_with("*.") {
                            table.wildcard_depth =
                                table.wildcard_depth.max(domain.matches('.').count());
                        }
                        table.domains.entry(domain).or_default()
                    };
                    paths.0.push(entry);
                }
                Route::Tcp(r) => {
                    if !limits.tcp_range.contains(&r.port) || limits.reserved.contains(&r.port) {
                        errors.push(RouteError::PortReserved {
                            route: id,
                            port: r.port,
                            start: *limits.tcp_range.start(),
                            end: *limits.tcp_range.end(),
                        });
                        continue;
                    }
                    if let Some(first) = table.tcp.get(&r.port) {
                        errors.push(RouteError::PortTaken {
                            first: first.route.id.clone(),
                            second: id,
                            port: r.port,
                        });
                        continue;
                    }
                    let entry = Arc::new(TcpEntry {
                        service: discovery.service(&r.service),
                        route: r.clone(),
                    });
                    table.tcp.insert(r.port, entry);
                }
            }
            table.routes.insert(id, route);
        }
        if !errors.is_empty() {
            return Err(RoutesRefused(errors));
        }
        for paths in table.domains.values_mut().chain(table.catch_all.as_mut()) {
            paths
                .0
                .sort_by_key(|e| std::cmp::Reverse(e.route.path.len()));
        }
        Ok(table)
    }

    /// The routes of a (normalized) host: exact, then `*.suffix` wildcards from the most
    /// specific, then the catch-all.
    fn domain_paths(&self, host: &str) -> Option<&Paths> {
        if let Some(p) = self.domains.get(host) {
            return Some(p);
        }
        if self.wildcard_depth > 0 {
            let mut key = String::with_capacity(host.len() + 1);
            for (i, _) in host.match_indices('.') {
                let suffix = &host[i..];
                if suffix.matches('.').count() > self.wildcard_depth {
                    continue;
                }
                key.clear();
                key.push('*');
                key.push_str(suffix);
                if let Some(p) = self.domains.get(&key) {
                    return Some(p);
                }
            }
        }
        self.catch_all.as_ref()
    }

    /// The HTTP route for a request to `host` (a `Host` header or `:authority`, any case,
    /// with or without a port) and `path`.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Arc<HttpEntry>> {
        let host = normalize_host(host);
        self.domain_paths(&host)?.find(path)
    }

    /// The certificate for a TLS server name: its domain's, then a wildcard's.
    pub fn certificate(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let host = normalize_host(server_name);
        if let Some(c) = self.certs.get(host.as_ref()) {
            return Some(c.clone());
        }
        for (i, _) in host.match_indices('.') {
            if let Some(c) = self.certs.get(&format!("*{}", &host[i..])) {
                return Some(c.clone());
            }
        }
        None
    }

    /// The TCP route on `port`.
    pub fn tcp(&self, port: u16) -> Option<&Arc<TcpEntry>> {
        self.tcp.get(&port)
    }

    /// The ports of every TCP route.
    pub fn tcp_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.tcp.keys().copied()
    }

    /// Every route, by id.
    pub fn routes(&self) -> &BTreeMap<String, Route> {
        &self.routes
    }

    /// The services some route sends traffic to.
    pub fn services(&self) -> HashSet<&str> {
        self.routes.values().map(|r| r.service()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> TableLimits {
        TableLimits {
            tcp_range: 3000..=3500,
            reserved: [3100].into_iter().collect(),
        }
    }

    fn http(id: &str, domain: &str, path: &str) -> Route {
        let mut r = HttpRoute::new(id, domain, "web");
        r.path = path.to_string();
        Route::Http(r)
    }

    fn tcp(id: &str, port: u16) -> Route {
        Route::Tcp(TcpRoute {
            id: id.into(),
            parent_ref: None,
            service: "db".into(),
            port,
            leader: false,
            drain_backends: false,
            send_proxy_protocol: false,
        })
    }

    fn build(routes: Vec<Route>) -> Result<RouteTable, RoutesRefused> {
        RouteTable::build(routes, &limits(), &Discovery::detached())
    }

    fn id(t: &RouteTable, host: &str, path: &str) -> Option<String> {
        t.lookup(host, path).map(|e| e.route.id.clone())
    }

    #[test]
    fn exact_then_most_specific_wildcard_then_catch_all() {
        let t = build(vec![
            http("exact", "a.b.example.com", "/"),
            http("wild", "*.example.com", "/"),
            http("wild2", "*.b.example.com", "/"),
            http("all", "*", "/"),
        ])
        .unwrap();
        assert_eq!(id(&t, "a.b.example.com", "/").as_deref(), Some("exact"));
        assert_eq!(id(&t, "c.b.example.com", "/").as_deref(), Some("wild2"));
        assert_eq!(id(&t, "x.example.com", "/").as_deref(), Some("wild"));
        assert_eq!(id(&t, "deep.x.example.com", "/").as_deref(), Some("wild"));
        assert_eq!(id(&t, "example.com", "/").as_deref(), Some("all"));
        assert_eq!(id(&t, "other.test", "/").as_deref(), Some("all"));
    }

    #[test]
    fn host_case_and_port_are_ignored() {
        let t = build(vec![http("a", "Example.Test", "/")]).unwrap();
        assert_eq!(id(&t, "EXAMPLE.test:8080", "/").as_deref(), Some("a"));
        assert_eq!(id(&t, "example.test.", "/").as_deref(), Some("a"));
        assert_eq!(id(&t, "example.testx", "/"), None);
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
    }

    #[test]
    fn longest_path_prefix_on_segment_boundaries() {
        let t = build(vec![
            http("root", "a.test", "/"),
            http("api", "a.test", "/api/"),
            http("v2", "a.test", "/api/v2/"),
        ])
        .unwrap();
        assert_eq!(id(&t, "a.test", "/api/v2/x").as_deref(), Some("v2"));
        assert_eq!(id(&t, "a.test", "/api/v2").as_deref(), Some("v2"));
        assert_eq!(id(&t, "a.test", "/api/v1").as_deref(), Some("api"));
        assert_eq!(id(&t, "a.test", "/api?x=1").as_deref(), Some("api"));
        assert_eq!(id(&t, "a.test", "/apix").as_deref(), Some("root"));
        let only_api = build(vec![http("api", "b.test", "/api/")]).unwrap();
        assert_eq!(id(&only_api, "b.test", "/"), None);
    }

    #[test]
    fn bad_sets_are_refused_whole_with_every_reason() {
        let err = build(vec![
            http("a", "a.test", "/"),
            http("b", "A.TEST", "/"),
            http("a", "c.test", "/"),
            http("c", "bad domain", "/"),
            http("d", "*.x.*", "/"),
            http("e", "e.test", "/no-slash"),
            tcp("t1", 3001),
            tcp("t2", 3001),
            tcp("t3", 80),
            tcp("t4", 3100),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 8, "{text}");
        for want in [
            "routes \"a\" and \"b\" both claim domain",
            "route id \"a\" is used twice",
            "\"bad domain\" is not a host name",
            "\"*.x.*\"",
            "\"/no-slash\" must start and end with `/`",
            "both claim TCP port 3001",
            "TCP port 80 is reserved",
            "TCP port 3100 is reserved",
        ] {
            assert!(text.contains(want), "{want:?} missing from {text}");
        }
    }

    #[test]
    fn tcp_routes_by_port() {
        let t = build(vec![tcp("t", 3005)]).unwrap();
        assert_eq!(t.tcp(3005).unwrap().route.id, "t");
        assert!(t.tcp(3006).is_none());
        assert_eq!(t.tcp_ports().collect::<Vec<_>>(), vec![3005]);
    }
}
