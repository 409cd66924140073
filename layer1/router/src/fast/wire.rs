//! The request side of the fast path: which requests it takes (the rest go to hyper
//! untouched) and the head a backend is sent; and the head-writing helpers both sides use.

use crate::headers::{self, Forwarded, X_REQUEST_ID, X_REQUEST_START};

/// Header lines read per head; more go to hyper (which answers 431).
pub const MAX_HEADERS: usize = 100;

/// True once `buf` holds a whole head (its empty line, CRLF or bare LF line endings).
pub fn head_complete(buf: &[u8]) -> bool {
    let mut i = 0;
    while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
        let at = i + p + 1;
        match buf.get(at) {
            Some(b'\n') => return true,
            Some(b'\r') if buf.get(at + 1) == Some(&b'\n') => return true,
            _ => i = at,
        }
    }
    false
}

/// A request the fast path takes: HTTP/1.1 in origin form, one `Host`, no body or a
/// `Content-Length` one, no upgrade, no `Expect`, `Connection` naming only `close` or
/// `keep-alive`.
#[derive(Debug)]
pub struct Request<'h, 'b> {
    /// Method.
    pub method: &'b str,
    /// Path and query, as sent.
    pub target: &'b str,
    /// The `Host` header.
    pub host: &'b str,
    /// Bytes of the head.
    pub head_len: usize,
    /// Bytes of the body after it.
    pub content_length: u64,
    /// The client asked to close after the response.
    pub close: bool,
    headers: &'h [httparse::Header<'b>],
}

impl<'h, 'b> Request<'h, 'b> {
    /// Reads a whole head from `buf`; `None` for anything the fast path leaves to hyper
    /// (malformed, too many headers, or a request outside its kind).
    pub fn parse(buf: &'b [u8], headers: &'h mut [httparse::Header<'b>]) -> Option<Self> {
        let mut req = httparse::Request::new(headers);
        let head_len = match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            _ => return None,
        };
        if req.version != Some(1) {
            return None;
        }
        let (method, target) = (req.method?, req.path?);
        if !target.starts_with('/') {
            return None;
        }
        let mut host = None;
        let mut content_length = None;
        let mut close = false;
        for h in req.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("host") {
                if host.is_some() {
                    return None;
                }
                host = Some(std::str::from_utf8(h.value).ok()?);
            } else if name.eq_ignore_ascii_case("content-length") {
                if content_length.is_some() {
                    return None;
                }
                content_length = Some(digits(h.value)?);
            } else if name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',') {
                    match token.trim_ascii() {
                        t if t.eq_ignore_ascii_case(b"close") => close = true,
                        t if t.eq_ignore_ascii_case(b"keep-alive") || t.is_empty() => {}
                        _ => return None,
                    }
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                || name.eq_ignore_ascii_case("upgrade")
                || name.eq_ignore_ascii_case("expect")
            {
                return None;
            }
        }
        Some(Self {
            method,
            target,
            host: host?,
            head_len,
            content_length: content_length.unwrap_or(0),
            close,
            headers: req.headers,
        })
    }

    /// The path, without the query.
    pub fn path(&self) -> &'b str {
        self.target.split('?').next().unwrap_or(self.target)
    }

    /// Its `X-Request-Id` when it is one a client may choose.
    pub fn request_id(&self) -> Option<&'b [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(X_REQUEST_ID.as_str()))
            .map(|h| h.value)
            .filter(|v| headers::valid_request_id(v))
    }

    /// Writes the head a backend gets into `out` (see [`write_backend_head`]).
    pub fn write_backend_head(&self, out: &mut Vec<u8>, ours: &Added<'_>) {
        let fields = || self.headers.iter().map(|h| (h.name, h.value));
        write_backend_head(out, self.method, self.target, fields, &[], ours);
    }
}

/// What the router adds to a request it sends a backend.
#[derive(Debug)]
pub struct Added<'a> {
    /// The client connection's `X-Forwarded-*` values.
    pub forwarded: &'a Forwarded,
    /// The request's `X-Request-Id`.
    pub request_id: &'a [u8],
    /// Its `X-Request-Start` (Unix milliseconds).
    pub start_ms: u64,
    /// `Connection: close` is sent (the route disables keep-alive).
    pub close: bool,
}

