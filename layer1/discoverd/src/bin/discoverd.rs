//! `discoverd`: the service discovery daemon (HTTP API and DNS).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use flynn_http::server::{Listener, Server};
use flynn_http::service::Shutdown;
use flynn_http::Endpoint;

#[derive(Parser)]
#[command(
    name = "discoverd",
    about = "Service discovery: registrations, watches, leaders, DNS"
)]
struct Args {
    /// HTTP API address.
    #[arg(long, default_value = "0.0.0.0:1111")]
    http: SocketAddr,
    /// DNS (UDP) address; empty to serve no DNS.
    #[arg(long, default_value = "0.0.0.0:53")]
    dns: String,
    /// Resolvers for names outside the zone (default: the nameservers of /etc/resolv.conf).
    #[arg(long = "dns-upstream")]
    upstream: Vec<SocketAddr>,
    /// Refuse names outside the zone at once instead of forwarding them (a cluster with no
    /// resolver to reach: a query waits for no upstream).
    #[arg(long, conflicts_with = "upstream")]
    no_dns_upstream: bool,
    /// Where the embedded store keeps its file.
    #[arg(long, default_value = "/var/lib/flynn/discoverd")]
    data: PathBuf,
    /// etcd endpoints (comma-separated `http://HOST:PORT`) to use instead of the embedded store.
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    /// The cluster's etcd members as flynn-host knew them when it started this job (it sets
    /// this for host-network jobs), connected to beside --etcd, which may name only members
    /// that are gone or down since; ignored without --etcd.
    #[arg(long, env = flynn_etcd::CLUSTER_ENDPOINTS_ENV, value_delimiter = ',')]
    cluster_etcd: Vec<String>,
    /// Key prefix in etcd.
    #[arg(long, default_value = "/flynn/discoverd")]
    etcd_prefix: String,
    /// File holding the platform key that writes need (or set `DISCOVERD_KEY`).
    #[arg(long)]
    key_file: Option<PathBuf>,
}

/// The platform key: from `--key-file`, else from `DISCOVERD_KEY`.
fn platform_key(args: &Args) -> anyhow::Result<discoverd::auth::Keys> {
    let key = match &args.key_file {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("reading the key file {}", p.display()))?,
        None => std::env::var("DISCOVERD_KEY").map_err(|_| {
            anyhow::anyhow!("writes need a platform key: give --key-file PATH or set DISCOVERD_KEY")
        })?,
    };
    Ok(discoverd::auth::Keys::new(&key)?)
}

fn resolv_conf() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    flynn_http::service::run(|shutdown| async move {
        let keys = platform_key(&args)?;
        if args.etcd.is_empty() {
            let store = discoverd::embedded::Embedded::open(&args.data)?;
            run(store, args, keys, shutdown).await
        } else {
            let store =
                discoverd::etcd::Etcd::connect(&args.etcd, &args.cluster_etcd, &args.etcd_prefix)
                    .await?;
            tracing::info!(endpoints = ?args.etcd, members = ?args.cluster_etcd, "etcd store");
            run(store, args, keys, shutdown).await
        }
    })
}

async fn run<S: discoverd::store::Store>(
    store: S,
    args: Args,
    keys: discoverd::auth::Keys,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let registry = discoverd::Registry::start(store).await?;
    let http = Listener::bind(&Endpoint::Tcp(args.http)).await?;
    if !args.dns.is_empty() {
        let dns = tokio::net::UdpSocket::bind(&args.dns)
            .await
            .with_context(|| format!("listening for DNS on {}", args.dns))?;
        tracing::info!(addr = %dns.local_addr()?, "DNS");
        let upstream = if args.no_dns_upstream {
            Vec::new()
        } else if args.upstream.is_empty() {
            resolv_conf()
        } else {
            args.upstream
        };
        let upstream: Vec<SocketAddr> = upstream
            .into_iter()
            .filter(|u| Some(*u) != dns.local_addr().ok())
            .collect();
        tokio::spawn(discoverd::dns::serve(dns, registry.clone(), upstream));
    }
    let state = std::sync::Arc::new(discoverd::http::State { registry, keys });
    Server::new(discoverd::http::router(), state)
        .serve(vec![http], shutdown.wait())
        .await;
    Ok(())
}
