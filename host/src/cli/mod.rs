//! The `flynn-host` command line: `daemon` runs the host; every other command is a thin client
//! of its API, with docker-like names and flags, tables for people and `--json` for scripts.

mod attach;
mod bootstrap;
mod daemon;
mod drain;
mod events;
mod images;
mod jobs;
mod join;
mod leave;
mod network;
mod status;
mod volumes;

use flynn_term::table;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use flynn_http::Endpoint;
use host_api::client::Client;

/// Default state directory of the daemon.
pub const DEFAULT_STATE: &str = "/var/lib/flynn";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "flynn-host",
    version,
    about = "Runs jobs from container images on this host"
)]
pub struct Cli {
    /// The daemon's API: unix:///path.sock or http://HOST:PORT.
    #[arg(long, global = true, env = "FLYNN_HOST")]
    pub host: Option<Endpoint>,
    /// Bearer token for a TCP API (default: read from the daemon's state directory).
    #[arg(long, global = true, env = "FLYNN_HOST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the host daemon.
    Daemon(daemon::DaemonArgs),
    /// Start layer 1 as jobs: discoverd; with --domain, a one-host cluster (docs/bootstrap.md).
    Bootstrap(bootstrap::BootstrapArgs),
    /// Join this host to a cluster: the line `flynn-host bootstrap` printed (docs/bootstrap.md).
    Join(join::JoinArgs),
    /// Create and start a job.
    Run(jobs::RunArgs),
    /// List jobs (running ones unless -a).
    Ps(jobs::PsArgs),
    /// Show jobs as JSON.
    Inspect {
        /// Job ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Show a job's output.
    #[command(alias = "logs")]
    Log(jobs::LogArgs),
    /// Stop jobs: SIGTERM, then SIGKILL after the timeout.
    Stop {
        /// Seconds to wait before SIGKILL.
        #[arg(short = 't', long = "time", default_value_t = 10)]
        timeout: u64,
        /// Job ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Send a signal to jobs.
    Kill {
        /// The signal (name or number).
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        /// Job ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Remove ended jobs.
    Rm {
        /// Stop running jobs first.
        #[arg(short, long)]
        force: bool,
        /// Job ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Attach to a running job's input and output.
    Attach {
        /// Job id.
        id: host_api::JobId,
    },
    /// Pull an image.
    Pull {
        /// Image reference.
        image: String,
    },
    /// List images.
    Images(JsonFlag),
    /// Remove images.
    Rmi {
        /// Image names or ids.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Manage volumes.
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    /// Stream events.
    Events(events::EventsArgs),
    /// Show the host's capacity and use.
    Status(JsonFlag),
    /// Take no new jobs and wait for the scheduler to move this host's jobs elsewhere (before
    /// the host leaves the cluster).
    Drain(drain::DrainArgs),
    /// End a drain: take new jobs again.
    Undrain,
    /// Leave the cluster: drain, then remove this host's etcd member (if any), stop its
    /// discoverd and forget the cluster.
    Leave(leave::LeaveArgs),
    /// Remove the job network (bridge, iptables rules) from this host: with the daemon
    /// stopped and every job deleted, as the last step of a teardown.
    NetworkRemove(network::NetworkRemoveArgs),
}

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    fn client(&self) -> Client {
        let endpoint = self.host.clone().unwrap_or_else(host_api::default_endpoint);
        let token = self.token.clone().or_else(|| match endpoint {
            Endpoint::Tcp(_) => std::fs::read_to_string(PathBuf::from(DEFAULT_STATE).join("token"))
                .ok()
                .map(|t| t.trim().to_string()),
            Endpoint::Unix(_) => None,
        });
        Client::new(endpoint, token)
    }
}

/// Runs the command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let c = cli.client();
    match cli.command {
        Command::Daemon(args) => daemon::run(args).await,
        Command::Bootstrap(args) => bootstrap::run(&c, args).await,
        Command::Join(args) => join::run(&c, args).await,
        Command::Run(args) => jobs::run(&c, args).await,
        Command::Ps(args) => jobs::ps(&c, args).await,
        Command::Inspect { ids } => jobs::inspect(&c, &ids).await,
        Command::Log(args) => jobs::log(&c, args).await,
        Command::Stop { timeout, ids } => jobs::stop(&c, timeout, &ids).await,
        Command::Kill { signal, ids } => jobs::kill(&c, &signal, &ids).await,
        Command::Rm { force, ids } => jobs::rm(&c, force, &ids).await,
        Command::Attach { id } => {
            let job = c.job(&id).await?;
            let config = &job.config.config;
            attach::session(&c, &id, config.tty, config.stdin).await
        }
        Command::Pull { image } => images::pull(&c, &image).await.map(|_| 0),
        Command::Images(f) => images::images(&c, f.json).await,
        Command::Rmi { images } => images::rmi(&c, &images).await,
        Command::Volume(cmd) => volumes::volume(&c, cmd).await,
        Command::Events(args) => events::events(&c, args).await,
        Command::Status(f) => status::status(&c, f.json).await,
        Command::Drain(args) => drain::drain(&c, args).await,
        Command::Undrain => drain::undrain(&c).await,
        Command::Leave(args) => leave::run(&c, args).await,
        Command::NetworkRemove(args) => network::remove(&c, args).await,
    }
}
