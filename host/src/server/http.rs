//! Request and response plumbing: JSON bodies with a size limit, query strings, JSON errors
//! with stable codes, and streamed bodies (NDJSON, server-sent events).

use std::collections::BTreeMap;
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::api::ErrorBody;
use crate::error::HostError;

/// Every response body.
pub type Body = BoxBody<Bytes, Infallible>;

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;
/// How long a client may take to send a request body; set on each request by the server
/// (its `Limits`), 30 s when absent.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

/// A failed request, as its response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    allow: Option<String>,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: ErrorBody {
                code: code.into(),
                message: message.into(),
            },
            allow: None,
        }
    }

    /// The same error with an `Allow` header (for 405).
    pub fn with_allow(mut self, methods: String) -> Self {
        self.allow = Some(methods);
        self
    }

    /// A 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// The response.
    pub fn response(self) -> Response<Body> {
        if self.status.is_server_error() {
            tracing::error!(code = %self.body.code, message = %self.body.message, "request failed");
        }
        let mut r = json(self.status, &self.body);
        if let Some(allow) = self.allow.and_then(|a| a.parse().ok()) {
            r.headers_mut().insert("allow", allow);
        }
        r
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        let (status, code) = e.kind();
        Self::new(status, code, e.to_string())
    }
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let mut bytes = serde_json::to_vec(value).expect("API types serialise");
    bytes.push(b'\n');
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)).boxed())
        .expect("valid response")
}

/// An empty 204 response.
pub fn no_content() -> Response<Body> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Full::new(Bytes::new()).boxed())
        .expect("valid response")
}

/// A response streaming what arrives on `rx`, with this content type.
pub fn streamed(content_type: &str, rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("valid response")
}

/// Streams JSON values from `rx` as NDJSON (one object a line).
pub fn ndjson<T: Serialize + Send + 'static>(mut rx: mpsc::Receiver<T>) -> Response<Body> {
    let (tx, out) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            let mut line = serde_json::to_vec(&v).expect("API types serialise");
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
        }
    });
    streamed("application/x-ndjson", out)
}

/// Reads a JSON request body of at most 1 MiB, sent within the request's [`BodyTimeout`].
pub async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    let limit = req
        .extensions()
        .get::<BodyTimeout>()
        .map_or(std::time::Duration::from_secs(30), |t| t.0);
    let collect = Limited::new(req.into_body(), MAX_BODY).collect();
    let body = tokio::time::timeout(limit, collect)
        .await
        .map_err(|_| {
            ApiError::new(
                408,
                "request_timeout",
                format!(
                    "the request body did not arrive within {} s (is Content-Length right?)",
                    limit.as_secs()
                ),
            )
        })?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::new(413, "payload_too_large", "request body is over 1 MiB")
            } else {
                ApiError::bad_request(format!("reading the request body: {e}"))
            }
        })?
        .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A parsed query string.
#[derive(Debug, Default)]
pub struct Query(BTreeMap<String, Vec<String>>);

impl Query {
    /// Parses the request's query string.
    pub fn of<B>(req: &Request<B>) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
            map.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Self(map)
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)?.last().map(String::as_str)
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> &[String] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    /// A boolean: `true`/`1`, `false`/`0`, or a bare key (`?follow`) for true.
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(false),
            Some("" | "true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "{key}={v:?}: use true or false"
            ))),
        }
    }

    /// A number in `0..=max`.
    pub fn number(&self, key: &str, max: u64) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n <= max => Ok(Some(n)),
                _ => Err(ApiError::bad_request(format!(
                    "{key}={v:?}: use a whole number from 0 to {max}"
                ))),
            },
        }
    }
}
