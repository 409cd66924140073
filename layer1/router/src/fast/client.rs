//! Bodiless requests hyper has read (HTTP/2, TLS, and HTTP/1.1 the fast path left to hyper)
//! sent to an HTTP/1.1 backend over a pooled plain socket, without hyper's client: the head
//! written from the request's parts, the response head read with `httparse`, and the body
//! decoded from the socket as hyper's server asks for it ([`RawBody`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::{Frame, SizeHint};
use hyper::header;
use hyper::http::{request, response};
use hyper::StatusCode;
use tokio::net::TcpStream;

use super::upstream::{self, NoConn};
use super::{response::Response, wire, Remaining, READ_CHUNK};
use crate::backends::{Backend, InFlight};
use crate::body::BoxError;
use crate::proxy::ProxyConfig;
use crate::table::HttpEntry;

/// Why a request got no response from a backend.
pub(crate) struct Failed {
    /// What the client is answered.
    pub status: StatusCode,
    /// The backend that failed, if one was reached.
    pub backend: Option<SocketAddr>,
}

/// Sends a request with no body (its head in `parts`, as the client sent it; `ours` what the
/// router adds) to a backend of `entry`'s route (`first` when given); returns the response's
/// status and headers, its body and the backend that sent it.
pub(crate) async fn send(
    parts: &request::Parts,
    entry: &HttpEntry,
    first: Option<Arc<Backend>>,
    config: &ProxyConfig,
    ours: &wire::Added<'_>,
) -> Result<(response::Parts, RawBody, SocketAddr), Failed> {
    let mut conn = upstream::connect(entry, first, config)
        .await
        .map_err(|e| Failed {
            status: match e {
                NoConn::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
                NoConn::Failed => StatusCode::BAD_GATEWAY,
            },
            backend: None,
        })?;
    let addr = conn.backend().addr;
    let route = &entry.route;
    let mut out = Vec::with_capacity(512);
    write_head(parts, ours, &mut out);
    // Small: most answers fit, and a larger buffer costs fresh pages on every request.
    let mut back = Vec::with_capacity(READ_CHUNK / 4);
    let answer = std::pin::pin!(tokio::time::sleep(config.response_header_timeout));
    let replay = upstream::idempotent(parts.method.as_str().as_bytes());
    let failed = |status| Failed {
        status,
        backend: Some(addr),
    };
    conn.round_trip(&out, &mut back, config, answer, replay)
        .await
        .map_err(|f| failed(f.status(&route.id, addr)))?;
    let back = Bytes::from(back);
    let mut hs = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
    let head_request = parts.method == hyper::Method::HEAD;
    let parsed = Response::parse(&back, &mut hs, head_request).and_then(|r| {
        let parts = r.to_parts(&back)?;
        Ok((parts, r.head_len, r.framing, r.reusable))
    });
    let (parts, head_len, framing, reusable) = parsed.map_err(|e| {
        tracing::warn!(route = %route.id, backend = %addr, error = %e, "backend failed the request");
        failed(StatusCode::BAD_GATEWAY)
    })?;
    let body = RawBody {
        buf: BytesMut::from(&back[head_len..]),
        remaining: Remaining::new(framing),
        reusable: reusable && !route.disable_keep_alives,
        stream: Some(conn.stream),
        flight: Some(conn.flight),
    };
    Ok((parts, body, addr))
}

/// Writes the HTTP/1.1 head a backend gets for the request in `parts` into `out` (the
/// rules of [`wire::write_backend_head`]; `Host` from the URI's authority when the request
/// has none, as HTTP/2 requests do).
fn write_head(parts: &request::Parts, ours: &wire::Added<'_>, out: &mut Vec<u8>) {
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let named: Vec<&[u8]> = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .collect();
    let host = match parts.headers.contains_key(header::HOST) {
        true => None,
        false => parts
            .uri
            .authority()
            .map(|a| ("host", a.as_str().as_bytes())),
    };
    let fields = || {
        let all = parts.headers.iter();
        host.into_iter()
            .chain(all.map(|(n, v)| (n.as_str(), v.as_bytes())))
    };
    let method = parts.method.as_str();
    wire::write_backend_head(out, method, target, fields, &named, ours);
}

