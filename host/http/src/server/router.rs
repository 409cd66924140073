//! A small typed router: routes are (method, path pattern, handler); patterns have literal
//! segments, `{name}` for one segment and `{name*}` for the rest of the path. Unknown paths
//! get 404, known paths with another method 405 with `Allow`. The route table is data, so a
//! service's OpenAPI document can be tested against it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use percent_encoding::percent_decode_str;

use super::response::{ApiError, Body};
use crate::error::ErrorCode;

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, ApiError>> + Send>>;
type Handler<S> = Arc<dyn Fn(S, Request<Incoming>, Params) -> BoxFuture + Send + Sync>;
/// `(METHOD, /path/{param})` pairs.
pub type RouteList = Vec<(String, String)>;
type Guard<S> = Arc<dyn Fn(&S, &Request<Incoming>) -> Result<(), ApiError> + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One(String),
    Rest(String),
}

struct Route<S> {
    method: Method,
    path: &'static str,
    pattern: Vec<Segment>,
    handler: Handler<S>,
    /// Served without the router's guard.
    public: bool,
}

impl<S> std::fmt::Debug for Route<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// The path parameters a route matched, percent-decoded.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The value of `{name}` (empty when the route has no such parameter).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// `{name}` parsed as `T`; a value that does not parse is a 400 saying why.
    pub fn parse<T>(&self, name: &str) -> Result<T, ApiError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .parse()
            .map_err(|e| ApiError::bad_request(format!("{e}")))
    }
}

/// Routes requests to handlers that take the service's state `S`.
pub struct Router<S> {
    routes: Vec<Route<S>>,
    not_found: &'static str,
    guard: Option<Guard<S>>,
}

impl<S> std::fmt::Debug for Router<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.routes).finish()
    }
}

