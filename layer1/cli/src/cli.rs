//! The command line: global flags and every command, as clap parses them.

use clap::{Args, Parser, Subcommand};

/// The flynn command: apps, releases and routes of a cluster.
#[derive(Debug, Parser)]
#[command(name = "flynn", version, about, propagate_version = true)]
pub struct Cli {
    /// The app (default: the one the current repository's flynn remote names).
    #[arg(short = 'a', long = "app")]
    pub app: Option<String>,
    /// The cluster (default: FLYNN_CLUSTER, else the default in ~/.flynnrc).
    #[arg(short = 'c', long = "cluster", env = "FLYNN_CLUSTER")]
    pub cluster: Option<String>,
    /// The git remote that names the app.
    #[arg(short = 'r', long = "remote", default_value = "flynn")]
    pub remote: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output as JSON instead of a table.
#[derive(Debug, Args, Clone, Copy)]
pub struct Json {
    /// Print JSON (for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the clusters in ~/.flynnrc (lists them with no subcommand).
    Cluster {
        /// What to do.
        #[command(subcommand)]
        command: Option<ClusterCommand>,
        /// Output.
        #[command(flatten)]
        json: Json,
    },
    /// Create an app (and the flynn git remote when run in a repository).
    Create {
        /// Its name (generated when omitted).
        name: Option<String>,
        /// Do not add the git remote.
        #[arg(long)]
        no_remote: bool,
    },
    /// List apps.
    Apps {
        /// Output.
        #[command(flatten)]
        json: Json,
    },
    /// Show the app's git and web URLs and its current release.
    Info {
        /// Output.
        #[command(flatten)]
        json: Json,
    },
    /// Delete the app (its routes, releases and jobs).
    Delete {
        /// Do not ask.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// List the app's jobs.
    Ps {
        /// Jobs that ended too.
        #[arg(short = 'a', long)]
        all: bool,
        /// Ids only.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Only this process type.
        #[arg(short = 't', long = "type")]
        kind: Option<String>,
        /// Output.
        #[command(flatten)]
        json: Json,
    },
    /// Stop jobs.
    Kill {
        /// Job ids.
        #[arg(required = true)]
        jobs: Vec<String>,
    },
    /// Show or change how many jobs of each process type run.
    Scale {
        /// TYPE=COUNT pairs (none: show the counts).
        counts: Vec<String>,
        /// Do not wait for the jobs.
        #[arg(short = 'n', long)]
        no_wait: bool,
        /// Seconds to wait.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Show the app's log, merged across hosts in time order.
    Log {
        /// Keep following new lines.
        #[arg(short = 'f', long)]
        follow: bool,
        /// The last N lines.
        #[arg(short = 'n', long)]
        lines: Option<u64>,
        /// Only this process type.
        #[arg(short = 't', long = "type")]
        kind: Option<String>,
        /// Only this job.
        #[arg(short = 'j', long)]
        job: Option<String>,
        /// The message only, without time and source.
        #[arg(long)]
        raw: bool,
    },
    /// Run a one-off job of the current release, attached to this terminal.
    Run {
        /// Detached: print the job id and return.
        #[arg(short = 'd', long)]
        detach: bool,
        /// An extra environment variable, K=V (repeatable).
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        /// Another release than the current one.
        #[arg(long)]
        release: Option<String>,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Show or change the app's environment (a change makes a release and deploys it).
    Env {
        /// What to do (none: list).
        #[command(subcommand)]
        command: Option<EnvCommand>,
    },
    /// Show or change the app's metadata (no deploy).
    Meta {
        /// What to do (none: list).
        #[command(subcommand)]
        command: Option<MetaCommand>,
    },
    /// Show or set the resource limits of the app's process types (a change makes a
    /// release and deploys it).
    Limit {
        /// What to do (none: show).
        #[command(subcommand)]
        command: Option<LimitCommand>,
        /// Only this process type.
        #[arg(short = 't', long = "type")]
        kind: Option<String>,
    },
    /// The app's releases.
    Release {
        /// What to do (none: list).
        #[command(subcommand)]
        command: Option<ReleaseCommand>,
        /// Output.
        #[command(flatten)]
        json: Json,
    },
    /// The app's deployments.
    Deployment {
        /// Output.
        #[command(flatten)]
        json: Json,
    },
    /// The app's routes.
    Route {
        /// What to do (none: list).
        #[command(subcommand)]
        command: Option<RouteCommand>,
        /// Output.
        #[command(flatten)]
        json: Json,
    },
    /// Images without Docker.
    Docker {
        /// What to do.
        #[command(subcommand)]
        command: DockerCommand,
    },
    /// The git credential helper (git runs it: flynn cluster add configures it).
    #[command(name = "git-credentials")]
    GitCredentials {
        /// get, store or erase.
        operation: String,
    },
    /// Print the version.
    Version,
    /// Print a shell completion script.
    Completion {
        /// bash, zsh or fish.
        shell: clap_complete::Shell,
    },
}

/// `flynn cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Add a cluster; it also configures git to push to it.
    Add {
        /// Replace a cluster of the same name.
        #[arg(short = 'f', long)]
        force: bool,
        /// Make it the default.
        #[arg(short = 'd', long)]
        default: bool,
        /// The controller (default https://controller.DOMAIN).
        #[arg(long)]
        controller_url: Option<String>,
        /// Where git pushes go (default https://git.DOMAIN).
        #[arg(long)]
        git_url: Option<String>,
        /// The cluster registry for flynn docker push (http://HOST:PORT for plain HTTP).
        #[arg(long)]
        image_url: Option<String>,
        /// Leave the git configuration alone.
        #[arg(long)]
        no_git: bool,
        /// The pin of the cluster CA (base64 SHA-256 of its DER form), as bootstrap prints it.
        #[arg(short = 'p', long)]
        tls_pin: Option<String>,
        /// Its name here.
        name: String,
        /// The cluster's domain.
        domain: String,
        /// The controller key.
        key: String,
    },
    /// Remove a cluster.
    Remove {
        /// Its name.
        name: String,
    },
    /// Show or set the default cluster.
    Default {
        /// The new default.
        name: Option<String>,
    },
}

/// `flynn docker ...`.
#[derive(Debug, Subcommand)]
pub enum DockerCommand {
    /// Push an image (a `docker save` archive, an OCI layout or OCI archive) to the cluster
    /// registry and deploy it as the app's new release.
    Push {
        /// The archive file or layout directory.
        image: std::path::PathBuf,
        /// In a layout of several images, the one to push (its ref name).
        #[arg(long)]
        name: Option<String>,
    },
}

/// `flynn env ...`.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Set variables, K=V.
    Set {
        /// K=V pairs.
        #[arg(required = true)]
        pairs: Vec<String>,
    },
    /// Remove variables.
    Unset {
        /// Names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print one variable.
    Get {
        /// Its name.
        name: String,
    },
}

/// `flynn meta ...`.
#[derive(Debug, Subcommand)]
pub enum MetaCommand {
    /// Set keys, K=V.
    Set {
        /// K=V pairs.
        #[arg(required = true)]
        pairs: Vec<String>,
    },
    /// Remove keys.
    Unset {
        /// Keys.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `flynn limit ...`.
#[derive(Debug, Subcommand)]
pub enum LimitCommand {
    /// Set limits of a process type: memory=512MB cpu=500 max_fd=12k max_procs=300.
    Set {
        /// The process type.
        kind: String,
        /// KEY=VALUE limits.
        #[arg(required = true)]
        limits: Vec<String>,
    },
}

/// `flynn release ...`.
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Show a release (default: the current one).
    Show {
        /// Its id.
        id: Option<String>,
    },
    /// Deploy an earlier release again (default: the one before the current).
    Rollback {
        /// Its id.
        id: Option<String>,
    },
}

/// `flynn route ...`.
#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Add a route.
    Add {
        /// Which kind.
        #[command(subcommand)]
        kind: RouteAdd,
    },
    /// Change an HTTP route's options, by its http/ID.
    Update {
        /// `http/ID`.
        id: String,
        /// The discoverd service.
        #[arg(short = 's', long)]
        service: Option<String>,
        /// Sticky sessions on or off.
        #[arg(long)]
        sticky: Option<bool>,
        /// Leader only on or off.
        #[arg(long)]
        leader: Option<bool>,
        /// Draining on or off.
        #[arg(long)]
        drain_backends: Option<bool>,
        /// One request per backend connection on or off.
        #[arg(long)]
        disable_keep_alives: Option<bool>,
    },
    /// Remove a route, by its TYPE/ID (as listed).
    Remove {
        /// `http/ID` or `tcp/ID`.
        id: String,
    },
}

/// `flynn route add ...`.
#[derive(Debug, Subcommand)]
pub enum RouteAdd {
    /// An HTTP route: DOMAIN or DOMAIN/PATH.
    Http {
        /// The discoverd service (default APP-web).
        #[arg(short = 's', long)]
        service: Option<String>,
        /// A PEM certificate chain file for the domain.
        #[arg(short = 'c', long, requires = "key")]
        tls_cert: Option<std::path::PathBuf>,
        /// Its PEM private key file.
        #[arg(short = 'k', long = "tls-key", requires = "tls_cert")]
        key: Option<std::path::PathBuf>,
        /// Send a client's requests to one backend.
        #[arg(long)]
        sticky: bool,
        /// Only the service's leader.
        #[arg(long)]
        leader: bool,
        /// Stop backends at once instead of draining them.
        #[arg(long)]
        no_drain_backends: bool,
        /// One request per backend connection.
        #[arg(long)]
        disable_keep_alives: bool,
        /// DOMAIN[/PATH].
        target: String,
    },
    /// A TCP route on a router port.
    Tcp {
        /// The discoverd service (default APP-web).
        #[arg(short = 's', long)]
        service: Option<String>,
        /// The router port (in the routers' TCP range).
        #[arg(short = 'p', long)]
        port: u16,
        /// Only the service's leader.
        #[arg(long)]
        leader: bool,
        /// Stop backends at once instead of draining them.
        #[arg(long)]
        no_drain_backends: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn app_and_cluster_come_before_the_command() {
        let cli = Cli::parse_from(["flynn", "-a", "web", "-c", "prod", "ps", "-a"]);
        assert_eq!(cli.app.as_deref(), Some("web"));
        assert_eq!(cli.cluster.as_deref(), Some("prod"));
        assert!(matches!(cli.command, Command::Ps { all: true, .. }));
        let cli = Cli::parse_from(["flynn", "run", "--", "sh", "-c", "exit 3"]);
        let Command::Run { command, .. } = cli.command else {
            panic!("run")
        };
        assert_eq!(command, ["sh", "-c", "exit 3"]);
    }
}
