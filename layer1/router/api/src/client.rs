//! The typed client of a router's API: its routes, backends and event stream.

use flynn_http::client::{Client as Http, Lines};
use flynn_http::Endpoint;
use hyper::Method;

pub use flynn_http::client::ClientError;

use crate::route::{Backend, Event, EventKind, Route};

/// A client of one router's API.
#[derive(Debug, Clone)]
pub struct Client(Http);

/// Router events as they arrive ([`Lines::next`]).
pub type Events = Lines<Event>;

impl Client {
    /// A client of the router API at `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        Self(Http::new("router", endpoint))
    }

    /// The routes the router serves now (its current table).
    pub async fn routes(&self) -> Result<Vec<Route>, ClientError> {
        self.0.call(Method::GET, "/routes", None::<&()>).await
    }

    /// The backends of every routed service, with requests in flight.
    pub async fn backends(&self) -> Result<Vec<Backend>, ClientError> {
        self.0.call(Method::GET, "/backends", None::<&()>).await
    }

    /// Events from now on, only of `kinds` (every kind when empty).
    pub async fn events(&self, kinds: &[EventKind]) -> Result<Events, ClientError> {
        let mut path = "/events".to_string();
        if !kinds.is_empty() {
            let list: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            path.push_str("?types=");
            path.push_str(&list.join(","));
        }
        self.0.events(&path).await
    }
}
