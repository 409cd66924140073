//! `flynn-scheduler`: runs the controller's formations as jobs on the cluster's hosts.

use std::net::SocketAddr;

use clap::Parser;
use flynn_http::server::{Listener, Server};
use flynn_http::Endpoint;

#[derive(Parser)]
#[command(
    name = "flynn-scheduler",
    about = "Runs the controller's formations as jobs on the hosts registered in discoverd"
)]
struct Args {
    /// The controller's URL.
    #[arg(long, env = "CONTROLLER_URL")]
    controller: Endpoint,
    /// A controller key (also the key of this scheduler's own /status API).
    #[arg(long, env = "CONTROLLER_KEY", hide_env_values = true)]
    controller_key: String,
    /// discoverd's URL.
    #[arg(long, env = "DISCOVERD", default_value = "http://127.0.0.1:1111")]
    discoverd: Endpoint,
    /// The platform key discoverd registrations need.
    #[arg(long, env = "DISCOVERD_KEY", hide_env_values = true)]
    discoverd_key: Option<String>,
    /// The hosts' API token (the `token` file of their state directories).
    #[arg(long, env = "HOST_TOKEN", hide_env_values = true)]
    host_token: String,
    /// Where to serve /ping and /status.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
    /// Bind --listen with SO_REUSEPORT, so that a scheduler's successor on the same host
    /// (bootstrap handing it to the scheduler, a deploy) can bind it while this one runs.
    #[arg(long, env = "LISTEN_REUSE_PORT")]
    reuse_port: bool,
    /// The address registered in discoverd (default: --listen).
    #[arg(long, env = "ADVERTISE")]
    advertise: Option<SocketAddr>,
    /// This scheduler's id in discoverd (default: the job id the platform gives its jobs,
    /// `FLYNN_JOB_ID`, else a new one).
    #[arg(long, env = "SCHEDULER_ID")]
    id: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    flynn_http::service::run(|shutdown| async move {
        let mut discoverd = discoverd_api::client::Client::new(args.discoverd.clone());
        if let Some(k) = &args.discoverd_key {
            discoverd = discoverd.with_key(k.clone());
        }
        let id = args
            .id
            .clone()
            .or_else(|| std::env::var("FLYNN_JOB_ID").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let http = if args.reuse_port {
            Listener::bind_shared(args.listen)?
        } else {
            Listener::bind(&Endpoint::Tcp(args.listen)).await?
        };
        let config = scheduler::Config {
            controller: controller_api::client::Client::new(
                args.controller.clone(),
                &args.controller_key,
            ),
            discoverd,
            host_token: args.host_token.clone(),
            id: id.clone(),
            advertise: args.advertise.unwrap_or(args.listen),
        };
        tracing::info!(%id, listen = %args.listen, "scheduler");
        let status = scheduler::start(config);
        Server::new(scheduler::http::router(), status)
            .tcp_token(args.controller_key.clone(), "it is the controller key")
            .serve(vec![http], shutdown.wait())
            .await;
        Ok::<_, anyhow::Error>(())
    })
}
