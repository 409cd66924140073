//! The router as a whole: the live route table, backends from discoverd, the HTTP, HTTPS and
//! TCP data planes and the API, started together; route updates from a [`RouteSource`]
//! applied one at a time, each swapping in a new table or leaving the last good one.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use flynn_http::server::{Listener, Server};
use flynn_http::service::Shutdown;
use flynn_http::Endpoint;
use router_api::{Certificate, EventKind, Route};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::access_log::AccessLog;
use crate::backends::Discovery;
use crate::events::Events;
use crate::metrics::Metrics;
use crate::proxy::{Proxy, ProxyConfig};
use crate::server::{Connections, HttpListener, ServerConfig};
use crate::source::{RouteSource, Update};
use crate::sticky::Sticky;
use crate::table::{RouteTable, RoutesRefused, TableLimits};
use crate::tcp::TcpRoutes;
use crate::tls::{self, CertError, Resolver};

/// Everything a router is started with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// HTTP listeners.
    pub http: Vec<SocketAddr>,
    /// HTTPS listeners.
    pub https: Vec<SocketAddr>,
    /// The API listener.
    pub api: SocketAddr,
    /// The address TCP routes listen on.
    pub tcp_ip: IpAddr,
    /// The ports TCP routes may use.
    pub tcp_range: RangeInclusive<u16>,
    /// Connection settings.
    pub server: ServerConfig,
    /// Proxy settings.
    pub proxy: ProxyConfig,
    /// The key sealing sticky-session cookies (every router of a cluster shares it).
    pub cookie_key: [u8; 32],
    /// The certificate served when no route's matches.
    pub default_cert: Option<Certificate>,
    /// One JSON line per request on standard output.
    pub access_log: bool,
    /// The longest the public listeners wait, before accepting, for the first route table
    /// and discoverd's state (after it they accept anyway).
    pub ready_timeout: Duration,
}

/// Why a router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The default certificate cannot be used.
    #[error("the default certificate: {0}")]
    DefaultCertificate(#[from] CertError),
    /// The API listener could not be bound.
    #[error("the API listener: {0}")]
    Api(#[from] flynn_http::server::ServerError),
}

/// A running router.
#[derive(Debug)]
pub struct Router {
    table: Arc<ArcSwap<RouteTable>>,
    discovery: Arc<Discovery>,
    events: Events,
    metrics: Arc<Metrics>,
    tcp: Arc<TcpRoutes>,
    limits: TableLimits,
    routes: tokio::sync::Mutex<BTreeMap<String, Route>>,
    connections: Arc<Connections>,
    addrs: Addrs,
    /// True once a route table was installed.
    loaded: watch::Sender<bool>,
    /// True once the public listeners accept.
    serving: watch::Receiver<bool>,
}

/// Where a started router listens (ports resolved when 0 was asked for).
#[derive(Debug, Clone, Default)]
pub struct Addrs {
    /// HTTP listeners.
    pub http: Vec<SocketAddr>,
    /// HTTPS listeners.
    pub https: Vec<SocketAddr>,
    /// The API.
    pub api: Option<SocketAddr>,
}

fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    crate::listen::shared(addr).map_err(|source| StartError::Bind { addr, source })
}

impl Router {
    /// Binds every listener and starts serving (no routes yet: every request gets 404) and
    /// watching `discovery`; runs until `shutdown`.
    pub async fn start(
        settings: Settings,
        discovery: Arc<Discovery>,
        events: Events,
        shutdown: Shutdown,
    ) -> Result<Arc<Router>, StartError> {
        let default_cert = match &settings.default_cert {
            Some(c) => Some(Arc::new(tls::certified_key(c)?)),
            None => None,
        };
        let mut http = Vec::new();
        for a in &settings.http {
            http.push(bind(*a)?);
        }
        let mut https = Vec::new();
        for a in &settings.https {
            https.push(bind(*a)?);
        }
        let api = Listener::bind(&Endpoint::Tcp(settings.api)).await?;
        let mut addrs = Addrs::default();
        for l in &http {
            addrs.http.push(l.local_addr().expect("a bound socket"));
        }
        for l in &https {
            addrs.https.push(l.local_addr().expect("a bound socket"));
        }
        if let Endpoint::Tcp(a) = api.endpoint() {
            addrs.api = Some(a);
        }
        let mut reserved: HashSet<u16> = addrs
            .http
            .iter()
            .chain(&addrs.https)
            .map(|a| a.port())
            .collect();
        reserved.extend(addrs.api.map(|a| a.port()));
        reserved.extend([80, 443]);

        let table = Arc::new(ArcSwap::from_pointee(RouteTable::default()));
        let metrics = Arc::new(Metrics::new());
        let access_log = settings.access_log.then(AccessLog::stdout);
        let proxy = Arc::new(Proxy::new(
            table.clone(),
            Sticky::new(&settings.cookie_key),
            metrics.clone(),
            access_log,
            settings.proxy.clone(),
        ));
        let tcp = Arc::new(TcpRoutes::new(
            settings.tcp_ip,
            table.clone(),
            metrics.clone(),
            settings.proxy.connect_timeout,
            settings
                .server
                .proxy_protocol
                .then_some(settings.server.header_read_timeout),
        ));
        let (serving_tx, serving_rx) = watch::channel(false);
        let router = Arc::new(Router {
            table: table.clone(),
            discovery: discovery.clone(),
            events,
            metrics,
            tcp,
            limits: TableLimits {
                tcp_range: settings.tcp_range.clone(),
                reserved,
            },
            routes: tokio::sync::Mutex::default(),
            connections: Arc::default(),
            addrs,
            loaded: watch::Sender::new(false),
            serving: serving_rx,
        });
        tokio::spawn(discovery.run(shutdown.clone()));
        tokio::spawn(router.clone().open(serving_tx, settings.ready_timeout));
        let server = Arc::new(settings.server.clone());
        let tls = (!https.is_empty()).then(|| {
            TlsAcceptor::from(tls::server_config(Resolver::new(
                table.clone(),
                default_cert,
            )))
        });
        for (listeners, tls) in [(http, None), (https, tls)] {
            for l in listeners {
                let listener = HttpListener {
                    proxy: proxy.clone(),
                    tls: tls.clone(),
                    config: server.clone(),
                    connections: router.connections.clone(),
                    serving: router.serving.clone(),
                };
                tokio::spawn(listener.run(l, shutdown.clone()));
            }
        }
        let api_server = Server::new(crate::api::routes(), router.clone());
        tokio::spawn(api_server.serve(vec![api], shutdown.wait()));
        Ok(router)
    }

