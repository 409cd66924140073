//! The `flynn` command-line client: clusters in `~/.flynnrc` ([`config`]), the app of the
//! working directory and the git credential helper ([`git`]), the command line ([`cli`])
//! and one module per group of commands ([`cmd`]), all through the controller's API.

pub mod cli;
pub mod cmd;
pub mod config;
pub mod error;
pub mod git;

use std::net::ToSocketAddrs;
use std::path::PathBuf;

use controller_api::client::Client;
use flynn_http::Endpoint;

use crate::config::{Cluster, Config};
use crate::error::CliError;

/// What every command works with: the configuration, the cluster and app chosen.
#[derive(Debug)]
pub struct Ctx {
    /// The configuration.
    pub config: Config,
    /// Where it is.
    pub config_path: PathBuf,
    /// `-c`.
    pub cluster: Option<String>,
    /// `-a`.
    pub app: Option<String>,
    /// `-r`.
    pub remote: String,
}

impl Ctx {
    /// The context of a command line, reading `~/.flynnrc`.
    pub fn new(cli: &cli::Cli) -> Result<Self, CliError> {
        let config_path = config::path();
        Ok(Self {
            config: Config::load(&config_path)?,
            config_path,
            cluster: cli.cluster.clone(),
            app: cli.app.clone(),
            remote: cli.remote.clone(),
        })
    }

    /// The cluster chosen.
    pub fn cluster(&self) -> Result<&Cluster, CliError> {
        self.config.select(self.cluster.as_deref())
    }

    /// A client of the chosen cluster's controller.
    pub fn api(&self) -> Result<Client, CliError> {
        let c = self.cluster()?;
        controller(c)
    }

    /// The app: `-a`, else the one the repository's remote names.
    pub fn app(&self) -> Result<String, CliError> {
        if let Some(a) = &self.app {
            return Ok(a.clone());
        }
        let c = self.cluster()?;
        let dir = std::env::current_dir()?;
        git::app_of_repo(&dir, c, &self.remote).ok_or(CliError::NoApp)
    }

    /// The chosen cluster's domain (its git URL's host without `git.`).
    pub fn domain(&self) -> Result<String, CliError> {
        let c = self.cluster()?;
        Ok(domain_of(&c.git_url))
    }
}

/// The domain a git URL `http://git.DOMAIN[:PORT]` belongs to.
pub fn domain_of(git_url: &str) -> String {
    let host = git_url
        .split_once("://")
        .map_or(git_url, |(_, r)| r)
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    host.strip_prefix("git.").unwrap_or(host).to_string()
}

/// A client of cluster `c`'s controller: `http://ADDR:PORT`, or `http://NAME[:PORT]`
/// resolved here and named in the Host header (a controller behind a router).
pub fn controller(c: &Cluster) -> Result<Client, CliError> {
    let url = c.controller_url.trim_end_matches('/');
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(CliError::usage(format!(
            "controller URL {url:?} of cluster {:?}: only http:// URLs are supported; run flynn cluster add -f with --controller-url http://HOST:PORT",
            c.name
        )));
    };
    if let Ok(e) = url.parse::<Endpoint>() {
        return Ok(Client::new(e, &c.key));
    }
    let with_port = if rest.contains(':') {
        rest.to_string()
    } else {
        format!("{rest}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            CliError::usage(format!(
                "cannot resolve the controller of cluster {:?} ({url}): check the name, or use --controller-url http://ADDR:PORT",
                c.name
            ))
        })?;
    Ok(Client::new(Endpoint::Tcp(addr), &c.key).with_host(rest))
}

/// Runs a command line; returns the process's exit code.
pub async fn run(cli: cli::Cli) -> Result<i32, CliError> {
    let mut ctx = Ctx::new(&cli)?;
    let result = dispatch(&mut ctx, cli.command).await;
    match result {
        Err(CliError::Api(e)) if e.status() == Some(401) => {
            let name = ctx.cluster().map(|c| c.name.clone()).unwrap_or_default();
            Err(CliError::usage(format!(
                "the controller of cluster {name:?} refused its key: check it, and run flynn cluster add -f with the right one"
            )))
        }
        r => r,
    }
}

async fn dispatch(ctx: &mut Ctx, command: cli::Command) -> Result<i32, CliError> {
    use cli::Command as C;
    let ctx = &mut *ctx;
    match command {
        C::Cluster { command, json } => cmd::cluster::run(ctx, command, json.json).map(|_| 0),
        C::Create { name, no_remote } => cmd::apps::create(ctx, name, no_remote).await.map(|_| 0),
        C::Apps { json } => cmd::apps::list(ctx, json.json).await.map(|_| 0),
        C::Info { json } => cmd::apps::info(ctx, json.json).await.map(|_| 0),
        C::Delete { yes } => cmd::apps::delete(ctx, yes).await.map(|_| 0),
        C::Ps {
            all,
            quiet,
            kind,
            json,
        } => cmd::jobs::ps(ctx, all, quiet, kind, json.json)
            .await
            .map(|_| 0),
        C::Kill { jobs } => cmd::jobs::kill(ctx, &jobs).await.map(|_| 0),
        C::Scale {
            counts,
            no_wait,
            timeout,
        } => cmd::scale::run(ctx, &counts, no_wait, timeout)
            .await
            .map(|_| 0),
        C::Log {
            follow,
            lines,
            kind,
            job,
            raw,
        } => {
            let r = controller_api::client::LogRequest {
                follow,
                lines,
                job_id: job,
                process_type: kind,
            };
            cmd::jobs::log(ctx, &r, raw).await.map(|_| 0)
        }
        C::Run {
            detach,
            env,
            release,
            command,
        } => cmd::run::run(ctx, detach, &env, release, command).await,
        C::Env { command } => cmd::env::env(ctx, command).await.map(|_| 0),
        C::Meta { command } => cmd::env::meta(ctx, command).await.map(|_| 0),
        C::Limit { command, kind } => {
            let set = command.map(|cli::LimitCommand::Set { kind, limits }| (kind, limits));
            cmd::limit::run(ctx, kind, set).await.map(|_| 0)
        }
        C::Release { command, json } => cmd::release::run(ctx, command, json.json).await.map(|_| 0),
        C::Deployment { json } => cmd::release::deployments(ctx, json.json).await.map(|_| 0),
        C::Route { command, json } => cmd::route::run(ctx, command, json.json).await.map(|_| 0),
        C::Docker {
            command: cli::DockerCommand::Push { image, name },
        } => cmd::docker::push(ctx, &image, name).await.map(|_| 0),
        C::GitCredentials { operation } => {
            let out = git::credentials(&operation, std::io::stdin().lock(), &ctx.config)?;
            print!("{out}");
            Ok(0)
        }
        C::Version => {
            println!("flynn {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        C::Completion { shell } => {
            use clap::CommandFactory;
            let mut command = cli::Cli::command();
            clap_complete::generate(shell, &mut command, "flynn", &mut std::io::stdout());
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn domains_of_git_urls() {
        assert_eq!(super::domain_of("http://git.cluster.test"), "cluster.test");
        assert_eq!(super::domain_of("https://git.a.b:8443/"), "a.b");
    }
}
