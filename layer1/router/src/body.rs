//! The body of every response the proxy sends: a short local answer, or a backend's body
//! streamed frame by frame (never buffered) that, once read to its end, hands the backend
//! connection back to its pool and ends the request's in-flight count (through hyper's
//! client, or read from the socket by [`RawBody`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;

use crate::backends::InFlight;
pub use crate::fast::RawBody;

/// An error a body reports to hyper (which then resets the stream or closes the
/// connection).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body.
#[derive(Debug)]
pub enum ProxyBody {
    /// A local answer (errors, upgrades' empty body).
    Local(Option<Bytes>),
    /// A backend's body, through hyper's client.
    Backend(BackendBody),
    /// A backend's body, read from its socket.
    Raw(RawBody),
}

impl ProxyBody {
    /// A local body of `bytes`.
    pub fn local(bytes: impl Into<Bytes>) -> Self {
        ProxyBody::Local(Some(bytes.into()))
    }

    /// An empty body.
    pub fn empty() -> Self {
        ProxyBody::Local(None)
    }
}

/// A backend's response body, with the connection and in-flight count it holds.
#[derive(Debug)]
pub struct BackendBody {
    inner: Incoming,
    reuse: Option<SendRequest<Incoming>>,
    flight: Option<InFlight>,
}

impl BackendBody {
    /// `inner`, giving `reuse` back to the backend's pool at its end.
    pub fn new(inner: Incoming, reuse: Option<SendRequest<Incoming>>, flight: InFlight) -> Self {
        Self {
            inner,
            reuse,
            flight: Some(flight),
        }
    }

    fn finish(&mut self) {
        if let Some(flight) = self.flight.take() {
            if let Some(sender) = self.reuse.take() {
                flight.backend().pool.put(sender);
            }
        }
    }
}

impl Drop for BackendBody {
    fn drop(&mut self) {
        // A body never polled because it was empty from the start is still whole.
        if self.inner.is_end_stream() {
            self.finish();
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Local(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Backend(b) => {
                let polled = Pin::new(&mut b.inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => b.finish(),
                    Poll::Ready(Some(Err(_))) => {
                        b.reuse = None;
                        b.flight = None;
                    }
                    _ => {}
                }
                polled.map_err(Into::into)
            }
            ProxyBody::Raw(b) => b.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Local(b) => b.is_none(),
            ProxyBody::Backend(b) => b.inner.is_end_stream(),
            ProxyBody::Raw(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Local(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Local(None) => SizeHint::with_exact(0),
            ProxyBody::Backend(b) => b.inner.size_hint(),
            ProxyBody::Raw(b) => b.size_hint(),
        }
    }
}
