//! `flynn ps`, `kill` and `log`.

use controller_api::client::LogRequest;
use controller_api::{JobState, LogMessage};

use crate::error::CliError;
use crate::Ctx;

/// Lists the app's jobs: those starting or up (every one with `all`), newest first.
pub async fn ps(
    ctx: &Ctx,
    all: bool,
    quiet: bool,
    kind: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let app = ctx.app()?;
    let mut jobs = ctx.api()?.jobs(&app, !all).await?;
    if !all {
        // A state a newer controller added may be a live one: shown, as `unknown`.
        jobs.retain(|j| {
            matches!(
                j.state,
                JobState::Starting | JobState::Up | JobState::Unknown
            )
        });
    }
    if let Some(k) = &kind {
        jobs.retain(|j| kind_name(&j.kind) == k);
    }
    if json {
        super::print_json(&jobs);
    } else if quiet {
        for j in &jobs {
            println!("{}", j.id);
        }
    } else {
        let rows: Vec<Vec<String>> = jobs
            .iter()
            .map(|j| {
                let mut state = j.state.as_str().to_string();
                if let Some(code) = j.exit_status.filter(|_| j.state == JobState::Down) {
                    state = format!("{state} (exit {code})");
                }
                vec![
                    j.id.clone(),
                    kind_name(&j.kind).to_string(),
                    state,
                    flynn_term::table::ago(j.created_at.as_datetime()),
                    j.release.clone(),
                ]
            })
            .collect();
        flynn_term::table::print(&["ID", "TYPE", "STATE", "CREATED", "RELEASE"], &rows);
    }
    Ok(())
}

/// A job's process type as shown: one-off jobs (no type) are `run`.
fn kind_name(kind: &str) -> &str {
    if kind.is_empty() {
        "run"
    } else {
        kind
    }
}

/// Stops jobs of the app.
pub async fn kill(ctx: &Ctx, jobs: &[String]) -> Result<(), CliError> {
    let app = ctx.app()?;
    let api = ctx.api()?;
    for id in jobs {
        api.kill_job(&app, id).await?;
        println!("Job {id} killed.");
    }
    Ok(())
}

/// One log line as `flynn log` prints it: `TIME SOURCE[TYPE.JOB]: MESSAGE`.
pub fn format_line(m: &LogMessage, raw: bool) -> String {
    if raw {
        return m.msg.clone();
    }
    let ts = m.timestamp.as_datetime().format("%Y-%m-%dT%H:%M:%S%.6fZ");
    let kind = kind_name(&m.process_type);
    format!("{ts} {}[{kind}.{}]: {}", m.source, m.job_id, m.msg)
}

/// Prints the app's log lines (and, with `follow`, new ones as they come).
pub async fn log(ctx: &Ctx, r: &LogRequest, raw: bool) -> Result<(), CliError> {
    let app = ctx.app()?;
    let mut lines = ctx.api()?.app_log(&app, r).await?;
    while let Some(m) = lines.next().await? {
        println!("{}", format_line(&m, raw));
    }
    Ok(())
}