/// A backend's response body read from its socket: framing taken off (hyper frames it
/// again for the client), the socket back in the pool once the body has ended where it
/// said it would, and the request's in-flight count held until then.
pub struct RawBody {
    stream: Option<TcpStream>,
    /// Bytes read and not yet given out.
    buf: BytesMut,
    remaining: Remaining,
    reusable: bool,
    flight: Option<InFlight>,
}

impl std::fmt::Debug for RawBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBody")
            .field("buffered", &self.buf.len())
            .field("reusable", &self.reusable)
            .finish()
    }
}

impl RawBody {
    /// True once the whole body has been given out.
    pub fn is_end_stream(&self) -> bool {
        matches!(self.remaining, Remaining::Done)
    }

    /// Its length when known.
    pub fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Remaining::Done => SizeHint::with_exact(0),
            Remaining::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }

    /// The next piece of the body.
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.is_end_stream() {
                self.finish();
                return Poll::Ready(None);
            }
            if !self.buf.is_empty() {
                match self.take() {
                    Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(None) => continue,
                    Err(e) => return Poll::Ready(Some(Err(self.fail(e.into())))),
                }
            }
            let Some(stream) = self.stream.as_ref() else {
                return Poll::Ready(None);
            };
            if let Err(e) = ready!(stream.poll_read_ready(cx)) {
                return Poll::Ready(Some(Err(self.fail(e.into()))));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            match stream.try_read_buf(&mut self.buf) {
                Ok(0) if matches!(self.remaining, Remaining::UntilClose) => {
                    self.reusable = false;
                    self.remaining = Remaining::Done;
                }
                Ok(0) => {
                    let e = "the backend closed the connection before the body's end";
                    return Poll::Ready(Some(Err(self.fail(e.into()))));
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Some(Err(self.fail(e.into())))),
            }
        }
    }

    /// The body's bytes at the front of `buf` (none when only framing was there).
    fn take(&mut self) -> Result<Option<Bytes>, super::ChunkedError> {
        let chunked = matches!(self.remaining, Remaining::Chunked(_));
        let (buf, mut decoded) = (&self.buf, BytesMut::new());
        let n = self.remaining.decode(buf, |r| {
            if chunked {
                decoded.extend_from_slice(&buf[r]);
            }
        })?;
        // A chunked body's data is copied out of its framing; any other is the bytes
        // themselves.
        let data = if chunked {
            self.buf.advance(n);
            decoded.freeze()
        } else {
            self.buf.split_to(n).freeze()
        };
        Ok((!data.is_empty()).then_some(data))
    }

    /// Ends the request: the socket back to the pool when the body ended cleanly with
    /// nothing after it.
    fn finish(&mut self) {
        let (Some(flight), Some(stream)) = (self.flight.take(), self.stream.take()) else {
            return;
        };
        let backend = flight.backend();
        if self.reusable && self.buf.is_empty() && !backend.is_down() {
            backend.pool.put_stream(stream);
        }
    }

    /// Ends the request with the socket closed.
    fn fail(&mut self, e: BoxError) -> BoxError {
        self.stream = None;
        self.flight = None;
        e
    }
}

impl Drop for RawBody {
    fn drop(&mut self) {
        // A body that was empty from the start is whole without being read.
        if self.is_end_stream() {
            self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_origin_form_with_a_host_and_cookies_joined() {
        let req = hyper::Request::builder()
            .method("DELETE")
            .uri("http://example.test/a/b?c=d")
            .header("cookie", "a=1")
            .header("connection", "x-gone")
            .header("x-gone", "1")
            .header("te", "trailers")
            .header("x-one", "1")
            .header("cookie", "b=2")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let forwarded = crate::headers::Forwarded::new([10, 0, 0, 9].into(), true, 443);
        let ours = wire::Added {
            forwarded: &forwarded,
            request_id: b"id-0123456789-0123456789",
            start_ms: 1700000000000,
            close: true,
        };
        let mut out = Vec::new();
        write_head(&parts, &ours, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "DELETE /a/b?c=d HTTP/1.1\r\nhost: example.test\r\nx-one: 1\r\n\
             cookie: a=1; b=2\r\nx-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: https\r\n\
             x-forwarded-port: 443\r\nx-request-id: id-0123456789-0123456789\r\n\
             x-request-start: 1700000000000\r\nconnection: close\r\n\r\n"
        );
    }
}