impl<S: Clone + Send + Sync + 'static> Default for Router<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Router<S> {
    /// A router with no routes.
    pub fn new() -> Self {
        Self {
            routes: Vec::new(),
            not_found: "no such API path",
            guard: None,
        }
    }

    /// The same router answering unknown paths with this message (say where the routes are
    /// described).
    pub fn not_found_message(mut self, message: &'static str) -> Self {
        self.not_found = message;
        self
    }

    /// The same router running `guard` before every route's handler except the public ones
    /// (authentication): an error it returns is the answer.
    pub fn guard<G>(mut self, guard: G) -> Self
    where
        G: Fn(&S, &Request<Incoming>) -> Result<(), ApiError> + Send + Sync + 'static,
    {
        self.guard = Some(Arc::new(guard));
        self
    }

    /// Adds a route. `path` is as in OpenAPI (`/jobs/{id}`), with `{name*}` taking the rest
    /// of the path.
    ///
    /// # Panics
    /// On a malformed pattern (a `{name*}` that is not last): a programming error.
    pub fn route<F, Fut>(self, method: Method, path: &'static str, handler: F) -> Self
    where
        F: Fn(S, Request<Incoming>, Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Body>, ApiError>> + Send + 'static,
    {
        self.add(method, path, handler, false)
    }

    /// Adds a route the guard does not check (liveness, the API description).
    pub fn public_route<F, Fut>(self, method: Method, path: &'static str, handler: F) -> Self
    where
        F: Fn(S, Request<Incoming>, Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Body>, ApiError>> + Send + 'static,
    {
        self.add(method, path, handler, true)
    }

    fn add<F, Fut>(mut self, method: Method, path: &'static str, handler: F, public: bool) -> Self
    where
        F: Fn(S, Request<Incoming>, Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Body>, ApiError>> + Send + 'static,
    {
        let pattern = parse_pattern(path);
        if let Some(i) = pattern.iter().position(|s| matches!(s, Segment::Rest(_))) {
            assert_eq!(i + 1, pattern.len(), "{path}: {{name*}} must come last");
        }
        self.routes.push(Route {
            method,
            path,
            pattern,
            handler: Arc::new(move |s, r, p| Box::pin(handler(s, r, p))),
            public,
        });
        self
    }

    /// Every route as (method, pattern), in the order added.
    pub fn routes(&self) -> Vec<(Method, &'static str)> {
        self.routes
            .iter()
            .map(|r| (r.method.clone(), r.path))
            .collect()
    }

    /// `(method, path)` pairs, sorted, that are in the route table but not in the OpenAPI
    /// document `openapi` (JSON), and those documented but not served. Both empty when the
    /// document lists exactly the routes.
    pub fn openapi_mismatch(&self, openapi: &str) -> (RouteList, RouteList) {
        let doc: serde_json::Value =
            serde_json::from_str(openapi).expect("the OpenAPI document is JSON");
        let mut documented = RouteList::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (path, ops) in paths {
                for method in ops.as_object().into_iter().flat_map(|o| o.keys()) {
                    documented.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        let served: RouteList = self
            .routes
            .iter()
            .map(|r| (r.method.as_str().to_string(), r.path.replace("*}", "}")))
            .collect();
        let mut undocumented: Vec<_> = served
            .iter()
            .filter(|r| !documented.contains(r))
            .cloned()
            .collect();
        let mut unserved: Vec<_> = documented
            .iter()
            .filter(|r| !served.contains(r))
            .cloned()
            .collect();
        undocumented.sort();
        unserved.sort();
        (undocumented, unserved)
    }

    /// Answers a request: the matching route's handler, its error as JSON, or 404/405.
    pub async fn handle(&self, state: S, req: Request<Incoming>) -> Response<Body> {
        let segs: Vec<String> = req
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let mut allowed = Vec::new();
        for route in &self.routes {
            let Some(params) = matches(&route.pattern, &segs) else {
                continue;
            };
            if route.method == req.method() {
                if let Some(guard) = self.guard.as_ref().filter(|_| !route.public) {
                    if let Err(e) = guard(&state, &req) {
                        return e.response();
                    }
                }
                return match (route.handler)(state, req, params).await {
                    Ok(r) => r,
                    Err(e) => e.response(),
                };
            }
            allowed.push(route.method.as_str().to_string());
        }
        not_routed(allowed, self.not_found).response()
    }
}

fn parse_pattern(path: &str) -> Vec<Segment> {
    path.trim_start_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => match name.strip_suffix('*') {
                    Some(rest) => Segment::Rest(rest.to_string()),
                    None => Segment::One(name.to_string()),
                },
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect()
}

fn matches(pattern: &[Segment], segs: &[String]) -> Option<Params> {
    let mut params = Vec::new();
    for (i, p) in pattern.iter().enumerate() {
        match p {
            Segment::Rest(name) => {
                let rest = segs.get(i..)?;
                if rest.first().is_none_or(|s| s.is_empty()) {
                    return None;
                }
                params.push((name.clone(), rest.join("/")));
                return Some(Params(params));
            }
            Segment::One(name) => {
                let s = segs.get(i).filter(|s| !s.is_empty())?;
                params.push((name.clone(), s.clone()));
            }
            Segment::Literal(l) => {
                if segs.get(i) != Some(l) {
                    return None;
                }
            }
        }
    }
    (segs.len() == pattern.len()).then_some(Params(params))
}

fn not_routed(mut allowed: Vec<String>, not_found: &str) -> ApiError {
    if allowed.is_empty() {
        return ApiError::new(ErrorCode::NotFound, not_found);
    }
    allowed.dedup();
    let allow = allowed.join(", ");
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method not allowed on this path; use {allow}"),
    )
    .with_allow(allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        p.trim_start_matches('/')
            .split('/')
            .map(String::from)
            .collect()
    }

    #[test]
    fn patterns_match_whole_segments_and_rests() {
        let job = parse_pattern("/jobs/{id}");
        assert_eq!(matches(&job, &segs("/jobs/a")).unwrap().get("id"), "a");
        assert!(matches(&job, &segs("/jobs/")).is_none());
        assert!(matches(&job, &segs("/jobs/a/b")).is_none());
        assert!(matches(&job, &segs("/jobs")).is_none());
        let image = parse_pattern("/images/{name*}");
        let p = matches(&image, &segs("/images/127.0.0.1:5000/a/b:v1")).unwrap();
        assert_eq!(p.get("name"), "127.0.0.1:5000/a/b:v1");
        assert!(matches(&image, &segs("/images/")).is_none());
        assert!(matches(&image, &segs("/images")).is_none());
    }
}
