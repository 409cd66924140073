//! A TCP proxy in front of one gRPC server (HTTP/2 without TLS, as etcd's clients speak to
//! it here) that breaks a connection at a chosen request: before the request reaches the
//! server, or after the server has answered it (so it was applied) but before the answer
//! reaches the client. The request is picked by bytes its message carries (a key), found in
//! the HTTP/2 DATA frames the client sends; everything else passes through untouched.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Where the next request carrying the marker loses its connection.
#[derive(Debug, Clone)]
pub enum Cut {
    /// The request is not forwarded; its connection is closed.
    Request(Vec<u8>),
    /// The request is forwarded; the server's answer to it is dropped and its connection
    /// closed.
    Answer(Vec<u8>),
}

#[derive(Debug, Default)]
struct Shared {
    plan: Mutex<Option<Cut>>,
    cuts: AtomicUsize,
}

/// A running proxy; it stops with the tokio runtime it was started on.
#[derive(Debug, Clone)]
pub struct GrpcCut {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// The client's connection preface, before its first frame.
const PREFACE: usize = 24;
/// An HTTP/2 frame header's length.
const HEADER: usize = 9;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;

impl GrpcCut {
    /// Starts a proxy on a free loopback port in front of `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, s.clone()));
            }
        });
        Self { addr, shared }
    }

    /// A proxy in front of the etcd member at `endpoint` (`http://HOST:PORT`) and a client
    /// connected through it alone (it never follows the members, so every request passes).
    pub async fn etcd(endpoint: &str) -> (Self, flynn_etcd::Client) {
        let target = endpoint.trim_start_matches("http://").parse().unwrap();
        let cut = Self::start(target).await;
        let client = flynn_etcd::connect(&[cut.endpoint()], std::time::Duration::from_secs(5))
            .await
            .unwrap();
        (cut, client)
    }

    /// The proxy's endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Breaks the connection of the next request carrying the marker, as `cut` says.
    pub fn arm(&self, cut: Cut) {
        *self.shared.plan.lock().unwrap() = Some(cut);
    }

    /// How many connections it has broken.
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::SeqCst)
    }
}

/// Complete frames at the front of `buf` (after `skip` bytes that are not frames): their
/// (type, stream, payload range) and where the last one ends.
fn frames(buf: &[u8], skip: usize) -> (Vec<(u8, u32, std::ops::Range<usize>)>, usize) {
    let mut out = Vec::new();
    let mut at = skip.min(buf.len());
    if buf.len() < skip {
        return (out, 0);
    }
    while buf.len() >= at + HEADER {
        let h = &buf[at..at + HEADER];
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        if buf.len() < at + HEADER + len {
            break;
        }
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        out.push((h[3], stream, at + HEADER..at + HEADER + len));
        at += HEADER + len;
    }
    (out, at)
}

/// Relays one connection until either side closes it or a cut ends it.
async fn relay(mut client: TcpStream, mut server: TcpStream, shared: Arc<Shared>) {
    let (mut up, mut down) = (Vec::new(), Vec::new());
    let mut preface_left = PREFACE;
    // Streams whose answer is to be dropped.
    let mut doomed: HashSet<u32> = HashSet::new();
    let (mut from_client, mut from_server) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        tokio::select! {
            n = client.read(&mut from_client) => {
                let Ok(n @ 1..) = n else { return };
                up.extend_from_slice(&from_client[..n]);
                let (found, end) = frames(&up, preface_left);
                if end == 0 {
                    continue;
                }
                for (kind, stream, payload) in &found {
                    if *kind != DATA {
                        continue;
                    }
                    let mut plan = shared.plan.lock().unwrap();
                    let hit = match plan.as_ref() {
                        Some(Cut::Request(m)) | Some(Cut::Answer(m)) => {
                            up[payload.clone()].windows(m.len()).any(|w| w == m.as_slice())
                        }
                        None => false,
                    };
                    if !hit {
                        continue;
                    }
                    match plan.take() {
                        Some(Cut::Request(_)) => {
                            shared.cuts.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        _ => {
                            doomed.insert(*stream);
                        }
                    }
                }
                if server.write_all(&up[..end]).await.is_err() {
                    return;
                }
                up.drain(..end);
                preface_left = 0;
            }
            n = server.read(&mut from_server) => {
                let Ok(n @ 1..) = n else { return };
                down.extend_from_slice(&from_server[..n]);
                let (found, end) = frames(&down, 0);
                if found
                    .iter()
                    .any(|(kind, stream, _)| *kind == HEADERS && doomed.contains(stream))
                {
                    shared.cuts.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                if client.write_all(&down[..end]).await.is_err() {
                    return;
                }
                down.drain(..end);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_whole_and_partial_ones_wait() {
        let mut buf = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        buf.extend_from_slice(&[0, 0, 3, DATA, 1, 0, 0, 0, 5, b'a', b'b', b'c']);
        buf.extend_from_slice(&[0, 0, 4, HEADERS, 4, 0, 0, 0, 7, b'x']);
        let (found, end) = frames(&buf, PREFACE);
        assert_eq!(found, vec![(DATA, 5, 33..36)]);
        assert_eq!(end, 36);
        assert_eq!(frames(&buf[..10], PREFACE), (vec![], 0));
    }
}
