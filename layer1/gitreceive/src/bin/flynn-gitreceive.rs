//! `flynn-gitreceive`: git push deploys. `serve` (the default) answers git's smart HTTP;
//! `hook` is what each repository's `pre-receive` hook runs.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use flynn_http::server::keys::Keys;
use flynn_http::server::{Listener, Server};
use flynn_http::service::Shutdown;
use flynn_http::Endpoint;
use gitreceive::{hook, http, repo::Repos, Settings};

#[derive(Parser)]
#[command(
    name = "flynn-gitreceive",
    about = "git push deploys: receives pushes, builds and deploys them"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
    /// HTTP address.
    #[arg(long, env = "LISTEN", default_value = "0.0.0.0:8080", global = true)]
    listen: SocketAddr,
    /// Where the repositories are kept (a volume).
    #[arg(long, env = "DATA_DIR", default_value = "/data", global = true)]
    data: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Serves git's smart HTTP protocol (the default).
    Serve,
    /// The pre-receive hook (run by git in a repository, with FLYNN_APP set).
    Hook,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(args.settings, args.listen, args.data),
        Command::Hook => run_hook(args.settings),
    }
}

fn serve(settings: Settings, listen: SocketAddr, data: PathBuf) -> anyhow::Result<()> {
    flynn_http::service::run(|shutdown| async move {
        let keys = Keys::parse(&settings.controller_key)?;
        let program = std::env::current_exe().context("finding this program")?;
        let state = Arc::new(http::State {
            settings,
            keys,
            repos: Repos::new(data.join("repos"), program),
        });
        let listener = Listener::bind(&Endpoint::Tcp(listen)).await?;
        tracing::info!(addr = %listen, "gitreceive");
        Server::new(http::router(), state)
            .serve(vec![listener], shutdown.wait())
            .await;
        Ok::<_, anyhow::Error>(())
    })
}

fn run_hook(settings: Settings) -> anyhow::Result<()> {
    let app =
        std::env::var("FLYNN_APP").context("FLYNN_APP is not set: hooks run under the server")?;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the pushed refs")?;
    let repo = std::env::current_dir().context("finding the repository")?;
    let rt = tokio::runtime::Runtime::new()?;
    let code = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut int = signal(SignalKind::interrupt())?;
        // The server stops the push's process group when its client goes away (Ctrl-C).
        let (trigger, cancel) = Shutdown::new();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = hup.recv() => {}
                _ = int.recv() => {}
            }
            trigger.trigger();
        });
        Ok::<_, std::io::Error>(
            match hook::run(&settings, &app, &repo, &input, cancel).await {
                Ok(()) => 0,
                Err(e) => {
                    hook::say(&format!("\n !     {e}\n"));
                    1
                }
            },
        )
    })?;
    std::process::exit(code)
}
