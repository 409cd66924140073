//! Prometheus metrics (`GET /metrics` on the router API): requests by route and status, a
//! latency histogram (to response headers), backends up per service, requests in flight,
//! parked idle connections.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::backends::Discovery;

/// Labels of a request count.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

/// Labels of per-service gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

/// The router's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    in_flight: Gauge<i64, AtomicI64>,
    parked: Gauge<i64, AtomicI64>,
    backends_up: Family<ServiceLabels, Gauge<i64, AtomicI64>>,
    tcp_connections: Family<RequestLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("router");
        let requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route id (empty: no route) and status",
            requests.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "http_response_header_seconds",
            "Time from a request's headers to its response's headers",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_in_flight",
            "HTTP requests in flight",
            in_flight.clone(),
        );
        let parked = Gauge::default();
        registry.register(
            "http_connections_parked",
            "Idle HTTP/1.1 keep-alive connections held with no HTTP state",
            parked.clone(),
        );
        let backends_up = Family::default();
        registry.register(
            "backends_up",
            "Live backends per service, as discoverd reports them",
            backends_up.clone(),
        );
        let tcp_connections = Family::default();
        registry.register(
            "tcp_connections",
            "TCP route connections, by route id and outcome (status 0: proxied, 503: no backend)",
            tcp_connections.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            in_flight,
            parked,
            backends_up,
            tcp_connections,
        }
    }

    /// The counter of answers with `status` on `route` (a handle: keep it to count without
    /// a lookup).
    pub fn counter(&self, route: &str, status: u16) -> Counter {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .clone()
    }

    /// Counts one answered request.
    pub fn count(&self, route: &str, status: u16) {
        self.counter(route, status).inc();
    }

    /// Records a request's time to response headers.
    pub fn observe(&self, seconds: f64) {
        self.latency.observe(seconds);
    }

    /// Counts one TCP connection.
    pub fn tcp_connection(&self, route: &str, status: u16) {
        self.tcp_connections
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .inc();
    }

    /// Marks a connection parked (+1) or back in use or closed (-1).
    pub fn parked(&self, delta: i64) {
        self.parked.inc_by(delta);
    }

    /// Marks a request started (+1) or finished (-1).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.inc_by(delta);
    }

    /// The text exposition format, with backend counts read from `discovery` now.
    pub fn render(&self, discovery: &Discovery) -> String {
        self.backends_up.clear();
        for b in discovery.all() {
            self.backends_up
                .get_or_create(&ServiceLabels {
                    service: b.service.to_string(),
                })
                .inc();
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// One unit of a gauge of [`Metrics`] (`Metrics::parked`, `Metrics::in_flight`), added when
/// made and taken back when dropped.
pub(crate) struct Held<'a> {
    metrics: &'a Metrics,
    add: fn(&Metrics, i64),
}

impl<'a> Held<'a> {
    /// Adds one with `add` until dropped.
    pub(crate) fn new(metrics: &'a Metrics, add: fn(&Metrics, i64)) -> Self {
        add(metrics, 1);
        Self { metrics, add }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        (self.add)(self.metrics, -1);
    }
}
