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

/// A client of cluster `c`'s controller (see [`http`]).
pub fn controller(c: &Cluster) -> Result<Client, CliError> {
    Ok(Client::from_http(
        http(c, "controller", &c.controller_url)?.with_token(&c.key),
    ))
}

/// An HTTP client of `url` (`http://` or `https://`, a name or an address) of cluster `c`:
/// names are resolved here and sent as the Host (and TLS server) name, and HTTPS trusts the
/// CA of the cluster's pin, or the system's CAs when it has none.
pub fn http(
    c: &Cluster,
    service: &'static str,
    url: &str,
) -> Result<flynn_http::client::Client, CliError> {
    let url = url.trim_end_matches('/');
    let (rest, tls, default_port) = if let Some(r) = url.strip_prefix("https://") {
        (r, true, 443)
    } else if let Some(r) = url.strip_prefix("http://") {
        (r, false, 80)
    } else {
        return Err(CliError::usage(format!(
            "{service} URL {url:?} of cluster {:?}: use http:// or https://; run flynn cluster add -f with the right URL",
            c.name
        )));
    };
    let bad_url = || {
        CliError::usage(format!(
            "{service} URL {url:?} of cluster {:?}: not HOST or HOST:PORT after the scheme",
            c.name
        ))
    };
    let (name, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (name, after) = v6.split_once(']').ok_or_else(bad_url)?;
            match after.strip_prefix(':') {
                Some(p) => (name, p.parse::<u16>().map_err(|_| bad_url())?),
                None if after.is_empty() => (name, default_port),
                None => return Err(bad_url()),
            }
        }
        None => match rest.split_once(':') {
            Some((name, p)) => (name, p.parse::<u16>().map_err(|_| bad_url())?),
            None => (rest, default_port),
        },
    };
    let with_port = match name.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{name}]:{port}"),
        Err(_) => format!("{name}:{port}"),
    };
    let addr = with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            CliError::usage(format!(
                "cannot resolve the {service} of cluster {:?} ({url}): check the name, or run flynn cluster add -f with its URL",
                c.name
            ))
        })?;
    let mut client = flynn_http::client::Client::new(service, Endpoint::Tcp(addr));
    if name.parse::<std::net::IpAddr>().is_err() {
        client = client.with_host(rest);
    }
    if tls {
        let config = if c.tls_pin.is_empty() {
            flynn_http::tls::system()
        } else {
            flynn_http::tls::pinned(&c.tls_pin).map_err(|e| CliError::usage(e.to_string()))?
        };
        client = client
            .with_tls(config, name)
            .map_err(|e| CliError::usage(e.to_string()))?;
    }
    Ok(client)
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
        C::Cluster { command, json } => cmd::cluster::run(ctx, command, json.json).await.map(|_| 0),
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
