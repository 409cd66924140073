//! The router's public listeners (HTTP, HTTPS, TCP routes), bound with `SO_REUSEPORT`: a
//! second router on the same host (the next release, started before the old one stops) binds
//! the same ports, the kernel spreads new connections over both, and when the old one closes
//! its listeners, connections it had not yet accepted move to the new one (the host sets
//! `net.ipv4.tcp_migrate_req`).

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// The accept queue's length (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: u32 = 4096;

/// Binds `addr` as a listener other processes of the same user may bind as well.
pub fn shared(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_listeners_share_a_port_and_the_survivor_takes_new_connections() {
        let first = shared("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let second = shared(addr).expect("the same port again");
        drop(first);
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = second.accept().await.unwrap();
        assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
    }

    #[tokio::test]
    async fn a_port_held_without_reuseport_is_refused() {
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = shared(plain.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
