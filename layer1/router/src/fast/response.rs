//! The response side of the fast path: a backend's head, where its body ends, and the head
//! a client gets back (or one the router makes itself).

use super::wire::{digits, line, number};
use crate::headers;

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
        for h in self.passed_on(keep_te, keep_length) {
            line(out, h.name.as_bytes(), h.value);
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

impl Response<'_, '_> {
    /// The headers a client gets: not hop-by-hop, not named by `Connection`; a
    /// `Transfer-Encoding` only when `keep_te`, a `Content-Length` only when `keep_length`.
    fn passed_on(
        &self,
        keep_te: bool,
        keep_length: bool,
    ) -> impl Iterator<Item = &httparse::Header<'_>> {
        self.headers.iter().filter(move |h| {
            let name = h.name;
            let te = name.eq_ignore_ascii_case("transfer-encoding");
            let length = name.eq_ignore_ascii_case("content-length");
            (te && keep_te)
                || (length && keep_length)
                || !(te
                    || length
                    || headers::is_hop_by_hop(name)
                    || self
                        .named
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(name.as_bytes())))
        })
    }

    /// The status and headers of the response hyper sends on (it frames the body itself
    /// and adds a `Date`): no `Transfer-Encoding`, a `Content-Length` only for a body of
    /// known length or none. `buf` is the buffer the head was parsed from (header values
    /// share it rather than being copied).
    pub fn to_parts(
        &self,
        buf: &bytes::Bytes,
    ) -> Result<hyper::http::response::Parts, BadResponse> {
        let keep_length =
            matches!(self.framing, Framing::Empty | Framing::Length(_)) && !self.transfer_encoding;
        let (mut parts, ()) = hyper::Response::new(()).into_parts();
        parts.status = hyper::StatusCode::from_u16(self.status)
            .map_err(|_| BadResponse::Malformed(format!("status {}", self.status)))?;
        parts.headers.reserve(self.headers.len());
        for h in self.passed_on(false, keep_length) {
            let bad = || BadResponse::Malformed(format!("header {}", h.name));
            let name =
                hyper::header::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| bad())?;
            let value = hyper::header::HeaderValue::from_maybe_shared(buf.slice_ref(h.value))
                .map_err(|_| bad())?;
            parts.headers.append(name, value);
        }
        Ok(parts)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::wire::MAX_HEADERS;

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
    fn hyper_gets_the_end_to_end_headers_and_a_length_only_for_known_lengths() {
        let names = |raw: &'static [u8], head: bool| {
            let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let buf = bytes::Bytes::from_static(raw);
            let r = Response::parse(&buf, &mut hs, head).unwrap();
            let parts = r.to_parts(&buf).unwrap();
            let mut names: Vec<String> = parts.headers.keys().map(|k| k.to_string()).collect();
            names.sort();
            (parts.status.as_u16(), names.join(","))
        };
        assert_eq!(
            names(
                b"HTTP/1.1 201 Created\r\nConnection: x-a, close\r\nX-A: 1\r\nKeep-Alive: 5\r\n\
                  Transfer-Encoding: chunked\r\nContent-Length: 9\r\nX-B: 2\r\n\r\n",
                false
            ),
            (201, "x-b".to_string())
        );
        let length = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nUpgrade: h2c\r\n\r\n";
        assert_eq!(names(length, false), (200, "content-length".to_string()));
        assert_eq!(names(length, true), (200, "content-length".to_string()));
        assert_eq!(
            names(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\n", false),
            (200, "content-length".to_string())
        );
        assert_eq!(
            names(b"HTTP/1.1 200 OK\r\nX-C: 3\r\n\r\n", false),
            (200, "x-c".to_string())
        );
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
