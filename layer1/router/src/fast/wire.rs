//! The HTTP/1.1 heads the fast path reads and writes: which requests it takes (the rest go
//! to hyper untouched), the head a backend is sent, and the head a client gets back.

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

    /// Writes the head a backend gets into `out`: hop-by-hop headers gone, the
    /// `X-Forwarded-*` values appended, `X-Request-Id` and `X-Request-Start` set (the same
    /// rules as [`headers`] applies to hyper's requests).
    pub fn write_backend_head(
        &self,
        out: &mut Vec<u8>,
        forwarded: &Forwarded,
        request_id: &[u8],
        start_ms: u64,
    ) {
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let fields = forwarded.fields();
        for h in self.headers {
            let name = h.name;
            if headers::is_hop_by_hop(name)
                || name.eq_ignore_ascii_case(X_REQUEST_ID.as_str())
                || name.eq_ignore_ascii_case(X_REQUEST_START.as_str())
                || fields
                    .iter()
                    .any(|(f, _)| name.eq_ignore_ascii_case(f.as_str()))
            {
                continue;
            }
            line(out, name.as_bytes(), h.value);
        }
        for (field, ours) in fields {
            // The first of the client's values (as `HeaderMap::get` has it), then ours.
            let theirs = self
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(field.as_str()))
                .map(|h| h.value)
                .filter(|v| !v.is_empty() && visible_ascii(v));
            out.extend_from_slice(field.as_str().as_bytes());
            out.extend_from_slice(b": ");
            if let Some(v) = theirs {
                out.extend_from_slice(v);
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(ours.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        line(out, X_REQUEST_ID.as_str().as_bytes(), request_id);
        out.extend_from_slice(X_REQUEST_START.as_str().as_bytes());
        out.extend_from_slice(b": ");
        number(out, start_ms);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(b"\r\n");
    }
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// It has none (a `HEAD` request, 204, 304).
    Empty,
    /// After this many bytes.
    Length(u64),
    /// At the last chunk of a chunked body.
    Chunked,
    /// When the backend closes the connection.
    UntilClose,
}

/// A response head from a backend.
#[derive(Debug)]
pub struct Response<'h, 'b> {
    /// Status code.
    pub status: u16,
    reason: &'b str,
    /// Bytes of the head.
    pub head_len: usize,
    /// How its body ends.
    pub framing: Framing,
    /// The backend connection may carry another request once this body has been read.
    pub reusable: bool,
    headers: &'h [httparse::Header<'b>],
    /// Headers `Connection` names (hop-by-hop, not passed on).
    named: Vec<&'b [u8]>,
    /// It has a `Transfer-Encoding` (which overrides any `Content-Length`).
    transfer_encoding: bool,
    /// It has a `Date`.
    date: bool,
}

/// What a backend sent that is not a response the router can relay.
#[derive(Debug, thiserror::Error)]
pub enum BadResponse {
    /// Not HTTP/1.x, or malformed.
    #[error("malformed response head: {0}")]
    Malformed(String),
    /// Several `Content-Length`s that differ, or one that is not a number.
    #[error("invalid Content-Length")]
    Length,
    /// A response switching protocols to a request that asked for no upgrade.
    #[error("101 Switching Protocols to a request without an upgrade")]
    Upgrade,
}