    /// Opens the public listeners once the first route table is installed and discoverd's
    /// state loaded, so that a router starting beside another on the same ports (a new
    /// release) answers nothing from an empty table; after `limit` it opens regardless.
    async fn open(self: Arc<Self>, serving: watch::Sender<bool>, limit: Duration) {
        let ready = async {
            let mut loaded = self.loaded.subscribe();
            let _ = loaded.wait_for(|l| *l).await;
            while self.discovery.watches() && !self.discovery.synced() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(limit, ready).await.is_err() {
            tracing::warn!(
                "no route table or discoverd state within {} s; accepting connections anyway",
                limit.as_secs()
            );
        }
        serving.send_replace(true);
    }

    /// Waits until the public listeners accept connections.
    pub async fn serving(&self) {
        let mut serving = self.serving.clone();
        let _ = serving.wait_for(|s| *s).await;
    }

    /// Where it listens.
    pub fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    /// The routes served now (keys left out).
    pub fn routes(&self) -> Vec<Route> {
        self.table
            .load()
            .routes()
            .values()
            .map(Route::redacted)
            .collect()
    }

    /// Backends, from discoverd.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The event stream.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Applies one update: builds the next table from the current routes and swaps it in,
    /// emitting `set` and `remove` for what changed; a refused update changes nothing.
    pub async fn apply(&self, update: Update) -> Result<(), RoutesRefused> {
        let mut routes = self.routes.lock().await;
        let mut next = routes.clone();
        match update {
            Update::Full(all) => {
                next.clear();
                // Duplicate ids must reach the table's check, so build from the list.
                let table = RouteTable::build(all.clone(), &self.limits, &self.discovery)?;
                next.extend(all.into_iter().map(|r| (r.id().to_string(), r)));
                return self.install(&mut routes, next, table).await;
            }
            Update::Set(r) => {
                next.insert(r.id().to_string(), r);
            }
            Update::Remove(id) => {
                next.remove(&id);
            }
        }
        let table = RouteTable::build(
            next.values().cloned().collect(),
            &self.limits,
            &self.discovery,
        )?;
        self.install(&mut routes, next, table).await
    }

    async fn install(
        &self,
        current: &mut BTreeMap<String, Route>,
        next: BTreeMap<String, Route>,
        table: RouteTable,
    ) -> Result<(), RoutesRefused> {
        let table = Arc::new(table);
        self.table.store(table.clone());
        self.tcp.sync(&table).await;
        for (id, old) in current.iter() {
            if !next.contains_key(id) {
                self.events
                    .emit(EventKind::Remove, Some(old.redacted()), None);
            }
        }
        for (id, new) in &next {
            if current.get(id) != Some(new) {
                self.events.emit(EventKind::Set, Some(new.redacted()), None);
            }
        }
        *current = next;
        self.loaded.send_replace(true);
        Ok(())
    }

    /// Applies `source`'s updates until `shutdown`; failures are logged and the last good
    /// table stays.
    pub async fn follow(self: Arc<Self>, mut source: impl RouteSource, shutdown: Shutdown) {
        loop {
            let update = tokio::select! {
                u = source.next() => u,
                _ = shutdown.clone().wait() => return,
            };
            match update {
                Ok(u) => match self.apply(u).await {
                    Ok(()) => {
                        tracing::info!(routes = self.table.load().routes().len(), "routes applied")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "routes refused; the previous table stays")
                    }
                },
                Err(e) => {
                    tracing::error!(error = %flynn_http::error::message_chain(&e), "route source failed; the previous table stays");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Closes TCP route listeners and waits up to `grace` for open HTTP connections.
    pub async fn stop(&self, grace: Duration) {
        self.tcp.close();
        let deadline = tokio::time::Instant::now() + grace;
        while self.connections.open() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
