//! Header rules between client and backend: hop-by-hop headers removed (RFC 9110 §7.6.1),
//! `X-Forwarded-For/Proto/Port` appended, `X-Request-Start`, and `X-Request-Id` kept when
//! well-formed or replaced.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The request id header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The request start header.
pub static X_REQUEST_START: HeaderName = HeaderName::from_static("x-request-start");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Hop-by-hop headers besides `Connection` and `Upgrade` (which upgrades keep).
static HOP_BY_HOP: [&HeaderName; 7] = [
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
];

/// True for a header a proxy never passes on (`Connection`, `Upgrade` and those of
/// [`HOP_BY_HOP`]), its name in any case.
pub fn is_hop_by_hop(name: &str) -> bool {
    name.eq_ignore_ascii_case(header::CONNECTION.as_str())
        || name.eq_ignore_ascii_case(header::UPGRADE.as_str())
        || HOP_BY_HOP
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_str()))
}

/// True when `Connection` names `token` (any case, any of several headers).
pub fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// True for an HTTP/1.1 upgrade request (`Connection: upgrade` and an `Upgrade` header).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

/// Removes hop-by-hop headers: the fixed ones and those `Connection` names. With `upgrade`,
/// `Connection: upgrade` and `Upgrade` stay (they are the request).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if !(upgrade && name == header::UPGRADE) {
            headers.remove(&name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::CONNECTION);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// The `X-Forwarded-*` values of one client connection, made once per connection.
#[derive(Debug, Clone)]
pub struct Forwarded {
    client: HeaderValue,
    proto: HeaderValue,
    port: HeaderValue,
}

impl Forwarded {
    /// The values for a client at `client` that reached listener `port` (`tls`: HTTPS).
    pub fn new(client: IpAddr, tls: bool, port: u16) -> Self {
        Self {
            client: HeaderValue::from_str(&client.to_canonical().to_string())
                .expect("an IP address is a header value"),
            proto: HeaderValue::from_static(if tls { "https" } else { "http" }),
            port: HeaderValue::from(port),
        }
    }

    /// Each `X-Forwarded-*` header's name and this connection's value for it; a request's
    /// own value comes first, joined with `", "`.
    pub fn fields(&self) -> [(&'static HeaderName, &HeaderValue); 3] {
        [
            (&X_FORWARDED_FOR, &self.client),
            (&X_FORWARDED_PROTO, &self.proto),
            (&X_FORWARDED_PORT, &self.port),
        ]
    }
}

fn append(headers: &mut HeaderMap, name: &HeaderName, value: &HeaderValue) {
    match headers.get(name).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.is_empty() => {
            let joined = format!("{prev}, {}", value.to_str().unwrap_or(""));
            if let Ok(v) = HeaderValue::from_str(&joined) {
                headers.insert(name.clone(), v);
            }
        }
        _ => {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Appends the client's address, the scheme and the port it reached the router on.
pub fn add_forwarded(headers: &mut HeaderMap, f: &Forwarded) {
    for (name, value) in f.fields() {
        append(headers, name, value);
    }
}

/// The Unix time in milliseconds, as `X-Request-Start` carries it.
pub fn request_start() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sets `X-Request-Start` to the Unix time in milliseconds.
pub fn add_request_start(headers: &mut HeaderMap) {
    headers.insert(X_REQUEST_START.clone(), HeaderValue::from(request_start()));
}

/// True for a request id a client may choose: 20-200 of `[A-Za-z0-9+/=-]`.
pub fn valid_request_id(id: &[u8]) -> bool {
    (20..=200).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-'))
}

/// The request's id: the client's when valid, else a new UUID.
pub fn request_id_of(headers: &HeaderMap) -> HeaderValue {
    match headers.get(&X_REQUEST_ID) {
        Some(id) if valid_request_id(id.as_bytes()) => id.clone(),
        _ => new_request_id(),
    }
}

/// The request's id ([`request_id_of`]), set on the request.
pub fn request_id(headers: &mut HeaderMap) -> HeaderValue {
    let id = request_id_of(headers);
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
}

/// A new request id: a random UUID.
pub fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).expect("a UUID is a header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("connection", "close"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("host", "a.test"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["host"]);
    }

    #[test]
    fn upgrades_keep_their_two_headers() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("keep-alive", "1"),
        ]);
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert!(h.get("keep-alive").is_none());
        assert!(!wants_upgrade(&map(&[("upgrade", "websocket")])));
    }

    #[test]
    fn forwarded_headers_append() {
        let mut h = map(&[("x-forwarded-for", "192.0.2.1")]);
        add_forwarded(
            &mut h,
            &Forwarded::new("::ffff:127.0.0.1".parse().unwrap(), true, 443),
        );
        assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.1, 127.0.0.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(h.get("x-forwarded-port").unwrap(), "443");
        add_request_start(&mut h);
        assert_eq!(h.get("x-request-start").unwrap().len(), 13);
    }

    #[test]
    fn request_ids_are_kept_only_when_well_formed() {
        let good = "abcdefghij0123456789+/=-";
        let mut h = map(&[("x-request-id", good)]);
        assert_eq!(request_id(&mut h), good);
        for bad in ["short", "has space in it 123456789", &"a".repeat(201)] {
            let mut h = map(&[("x-request-id", bad)]);
            let id = request_id(&mut h);
            assert_ne!(id, bad);
            assert_eq!(id.len(), 36);
            assert_eq!(h.get("x-request-id").unwrap(), &id);
        }
    }
}
