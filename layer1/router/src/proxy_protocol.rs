//! PROXY protocol v1 and v2: read on listeners behind a load balancer (the client's address
//! comes from the header, not the socket), written to TCP backends that ask for it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ppp::{HeaderResult, PartialResult};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The longest header either version allows here (v1: 107 bytes; v2: 16 + addresses + TLVs).
const MAX_HEADER: usize = 1024;
/// The longest v1 header (the protocol's own limit).
const V1_MAX: usize = 107;

/// Why a connection's PROXY header was refused (the connection is closed).
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The connection did not start with a PROXY header.
    #[error("the connection did not start with a PROXY protocol header (is the load balancer sending one? turn PROXY protocol off on this router if not)")]
    Missing,
    /// The header is malformed.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(String),
    /// The header did not arrive in time.
    #[error("no complete PROXY protocol header within {0:?}")]
    Timeout(Duration),
    /// Reading failed.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] io::Error),
}

/// The source address a header names: `Some` for proxied TCP, `None` for `LOCAL`/`UNKNOWN`
/// (health checks of the load balancer itself; the socket's peer stands).
fn source(header: &HeaderResult<'_>) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    match header {
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            ppp::v1::Addresses::Tcp4(a) => Some((a.source_address, a.source_port).into()),
            ppp::v1::Addresses::Tcp6(a) => Some((a.source_address, a.source_port).into()),
            ppp::v1::Addresses::Unknown => None,
        }),
        HeaderResult::V2(Ok(h)) => Ok(match h.addresses {
            ppp::v2::Addresses::IPv4(a) => Some((a.source_address, a.source_port).into()),
            ppp::v2::Addresses::IPv6(a) => Some((a.source_address, a.source_port).into()),
            _ => None,
        }),
        HeaderResult::V1(Err(e)) => Err(ProxyHeaderError::Malformed(format!("{e:?}"))),
        HeaderResult::V2(Err(e)) => Err(ProxyHeaderError::Malformed(format!("{e:?}"))),
    }
}

fn header_len(header: &HeaderResult<'_>) -> usize {
    match header {
        HeaderResult::V1(Ok(h)) => h.header.len(),
        HeaderResult::V2(Ok(h)) => h.len(),
        _ => 0,
    }
}

/// Parses a complete header at the start of `buf`: `Ok(None)` when more bytes are needed,
/// else the source address and the header's length.
pub fn parse(buf: &[u8]) -> Result<Option<(Option<SocketAddr>, usize)>, ProxyHeaderError> {
    if !buf.is_empty() && buf[0] != b'P' && buf[0] != 0x0d {
        return Err(ProxyHeaderError::Missing);
    }
    // A v1 header is one line: parse it only once its end has arrived (a cut line can
    // look like a complete one with a shorter port).
    if buf.first() == Some(&b'P') {
        match buf.windows(2).position(|w| w == b"\r\n") {
            None if buf.len() > V1_MAX => {
                return Err(ProxyHeaderError::Malformed(
                    "v1 header longer than 107 bytes".into(),
                ))
            }
            None => return Ok(None),
            Some(_) => {}
        }
    }
    let header = HeaderResult::parse(buf);
    if header.is_incomplete() {
        if buf.len() >= MAX_HEADER {
            return Err(ProxyHeaderError::Malformed("header too long".into()));
        }
        return Ok(None);
    }
    Ok(Some((source(&header)?, header_len(&header))))
}

/// Reads the PROXY header from the start of `stream`: the client's address (if the header
/// names one) and the stream with any bytes read past the header put back in front.
pub async fn accept<S: AsyncRead + Unpin>(
    mut stream: S,
    timeout: Duration,
) -> Result<(Option<SocketAddr>, Prefixed<S>), ProxyHeaderError> {
    let mut buf = BytesMut::with_capacity(256);
    let read = async {
        loop {
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(ProxyHeaderError::Missing);
            }
            if let Some(found) = parse(&buf)? {
                return Ok(found);
            }
        }
    };
    let (addr, len) = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ProxyHeaderError::Timeout(timeout))??;
    buf.advance(len);
    Ok((
        addr,
        Prefixed {
            head: buf,
            inner: stream,
        },
    ))
}