impl<'h, 'b> Response<'h, 'b> {
    /// Reads a whole head from `buf` (`head_complete` is true) for a request that was a
    /// `HEAD` request or not.
    pub fn parse(
        buf: &'b [u8],
        headers: &'h mut [httparse::Header<'b>],
        head_request: bool,
    ) -> Result<Self, BadResponse> {
        let mut resp = httparse::Response::new(headers);
        let head_len = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return Err(BadResponse::Malformed("incomplete head".into()))
            }
            Err(e) => return Err(BadResponse::Malformed(e.to_string())),
        };
        let status = resp.code.unwrap_or(0);
        if status == 101 {
            return Err(BadResponse::Upgrade);
        }
        let mut reusable = resp.version == Some(1);
        let mut length: Option<u64> = None;
        let mut chunked = None;
        let mut named = Vec::new();
        let mut date = false;
        for h in resp.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("date") {
                date = true;
            } else if name.eq_ignore_ascii_case("content-length") {
                let n = digits(h.value).ok_or(BadResponse::Length)?;
                if length.is_some_and(|l| l != n) {
                    return Err(BadResponse::Length);
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // The last coding decides: chunked ends by itself, anything else at close.
                let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
                chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',').map(|t| t.trim_ascii()) {
                    if token.eq_ignore_ascii_case(b"close") {
                        reusable = false;
                    } else if !token.is_empty() {
                        named.push(token);
                    }
                }
            }
        }
        let framing = if head_request || status == 204 || status == 304 || status < 200 {
            Framing::Empty
        } else {
            match (chunked, length) {
                (Some(true), _) => Framing::Chunked,
                (Some(false), _) | (None, None) => Framing::UntilClose,
                (None, Some(n)) => Framing::Length(n),
            }
        };
        if framing == Framing::UntilClose {
            reusable = false;
        }
        Ok(Self {
            status,
            reason: resp.reason.unwrap_or(""),
            head_len,
            framing,
            reusable,
            headers: resp.headers,
            named,
            transfer_encoding: chunked.is_some(),
            date,
        })
    }

    /// Writes the head the client gets into `out`: HTTP/1.1, hop-by-hop headers gone but
    /// `Transfer-Encoding` (the body passes through as framed; a body the backend ends by
    /// closing goes out chunked instead), no `Content-Length` beside a `Transfer-Encoding`,
    /// a `Date` when the backend sent none (RFC 9110 §6.6.1), `Connection: close` when the
    /// client's connection ends with it.
    pub fn write_client_head(&self, out: &mut Vec<u8>, close: bool) {
        let rechunk = self.framing == Framing::UntilClose;
        let empty = self.framing == Framing::Empty;
        let keep_te = empty || self.framing == Framing::Chunked;
        let keep_length =
            (empty || matches!(self.framing, Framing::Length(_))) && !self.transfer_encoding;
        out.extend_from_slice(b"HTTP/1.1 ");
        number(out, self.status.into());
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        for h in self.headers {
            let name = h.name;
            let te = name.eq_ignore_ascii_case("transfer-encoding");
            let length = name.eq_ignore_ascii_case("content-length");
            let keep = (te && keep_te)
                || (length && keep_length)
                || !(te
                    || length
                    || headers::is_hop_by_hop(name)
                    || self
                        .named
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(name.as_bytes())));
            if keep {
                line(out, name.as_bytes(), h.value);
            }
        }
        if rechunk {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        if !self.date {
            line(out, b"date", &http_date());
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes `bytes` as one chunk of a chunked body (nothing for none: an empty chunk ends it).
pub fn write_chunk(out: &mut Vec<u8>, bytes: &[u8]) {
    use std::io::Write;
    if !bytes.is_empty() {
        let _ = write!(out, "{:x}\r\n", bytes.len());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
}

/// The end of a chunked body the router frames.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A head the router answers with itself (`text/plain` or `text/html` `body`).
pub fn write_local(
    out: &mut Vec<u8>,
    status: hyper::StatusCode,
    content_type: &str,
    body: &[u8],
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    line(out, b"content-type", content_type.as_bytes());
    out.extend_from_slice(b"content-length: ");
    number(out, body.len() as u64);
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// The time now as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), made once a second
/// per thread.
fn http_date() -> [u8; 29] {
    use std::cell::Cell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHED: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHED.with(|c| {
        let (at, text) = c.get();
        if at == secs {
            return text;
        }
        let mut text = [0u8; 29];
        text.copy_from_slice(&httpdate::fmt_http_date(now).as_bytes()[..29]);
        c.set((secs, text));
        text
    })
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
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
fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn number(out: &mut Vec<u8>, n: u64) {
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
        req.write_backend_head(&mut out, &fwd(), b"id-0123456789-0123456789", 1700000000000);
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

    fn response(raw: &[u8], head: bool) -> Result<(Framing, bool, String), BadResponse> {
        let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let r = Response::parse(raw, &mut hs, head)?;
        let mut out = Vec::new();
        r.write_client_head(&mut out, false);
        let head = String::from_utf8(out).unwrap();
        // The date the router adds (the backends here send none), checked, then left out.
        let (before, rest) = head.split_once("date: ").expect("a date");
        let (date, after) = rest.split_once("\r\n").unwrap();
        httpdate::parse_http_date(date).expect("an HTTP date");
        Ok((r.framing, r.reusable, format!("{before}{after}")))
    }

    #[test]
    fn a_backends_date_is_kept() {
        let raw =
            b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n";
        let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut out = Vec::new();
        Response::parse(raw, &mut hs, false)
            .unwrap()
            .write_client_head(&mut out, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn response_framing_and_the_head_the_client_gets() {
        let (f, reuse, head) = response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: 2\r\n\r\nok\n",
            false,
        )
        .unwrap();
        assert_eq!((f, reuse), (Framing::Length(3), true));
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Kept: 2\r\n\r\n"
        );
        let (f, reuse, head) = response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!((f, reuse), (Framing::Chunked, true));
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let (f, reuse, head) = response(
            b"HTTP/1.0 200 OK\r\nServer: old\r\nTransfer-Encoding: gzip\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!((f, reuse), (Framing::UntilClose, false));
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nServer: old\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let mut out = Vec::new();
        write_chunk(&mut out, b"0123456789abcdef!");
        write_chunk(&mut out, b"");
        assert_eq!(out, b"11\r\n0123456789abcdef!\r\n");
        assert_eq!(
            response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true)
                .unwrap()
                .0,
            Framing::Empty
        );
        assert_eq!(
            response(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
                false
            )
            .unwrap()
            .0,
            Framing::Empty
        );
        assert!(
            !response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
                false
            )
            .unwrap()
            .1
        );
        assert!(matches!(
            response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                false
            ),
            Err(BadResponse::Length)
        ));
        assert!(matches!(
            response(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false),
            Err(BadResponse::Upgrade)
        ));
        assert!(response(b"HTTP/2 200\r\n\r\n", false).is_err());
    }

    #[test]
    fn local_answers_have_a_length() {
        let mut out = Vec::new();
        write_local(
            &mut out,
            hyper::StatusCode::BAD_GATEWAY,
            "text/plain; charset=utf-8",
            b"Bad Gateway\n",
            false,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 12\r\n\r\nBad Gateway\n"
        );
    }
}
