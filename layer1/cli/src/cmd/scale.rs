//! `flynn scale`: the counts of the current release's process types, changed through a
//! scale request and followed job by job on the controller's event stream until the
//! request completes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use controller_api::client::EventQuery;
use controller_api::{
    Job, NewScaleRequest, ObjectType, ProcessTypeName, ScaleRequest, ScaleRequestState,
};

use crate::error::CliError;
use crate::Ctx;

/// `TYPE=COUNT` arguments.
pub fn parse_counts(args: &[String]) -> Result<BTreeMap<ProcessTypeName, u32>, CliError> {
    let mut out = BTreeMap::new();
    for (k, v) in super::pairs(args)? {
        let kind: ProcessTypeName = k
            .parse()
            .map_err(|e| CliError::usage(format!("{k:?}: {e}")))?;
        let n: u32 = v
            .parse()
            .map_err(|_| CliError::usage(format!("{k}={v}: the count must be a whole number")))?;
        out.insert(kind, n);
    }
    Ok(out)
}

fn counts_line(counts: &BTreeMap<ProcessTypeName, u32>) -> String {
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k}={n}")).collect();
    parts.join(" ")
}

/// Shows the counts, or changes them and (unless `no_wait`) waits for the jobs.
pub async fn run(ctx: &Ctx, args: &[String], no_wait: bool, timeout: u64) -> Result<(), CliError> {
    let app_name = ctx.app()?;
    let api = ctx.api()?;
    let app = api.app(&app_name).await?;
    let Some(release) = app.release.clone() else {
        return Err(CliError::usage(format!(
            "{app_name} has no release yet: deploy it first (git push flynn main)"
        )));
    };
    let old = match api.formation(&app.id, &release).await {
        Ok(f) => f.processes,
        Err(e) if e.status() == Some(404) => BTreeMap::new(),
        Err(e) => return Err(e.into()),
    };
    if args.is_empty() {
        println!("{}", counts_line(&old));
        return Ok(());
    }
    let new = parse_counts(args)?;
    let types = api.release(&release).await?.processes;
    if let Some(k) = new.keys().find(|k| !types.contains_key(*k)) {
        let known: Vec<String> = types.keys().map(|k| k.to_string()).collect();
        return Err(CliError::usage(format!(
            "release {release} has no process type {k} (it has: {})",
            known.join(", ")
        )));
    }
    // Events from here on: the request's jobs cannot slip past.
    let last = api
        .events(&EventQuery {
            count: Some(1),
            ..Default::default()
        })
        .await?
        .last()
        .map(|e| e.id);
    let started = Instant::now();
    let req = api
        .scale(
            &app.id,
            &release,
            &NewScaleRequest {
                processes: new.clone(),
                ..Default::default()
            },
        )
        .await?;
    for (k, n) in &new {
        println!("scaling {k}: {}=>{n}", old.get(k).copied().unwrap_or(0));
    }
    if no_wait {
        return Ok(());
    }
    let query = EventQuery {
        app: Some(app.id.clone()),
        object_types: vec![ObjectType::Job, ObjectType::ScaleRequest],
        since_id: Some(last.unwrap_or(0)),
        ..Default::default()
    };
    let mut events = api.follow_events(&query).await?;
    let wait =
        async {
            while let Some(ev) = events.next().await? {
                match ev.object_type {
                    ObjectType::Job => {
                        let Ok(job) = flynn_http::json::from_value::<Job>(ev.data) else {
                            continue;
                        };
                        if job.release == release && new.keys().any(|k| k.as_str() == job.kind) {
                            let at = ev.created_at.as_datetime().format("%H:%M:%S%.3f");
                            println!("{at} ==> {} {} {}", job.kind, job.id, job.state.as_str());
                        }
                    }
                    ObjectType::ScaleRequest => {
                        let Ok(r) = flynn_http::json::from_value::<ScaleRequest>(ev.data) else {
                            continue;
                        };
                        if r.id != req.id {
                            continue;
                        }
                        match r.state {
                            ScaleRequestState::Complete => return Ok(()),
                            ScaleRequestState::Cancelled => return Err(CliError::usage(
                                "the scale request was replaced by a newer one before it completed",
                            )),
                            // A state a newer controller added: wait for the next.
                            ScaleRequestState::Pending | ScaleRequestState::Unknown => {}
                        }
                    }
                    _ => {}
                }
            }
            Err(CliError::usage(
                "the controller's event stream ended; run flynn ps to see the jobs",
            ))
        };
    match tokio::time::timeout(Duration::from_secs(timeout), wait).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(CliError::Timeout(format!(
            "the jobs did not reach {} within {timeout} s; run flynn ps and flynn log to see why",
            counts_line(&new)
        )))
        }
    }
    println!("\nscale completed in {:.3?}", started.elapsed());
    Ok(())
}
