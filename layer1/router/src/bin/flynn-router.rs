//! `flynn-router`: the platform's HTTP/TCP router. Every setting is a flag and an
//! environment variable (`flynn-router --help`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use discoverd_api::client::Client as Discoverd;
use discoverd_api::{Proto, Registration};
use router::cli::Args;
use router::{ControllerSource, Discovery, Events, FileSource, Router};

/// jemalloc, whose background thread gives freed memory back to the system within about a
/// second: the buffers of connections that went idle (parked) stop counting, where the
/// system allocator keeps them resident between live allocations.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main` (its `malloc_conf`, a C string).
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: Option<&'static u8> =
    Some(&b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0]);

/// Lets the router hold as many connections as the hard limit allows.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
            tracing::warn!(soft, hard, "cannot raise the open files limit");
        }
    }
}

fn registration(ip: std::net::IpAddr, addr: SocketAddr) -> Registration {
    Registration {
        addr: SocketAddr::new(ip, addr.port()),
        proto: Proto::Tcp,
        meta: Default::default(),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    flynn_http::service::run_on(args.threads, |shutdown| async move {
        raise_fd_limit();
        let settings = args.settings()?;
        let grace = settings.server.shutdown_grace;
        let mut discoverd = Discoverd::new(args.discoverd.clone());
        if let Some(key) = &args.discoverd_key {
            discoverd = discoverd.with_key(key);
        }
        let events = Events::new();
        let discovery = Arc::new(Discovery::new(discoverd.clone(), events.clone()));
        let router = Router::start(settings, discovery, events, shutdown.clone())
            .await
            .context("starting the router")?;
        let addrs = router.addrs().clone();
        tracing::info!(http = ?addrs.http, https = ?addrs.https, api = ?addrs.api, "router listening");
        match (&args.routes_file, &args.controller) {
            (Some(file), _) => tokio::spawn(router.clone().follow(
                FileSource::with_interval(file, args.routes_poll),
                shutdown.clone(),
            )),
            (None, Some(controller)) => {
                let key = args.controller_key.as_deref().unwrap_or_default();
                let client = controller_api::client::Client::new(controller.clone(), key);
                tokio::spawn(
                    router
                        .clone()
                        .follow(ControllerSource::new(client), shutdown.clone()),
                )
            }
            (None, None) => anyhow::bail!("give --routes-file or --controller"),
        };
        // Registered once it serves: a scheduler counts a new router up from then on.
        tokio::select! {
            _ = router.serving() => {}
            _ = shutdown.clone().wait() => {}
        }
        let mut heartbeats = Vec::new();
        let advertise = args.advertise_ip.or(args.external_ip);
        if let Some(ip) = advertise.filter(|_| !shutdown.is_triggered()) {
            let ttl = Duration::from_secs(discoverd_api::DEFAULT_TTL);
            if let Some(http) = addrs.http.first() {
                heartbeats.push(discoverd.keep_registered(
                    "router-http",
                    &args.id,
                    registration(ip, *http),
                    ttl,
                ));
            }
            if let Some(api) = addrs.api {
                heartbeats.push(discoverd.keep_registered(
                    "router-api",
                    &args.id,
                    registration(ip, api),
                    ttl,
                ));
            }
        }
        shutdown.wait().await;
        tracing::info!("shutting down");
        for h in heartbeats {
            let _ = h.stop().await;
        }
        router.stop(grace).await;
        Ok::<_, anyhow::Error>(())
    })
}
