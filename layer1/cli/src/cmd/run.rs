//! `flynn run`: a one-off job of the app, attached to this terminal (a terminal of its own
//! when stdin and stdout are one), exiting with the job's exit code; or detached.

use std::io::IsTerminal;

use controller_api::NewJob;

use crate::error::CliError;
use crate::Ctx;

/// Runs `command`; returns the exit code to leave with.
pub async fn run(
    ctx: &Ctx,
    detach: bool,
    env: &[String],
    release: Option<String>,
    command: Vec<String>,
) -> Result<i32, CliError> {
    let app = ctx.app()?;
    let api = ctx.api()?;
    let tty = !detach && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let job = NewJob {
        release,
        args: command,
        env: super::pairs(env)?.into_iter().collect(),
        tty,
        ..Default::default()
    };
    if detach {
        let j = api.run_job(&app, &job).await?;
        println!("{}", j.id);
        return Ok(0);
    }
    let (id, io) = api.run_attached(&app, &job).await?;
    if tty {
        // Ctrl-C and the like reach the job through its terminal.
        return Ok(flynn_term::attach::session(io, true, true)
            .await
            .map_err(std::io::Error::other)?);
    }
    // Without a terminal, an interrupt here stops the job.
    let session = flynn_term::attach::session(io, false, true);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = session => Ok(r.map_err(std::io::Error::other)?),
        _ = tokio::signal::ctrl_c() => {
            let _ = api.kill_job(&app, &id).await;
            eprintln!("flynn: interrupted; job {id} stopped");
            Ok(130)
        }
        _ = term.recv() => {
            let _ = api.kill_job(&app, &id).await;
            Ok(143)
        }
    }
}
