//! `flynn-controller`: the platform's API of apps, releases, formations and routes.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use controller::{store::Store, Config, Controller};
use flynn_http::server::keys::Keys;
use flynn_http::server::{Listener, Server};
use flynn_http::service::Shutdown;
use flynn_http::Endpoint;

#[derive(Parser)]
#[command(
    name = "flynn-controller",
    about = "The platform's API: apps, artifacts, releases, formations, routes, events"
)]
struct Args {
    /// HTTP API address.
    #[arg(long, env = "LISTEN", default_value = "0.0.0.0:3000")]
    listen: SocketAddr,
    /// API keys, comma-separated (several at once, for rotation); or set AUTH_KEY.
    #[arg(long, env = "AUTH_KEY", hide_env_values = true)]
    key: String,
    /// Domain of each new app's default route (`NAME.DOMAIN`); none: no default routes.
    #[arg(long, env = "DEFAULT_ROUTE_DOMAIN")]
    domain: Option<String>,
    /// Ports TCP routes may use, `FIRST-LAST`.
    #[arg(long, default_value = "3000-3500", value_parser = parse_range)]
    tcp_ports: (u16, u16),
    /// Where the embedded store keeps its file.
    #[arg(long, default_value = "/var/lib/flynn/controller")]
    data: PathBuf,
    /// etcd endpoints (comma-separated `http://HOST:PORT`) to use instead of the embedded store.
    #[arg(long, env = "ETCD_ENDPOINTS", value_delimiter = ',')]
    etcd: Vec<String>,
    /// The cluster's etcd members as flynn-host knew them when it started this job (it sets
    /// this for host-network jobs), connected to beside --etcd, which a release wrote down
    /// once and may name only members that are gone or down since; ignored without --etcd.
    #[arg(long, env = flynn_etcd::CLUSTER_ENDPOINTS_ENV, value_delimiter = ',')]
    cluster_etcd: Vec<String>,
    /// Key prefix in etcd.
    #[arg(long, default_value = "/flynn/controller")]
    etcd_prefix: String,
    /// discoverd's URL, where hosts are found (one-off jobs, kills, logs); none: those
    /// answer 503.
    #[arg(long, env = "DISCOVERD")]
    discoverd: Option<Endpoint>,
    /// The cluster CA certificate (PEM file) served at `/ca-cert`, for clients that pin it.
    #[arg(long, env = "CA_CERT_FILE", conflicts_with = "ca_cert_pem")]
    ca_cert: Option<PathBuf>,
    /// The same as PEM text (a release carries it in its environment).
    #[arg(long, env = "CA_CERT", hide_env_values = true)]
    ca_cert_pem: Option<String>,
    /// Bind the API port with SO_REUSEPORT, so that a second controller on the same state
    /// (etcd) can take over the port while this one still serves (a deploy of the
    /// controller, or bootstrap handing it to the scheduler). Never with an embedded store.
    #[arg(long, env = "LISTEN_REUSE_PORT", requires = "etcd")]
    reuse_port: bool,
    /// The hosts' API token (what `flynn-host daemon` was given).
    #[arg(long, env = "HOST_TOKEN", hide_env_values = true)]
    host_token: Option<String>,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("use FIRST-LAST, like 3000-3500")?;
    let (a, b): (u16, u16) = (
        a.trim().parse().map_err(|e| format!("{a}: {e}"))?,
        b.trim().parse().map_err(|e| format!("{b}: {e}"))?,
    );
    if a > b || a == 0 {
        return Err(format!("{s}: FIRST must be 1..=LAST"));
    }
    Ok((a, b))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    flynn_http::service::run(|shutdown| async move {
        let keys = Keys::parse(&args.key)?;
        let config = Config {
            domain: args
                .domain
                .clone()
                .map(|d| d.trim_matches('.').to_ascii_lowercase()),
            tcp_ports: args.tcp_ports.0..=args.tcp_ports.1,
        };
        if args.etcd.is_empty() {
            std::fs::create_dir_all(&args.data)
                .with_context(|| format!("creating {}", args.data.display()))?;
            let store = controller::embedded::Embedded::open(&args.data.join("controller.redb"))?;
            run(store, &args, config, keys, shutdown).await
        } else {
            let store =
                controller::etcd::Etcd::connect(&args.etcd, &args.cluster_etcd, &args.etcd_prefix)
                    .await?;
            tracing::info!(endpoints = ?args.etcd, members = ?args.cluster_etcd, "etcd store");
            run(store, &args, config, keys, shutdown).await
        }
    })
}

async fn run<S: Store>(
    store: S,
    args: &Args,
    config: Config,
    keys: Keys,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let http = if args.reuse_port {
        Listener::bind_shared(args.listen)?
    } else {
        Listener::bind(&Endpoint::Tcp(args.listen)).await?
    };
    tracing::info!(addr = %args.listen, "controller API");
    let mut controller = Controller::new(store, config);
    if let Some(d) = &args.discoverd {
        let hosts = controller::hosts::Hosts::new(d.clone(), args.host_token.clone());
        controller = controller.with_hosts(hosts);
    }
    let ca_cert = match (&args.ca_cert, &args.ca_cert_pem) {
        (Some(p), _) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        (None, pem) => pem.clone(),
    };
    let state = std::sync::Arc::new(controller::http::State {
        controller,
        keys,
        ca_cert,
    });
    Server::new(controller::http::router(), state)
        .serve(vec![http], shutdown.wait())
        .await;
    Ok(())
}
