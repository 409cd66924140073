//! `flynn release` (list, show, rollback) and `flynn deployment`, and the deploy of a new
//! release that `env` and `rollback` share.

use std::time::{Duration, Instant};

use controller_api::client::Client;
use controller_api::{App, DeploymentStatus, NewRelease, Release};

use crate::cli::ReleaseCommand;
use crate::error::CliError;
use crate::Ctx;

/// The app's current release, if it has one.
pub async fn current(api: &Client, app: &App) -> Result<Option<Release>, CliError> {
    Ok(match &app.release {
        Some(id) => Some(api.release(id).await?),
        None => None,
    })
}

/// Refuses a new release of a system app that has none: bootstrap's own job runs it
/// (gitreceive and the registry always, the controller and the scheduler on a one-host
/// cluster), so the release would be nothing's.
pub fn refuse_bootstrap_run(app: &App, current: Option<&Release>) -> Result<(), CliError> {
    if app.is_system() && current.is_none() {
        return Err(CliError::usage(format!(
            "{} runs as a job flynn-host bootstrap started, not under the scheduler: \
             a new release would change nothing it runs, so none was made",
            app.name
        )));
    }
    Ok(())
}

/// Makes `release` the app's in place of `current`: deployed when the app runs a release
/// with an image (waiting for the deploy to finish), else simply set as current.
pub async fn deploy(
    api: &Client,
    app: &str,
    current: Option<&Release>,
    release: &Release,
) -> Result<(), CliError> {
    let deployable =
        !release.artifacts.is_empty() && current.is_some_and(|c| !c.artifacts.is_empty());
    if !deployable {
        api.set_app_release(app, &release.id).await?;
        return Ok(());
    }
    let started = Instant::now();
    let d = api.deploy(app, &release.id).await?;
    let deadline = Duration::from_secs(u64::from(d.deploy_timeout) + 60);
    loop {
        let d = api.deployment(app, &d.id).await?;
        match d.status {
            DeploymentStatus::Complete => {
                println!(
                    "Deployed release {} in {:.3?}.",
                    release.id,
                    started.elapsed()
                );
                return Ok(());
            }
            DeploymentStatus::Failed => {
                return Err(CliError::usage(format!(
                    "deployment {} failed: {}; the previous release keeps running",
                    d.id,
                    d.error.unwrap_or_default()
                )))
            }
            _ if started.elapsed() > deadline => {
                return Err(CliError::Timeout(format!(
                    "deployment {} still {:?} after {:?}: see flynn deployment",
                    d.id, d.status, deadline
                )))
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// A copy of `base` (or an empty release) with `env`, created.
pub async fn create_like(
    api: &Client,
    app_id: &str,
    base: Option<&Release>,
    env: std::collections::BTreeMap<String, String>,
) -> Result<Release, CliError> {
    let new = NewRelease {
        app_id: app_id.to_string(),
        artifacts: base.map(|b| b.artifacts.clone()).unwrap_or_default(),
        env,
        meta: base.map(|b| b.meta.clone()).unwrap_or_default(),
        processes: base.map(|b| b.processes.clone()).unwrap_or_default(),
    };
    create(api, &new).await
}

/// Creates `new` and says so.
pub async fn create(api: &Client, new: &NewRelease) -> Result<Release, CliError> {
    let r = api.create_release(new).await?;
    println!("Created release {}.", r.id);
    Ok(r)
}

/// Runs `flynn release [COMMAND]`.
pub async fn run(ctx: &Ctx, command: Option<ReleaseCommand>, json: bool) -> Result<(), CliError> {
    let app_name = ctx.app()?;
    let api = ctx.api()?;
    let app = api.app(&app_name).await?;
    let mut releases = api.app_releases(&app.id).await?;
    releases.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    match command {
        None if json => super::print_json(&releases),
        None => {
            let rows: Vec<Vec<String>> = releases
                .iter()
                .map(|r| {
                    let current = app.release.as_deref() == Some(r.id.as_str());
                    let mut types: Vec<String> =
                        r.processes.keys().map(|k| k.to_string()).collect();
                    types.sort();
                    vec![
                        format!("{}{}", r.id, if current { " (current)" } else { "" }),
                        r.meta
                            .get("git.commit")
                            .map(|c| c.chars().take(7).collect())
                            .unwrap_or_default(),
                        types.join(","),
                        flynn_term::table::ago(r.created_at.as_datetime()),
                    ]
                })
                .collect();
            flynn_term::table::print(&["ID", "COMMIT", "TYPES", "CREATED"], &rows);
        }
        Some(ReleaseCommand::Show { id }) => {
            let id = id
                .or(app.release.clone())
                .ok_or_else(|| CliError::usage(format!("{app_name} has no release yet")))?;
            let r = api.release(&id).await?;
            if json {
                super::print_json(&r);
                return Ok(());
            }
            println!("ID:         {}", r.id);
            println!("Artifacts:  {}", r.artifacts.join(", "));
            println!("Created:    {}", r.created_at);
            for (k, v) in &r.meta {
                println!("Meta[{k}]: {v}");
            }
            for (k, v) in &r.env {
                println!("Env[{k}]: {v}");
            }
            for (k, p) in &r.processes {
                println!("Process[{k}]: {}", p.args.join(" "));
            }
        }
        Some(ReleaseCommand::Rollback { id }) => {
            let target = match id {
                Some(id) => releases
                    .iter()
                    .find(|r| r.id == id)
                    .cloned()
                    .ok_or_else(|| CliError::usage(format!("{app_name} has no release {id}")))?,
                None => {
                    let pos = app
                        .release
                        .as_ref()
                        .and_then(|c| releases.iter().position(|r| &r.id == c));
                    pos.and_then(|p| releases.get(p + 1))
                        .cloned()
                        .ok_or_else(|| {
                            CliError::usage(format!(
                                "{app_name} has no release before its current one"
                            ))
                        })?
                }
            };
            println!("Rolling back to release {}.", target.id);
            let current = releases
                .iter()
                .find(|r| app.release.as_ref() == Some(&r.id));
            deploy(&api, &app.id, current, &target).await?;
        }
    }
    Ok(())
}

/// Lists the app's deployments, newest first.
pub async fn deployments(ctx: &Ctx, json: bool) -> Result<(), CliError> {
    let app = ctx.app()?;
    let list = ctx.api()?.deployments(&app).await?;
    if json {
        super::print_json(&list);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            let status = super::wire_name(d.status);
            let took = d
                .finished_at
                .as_ref()
                .map(|f| {
                    let ms = (f.as_datetime() - d.created_at.as_datetime()).num_milliseconds();
                    format!("{:.1}s", ms as f64 / 1000.0)
                })
                .unwrap_or_default();
            vec![
                d.id.clone(),
                status,
                d.old_release.clone().unwrap_or_default(),
                d.new_release.clone(),
                flynn_term::table::ago(d.created_at.as_datetime()),
                took,
                d.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    flynn_term::table::print(
        &["ID", "STATUS", "FROM", "TO", "CREATED", "TOOK", "ERROR"],
        &rows,
    );
    Ok(())
}
