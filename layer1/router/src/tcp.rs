//! TCP routes: a listener per routed port, bound when a route for it appears and closed when
//! it goes (open connections stay); each connection goes to a backend of the route's
//! service (another on a connect failure), optionally after a PROXY v2 header, and bytes are
//! copied both ways with half-close.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::pool::dial;
use crate::proxy::MAX_ATTEMPTS;
use crate::proxy_protocol::{self, Prefixed};
use crate::table::RouteTable;

/// The TCP side of the router.
#[derive(Debug)]
pub struct TcpRoutes {
    ip: IpAddr,
    table: Arc<ArcSwap<RouteTable>>,
    metrics: Arc<Metrics>,
    connect_timeout: Duration,
    proxy_protocol: Option<Duration>,
    listeners: Mutex<HashMap<u16, JoinHandle<()>>>,
}

impl TcpRoutes {
    /// TCP routes on `ip`; with `proxy_protocol`, each connection must start with a PROXY
    /// header within that time.
    pub fn new(
        ip: IpAddr,
        table: Arc<ArcSwap<RouteTable>>,
        metrics: Arc<Metrics>,
        connect_timeout: Duration,
        proxy_protocol: Option<Duration>,
    ) -> Self {
        Self {
            ip,
            table,
            metrics,
            connect_timeout,
            proxy_protocol,
            listeners: Mutex::default(),
        }
    }

    /// Binds the ports of `table`'s TCP routes not yet bound and closes those no route has
    /// any more. A port that cannot be bound is logged and tried again at the next sync.
    pub async fn sync(self: &Arc<Self>, table: &RouteTable) {
        let wanted: Vec<u16> = table.tcp_ports().collect();
        let mut to_bind = Vec::new();
        {
            let mut listeners = self.listeners.lock().expect("tcp listeners lock");
            listeners.retain(|port, task| {
                let keep = wanted.contains(port) && !task.is_finished();
                if !keep {
                    task.abort();
                    tracing::info!(port, "TCP route listener closed");
                }
                keep
            });
            to_bind.extend(wanted.iter().filter(|p| !listeners.contains_key(p)));
        }
        for port in to_bind {
            match crate::listen::shared(SocketAddr::new(self.ip, port)) {
                Ok(listener) => {
                    tracing::info!(port, "TCP route listener bound");
                    let this = self.clone();
                    let task = tokio::spawn(async move { this.accept(listener, port).await });
                    self.listeners
                        .lock()
                        .expect("tcp listeners lock")
                        .insert(port, task);
                }
                Err(e) => tracing::error!(port, error = %e, "cannot listen for a TCP route"),
            }
        }
    }

    /// Closes every listener.
    pub fn close(&self) {
        for (_, task) in self.listeners.lock().expect("tcp listeners lock").drain() {
            task.abort();
        }
    }

    async fn accept(self: Arc<Self>, listener: TcpListener, port: u16) {
        loop {
            match listener.accept().await {
                Ok((stream, addr)) => {
                    let this = self.clone();
                    tokio::spawn(async move { this.connection(stream, addr, port).await });
                }
                Err(e) => {
                    tracing::warn!(port, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn connection(&self, stream: TcpStream, addr: SocketAddr, port: u16) {
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .unwrap_or(SocketAddr::new(self.ip, port));
        let (client, mut stream) = match self.proxy_protocol {
            Some(timeout) => match proxy_protocol::accept(stream, timeout).await {
                Ok((client, s)) => (client.unwrap_or(addr), s),
                Err(e) => {
                    tracing::debug!(client = %addr, error = %e, "connection refused");
                    return;
                }
            },
            None => (addr, Prefixed::new(stream)),
        };
        let Some(entry) = self.table.load().tcp(port).cloned() else {
            return;
        };
        let route = &entry.route;
        let mut tried = Vec::new();
        let (flight, mut upstream) = loop {
            let Some(backend) = entry.service.pick(route.leader, &tried) else {
                self.metrics.tcp_connection(&route.id, 503);
                tracing::debug!(route = %route.id, "no backend for a TCP connection");
                return;
            };
            tried.push(backend.addr);
            // Counted before the dial, so a backend that leaves meanwhile waits for it.
            let Some(flight) = backend.begin() else {
                continue;
            };
            match dial(backend.addr, self.connect_timeout).await {
                Ok(s) => break (flight, s),
                Err(e) => {
                    tracing::warn!(route = %route.id, error = %e, "backend connect failed");
                    backend.eject();
                    if tried.len() >= MAX_ATTEMPTS {
                        self.metrics.tcp_connection(&route.id, 502);
                        return;
                    }
                }
            }
        };
        self.metrics.tcp_connection(&route.id, 0);
        let backend = flight.backend().clone();
        if route.send_proxy_protocol {
            let header = proxy_protocol::v2_header(client, local);
            if upstream.write_all(&header).await.is_err() {
                return;
            }
        }
        let drain = route.drain_backends;
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut stream, &mut upstream) => {
                if let Err(e) = r {
                    tracing::debug!(route = %route.id, error = %e, "TCP connection ended");
                }
            }
            _ = backend.gone(), if !drain => {}
        }
        drop(flight);
    }
}