/// A v2 `PROXY` header for a TCP connection from `client` to `local`.
pub fn v2_header(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    use ppp::v2::{Builder, Command, Protocol, Version};
    let (client, local) = match (client, local) {
        (SocketAddr::V4(_), SocketAddr::V6(l)) => (
            SocketAddr::new(client.ip().to_canonical(), client.port()),
            SocketAddr::new(l.ip().to_canonical(), l.port()),
        ),
        pair => pair,
    };
    Builder::with_addresses(
        Version::Two | Command::Proxy,
        Protocol::Stream,
        (client, local),
    )
    .build()
    .expect("writing to a Vec cannot fail")
}

/// A stream with bytes already read from it put back in front.
#[derive(Debug)]
pub struct Prefixed<S> {
    head: BytesMut,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner` with nothing in front.
    pub fn new(inner: S) -> Self {
        Self {
            head: BytesMut::new(),
            inner,
        }
    }

    /// Puts `bytes` (read from the stream but not consumed) back in front of what is left.
    pub fn put_back(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut head = BytesMut::with_capacity(bytes.len() + self.head.len());
        head.extend_from_slice(bytes);
        head.extend_from_slice(&self.head);
        self.head = head;
    }

    /// The bytes waiting in front.
    pub fn buffered(&self) -> &[u8] {
        &self.head
    }

    /// The stream behind.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.remaining());
            buf.put_slice(&self.head[..n]);
            self.head.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_put_back_are_read_first() {
        use tokio::io::AsyncWriteExt;
        let (mut a, b) = tokio::io::duplex(64);
        let mut p = Prefixed::new(b);
        p.put_back(b"lo");
        p.put_back(b"hel");
        a.write_all(b" world").await.unwrap();
        drop(a);
        let mut out = String::new();
        p.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    #[test]
    fn v1_tcp4_and_unknown() {
        let h = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
        let (addr, len) = parse(h).unwrap().unwrap();
        assert_eq!(addr, Some("192.0.2.7:56324".parse().unwrap()));
        assert_eq!(&h[len..], b"GET / HTTP/1.1\r\n");
        let (addr, _) = parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap();
        assert_eq!(addr, None);
    }

    #[test]
    fn partial_headers_wait_for_more_bytes_at_every_split() {
        let h = b"PROXY TCP6 2001:db8::1 2001:db8::2 1000 2000\r\n";
        for i in 0..h.len() {
            assert!(parse(&h[..i]).unwrap().is_none(), "split at {i}");
        }
        let (addr, len) = parse(h).unwrap().unwrap();
        assert_eq!(addr, Some("[2001:db8::1]:1000".parse().unwrap()));
        assert_eq!(len, h.len());
    }

    #[test]
    fn v2_round_trip_and_every_split() {
        let client: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let h = v2_header(client, "127.0.0.1:3001".parse().unwrap());
        for i in 0..h.len() {
            assert!(parse(&h[..i]).unwrap().is_none(), "split at {i}");
        }
        let mut with_data = h.clone();
        with_data.extend_from_slice(b"hello");
        let (addr, len) = parse(&with_data).unwrap().unwrap();
        assert_eq!(addr, Some(client));
        assert_eq!(&with_data[len..], b"hello");
    }

    #[test]
    fn plain_requests_and_garbage_are_refused() {
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n"),
            Err(ProxyHeaderError::Missing)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 not-an-ip 198.51.100.1 1 2\r\n"),
            Err(ProxyHeaderError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn accept_puts_back_what_follows_the_header() {
        let data: &[u8] = b"PROXY TCP4 192.0.2.7 198.51.100.1 5 6\r\npayload";
        let (addr, mut s) = accept(data, Duration::from_secs(1)).await.unwrap();
        assert_eq!(addr, Some("192.0.2.7:5".parse().unwrap()));
        let mut rest = String::new();
        s.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "payload");
    }
}