/// Writes an HTTP/1.1 head for a backend into `out`: `method` and `target` (origin-form), the
/// request's `fields` (each call iterates them from the start) but hop-by-hop ones and those `Connection` names (`named`), its
/// `Cookie` fields joined into one line (HTTP/2 sends one per cookie; RFC 9113 §8.2.3), the
/// `X-Forwarded-*` values appended, `X-Request-Id` and `X-Request-Start` set: the rules
/// [`headers`] applies to the requests hyper's client sends.
pub fn write_backend_head<'f, F, I>(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    fields: F,
    named: &[&[u8]],
    ours: &Added<'_>,
) where
    F: Fn() -> I,
    I: Iterator<Item = (&'f str, &'f [u8])>,
{
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let forwarded = ours.forwarded.fields();
    let mut cookies = 0;
    for (name, value) in fields() {
        if name.eq_ignore_ascii_case("cookie") {
            cookies += 1;
            continue;
        }
        if headers::is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(X_REQUEST_ID.as_str())
            || name.eq_ignore_ascii_case(X_REQUEST_START.as_str())
            || forwarded
                .iter()
                .any(|(f, _)| name.eq_ignore_ascii_case(f.as_str()))
            || named
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
        {
            continue;
        }
        line(out, name.as_bytes(), value);
    }
    if cookies > 0 {
        out.extend_from_slice(b"cookie: ");
        let values = fields().filter(|(n, _)| n.eq_ignore_ascii_case("cookie"));
        for (i, (_, value)) in values.enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(value);
        }
        out.extend_from_slice(b"\r\n");
    }
    for (field, value) in forwarded {
        // The first of the client's values (as `HeaderMap::get` has it), then ours.
        let theirs = fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(field.as_str()))
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty() && visible_ascii(v));
        out.extend_from_slice(field.as_str().as_bytes());
        out.extend_from_slice(b": ");
        if let Some(v) = theirs {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    line(out, X_REQUEST_ID.as_str().as_bytes(), ours.request_id);
    out.extend_from_slice(X_REQUEST_START.as_str().as_bytes());
    out.extend_from_slice(b": ");
    number(out, ours.start_ms);
    out.extend_from_slice(b"\r\n");
    if ours.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

pub(super) fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// True for a value `HeaderValue::to_str` reads (visible ASCII and tabs).
fn visible_ascii(v: &[u8]) -> bool {
    v.iter().all(|&b| (32..127).contains(&b) || b == b'\t')
}

/// A decimal number of digits alone (no sign, no spaces), below 2^63.
pub(super) fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

pub(super) fn number(out: &mut Vec<u8>, n: u64) {
    use std::io::Write;
    let _ = write!(out, "{n}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd() -> Forwarded {
        Forwarded::new("10.0.0.9".parse().unwrap(), false, 80)
    }

    fn backend_head(raw: &[u8]) -> Option<String> {
        let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = Request::parse(raw, &mut hs)?;
        let mut out = Vec::new();
        let ours = Added {
            forwarded: &fwd(),
            request_id: b"id-0123456789-0123456789",
            start_ms: 1700000000000,
            close: false,
        };
        req.write_backend_head(&mut out, &ours);
        Some(String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_head_is_complete_at_its_empty_line() {
        assert!(head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(head_complete(b"GET / HTTP/1.1\nHost: a\n\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r"));
    }

    #[test]
    fn the_backend_gets_the_head_with_hop_by_hop_headers_gone_and_forwarding_set() {
        let head = backend_head(
            b"GET /a?b=1 HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive\r\n\
              Keep-Alive: timeout=5\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 192.0.2.2\r\n\
              X-Request-Start: 1\r\nAccept: */*\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            head,
            "GET /a?b=1 HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\n\
             x-forwarded-for: 192.0.2.1, 10.0.0.9\r\nx-forwarded-proto: http\r\n\
             x-forwarded-port: 80\r\nx-request-id: id-0123456789-0123456789\r\n\
             x-request-start: 1700000000000\r\n\r\n"
        );
    }

    #[test]
    fn requests_outside_the_fast_paths_kind_go_to_hyper() {
        for raw in [
            &b"GET / HTTP/1.0\r\nHost: a\r\n\r\n"[..],
            b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\n\r\n",
            b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost a\r\n\r\n",
        ] {
            let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
            assert!(
                Request::parse(raw, &mut hs).is_none(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = Request::parse(
            b"POST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nConnection: close\r\n\r\n",
            &mut hs,
        )
        .unwrap();
        assert_eq!(
            (req.content_length, req.close, req.path()),
            (12, true, "/x")
        );
    }

    #[test]
    fn a_clients_request_id_is_kept_only_when_valid() {
        let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: client-chosen-id-0123456789\r\n\r\n";
        let req = Request::parse(raw, &mut hs).unwrap();
        assert_eq!(req.request_id(), Some(&b"client-chosen-id-0123456789"[..]));
        let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = Request::parse(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: bad id\r\n\r\n",
            &mut hs,
        )
        .unwrap();
        assert_eq!(req.request_id(), None);
    }
}
