//! Responses: JSON, empty, streamed (NDJSON, server-sent events), and errors as
//! [`ErrorBody`] JSON.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::{ErrorBody, ErrorCode};

/// Every response body.
pub type Body = BoxBody<Bytes, Infallible>;

/// A failed request, as its response: a status and an [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    /// An error with this code, answered with the code's usual status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::with_status(code.status(), code, message)
    }

    /// An error with an explicit status.
    pub fn with_status(status: u16, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: ErrorBody::new(code, message),
            headers: Vec::new(),
        }
    }

    /// A 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// The same error with an `Allow` header (for 405).
    pub fn with_allow(self, methods: String) -> Self {
        self.with_header("allow", methods)
    }

    /// The same error with a header (`www-authenticate` for 401, say).
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The error's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error's body.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }

    /// The response; server errors are logged.
    pub fn response(self) -> Response<Body> {
        if self.status.is_server_error() {
            tracing::error!(code = %self.body.code, message = %self.body.message, "request failed");
        }
        let mut r = json(self.status, &self.body);
        for (name, value) in self.headers {
            if let Ok(v) = value.parse() {
                r.headers_mut().insert(name, v);
            }
        }
        r
    }
}

/// A JSON response (one line, newline-terminated).
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let mut bytes = serde_json::to_vec(value).expect("API types serialise");
    bytes.push(b'\n');
    bytes_response(status, "application/json", Bytes::from(bytes))
}

/// A response of fixed bytes with this content type.
pub fn bytes_response(status: StatusCode, content_type: &str, bytes: Bytes) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(bytes).boxed())
        .expect("valid response")
}

/// A `101 Switching Protocols` to `protocol` (answering `Connection: Upgrade`), with more
/// headers.
pub fn switching_protocols(protocol: &str, headers: &[(&str, &str)]) -> Response<Body> {
    let mut b = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", protocol);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new()).boxed())
        .expect("valid response")
}

/// An empty 204 response.
pub fn no_content() -> Response<Body> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Full::new(Bytes::new()).boxed())
        .expect("valid response")
}

/// A 200 response streaming `stream`'s chunks, with this content type.
pub fn stream_response<S>(content_type: &str, stream: S) -> Response<Body>
where
    S: Stream<Item = Bytes> + Send + Sync + 'static,
{
    use futures_util::StreamExt;
    let frames = stream.map(|b| Ok::<_, Infallible>(Frame::data(b)));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .expect("valid response")
}

/// One value as an NDJSON line.
pub fn ndjson_line(value: &impl Serialize) -> Bytes {
    let mut line = serde_json::to_vec(value).expect("API types serialise");
    line.push(b'\n');
    Bytes::from(line)
}

/// Streams the values arriving on `rx` as NDJSON (`application/x-ndjson`, one object a line).
pub fn ndjson<T: Serialize + Send + 'static>(rx: mpsc::Receiver<T>) -> Response<Body> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        Some((ndjson_line(&v), rx))
    });
    stream_response("application/x-ndjson", stream)
}

/// Streams server-sent events (`text/event-stream`); each chunk is whole events, as
/// [`crate::sse::encode`] writes them.
pub fn sse<S>(stream: S) -> Response<Body>
where
    S: Stream<Item = Bytes> + Send + Sync + 'static,
{
    stream_response("text/event-stream", stream)
}
