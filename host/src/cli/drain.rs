//! `drain` and `undrain`: a host about to leave the cluster stops taking jobs, and the
//! scheduler moves the jobs it placed here to other hosts; `drain` waits for that.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use controller_api::spec::{LABEL_APP_NAME, LABEL_TYPE};
use host_api::client::Client;
use host_api::{EventFilter, EventKind, EventPayload, Job, JobAction, JobFilter, JobId};

/// `drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// Seconds to wait for the scheduler to move this host's jobs (0: do not wait).
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// A job the scheduler placed (it carries a process type); it moves with a drain.
fn placed(job: &Job) -> bool {
    !job.state.is_final() && job.config.metadata.contains_key(LABEL_TYPE)
}

fn describe(job: &Job) -> String {
    let m = &job.config.metadata;
    match (m.get(LABEL_APP_NAME), m.get(LABEL_TYPE)) {
        (Some(app), Some(kind)) => format!("{} ({app} {kind})", job.id),
        _ => job.id.to_string(),
    }
}

/// `drain`: starts the drain, then waits until none of the jobs the scheduler placed here
/// is left; exits 1 when some are still here after the timeout.
pub async fn drain(c: &Client, args: DrainArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    let filter = EventFilter {
        kind: Some(EventKind::Job),
        ..EventFilter::default()
    };
    // Subscribe first, then list: no job's end is missed between the two.
    let mut events = c
        .events(&filter)
        .await
        .context("following the host's jobs")?;
    let status = c.set_draining(true).await.context("starting the drain")?;
    println!("host {} is draining: it takes no new jobs", status.id);
    if args.timeout == 0 {
        return Ok(0);
    }
    let mut left: BTreeMap<JobId, Job> = c
        .jobs(&JobFilter::default())
        .await?
        .into_iter()
        .filter(placed)
        .map(|j| (j.id.clone(), j))
        .collect();
    if !left.is_empty() {
        println!("waiting for the scheduler to move {} jobs", left.len());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    while !left.is_empty() {
        let ev = match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) => {
                let ids: Vec<String> = left.values().map(describe).collect();
                bail!(
                    "{} jobs are still on this host after {} s: {} (is the scheduler running, \
                     and do other hosts have room?); the host keeps draining",
                    left.len(),
                    args.timeout,
                    ids.join(", ")
                );
            }
            Ok(ev) => ev.context("following the host's jobs")?,
        };
        let Some(ev) = ev else {
            bail!("the host's event stream ended (did the daemon stop?)");
        };
        let EventPayload::Job { job, action } = ev.payload else {
            continue;
        };
        let gone = job.state.is_final() || action == Some(JobAction::Deleted);
        if gone {
            if left.remove(&job.id).is_some() {
                println!("{} stopped", describe(&job));
            }
        } else if placed(&job) {
            // Placed here just before the scheduler learned of the drain.
            left.insert(job.id.clone(), *job);
        }
    }
    let others: Vec<String> = c
        .jobs(&JobFilter::default())
        .await?
        .iter()
        .filter(|j| !j.state.is_final())
        .map(describe)
        .collect();
    println!(
        "host {} drained in {:.1} s",
        status.id,
        started.elapsed().as_secs_f64()
    );
    if !others.is_empty() {
        println!(
            "still running (not placed by the scheduler; they end with the daemon): {}",
            others.join(", ")
        );
    }
    Ok(0)
}

/// `undrain`: the host takes jobs again.
pub async fn undrain(c: &Client) -> anyhow::Result<i32> {
    let status = c.set_draining(false).await.context("ending the drain")?;
    println!("host {} takes jobs again", status.id);
    Ok(0)
}
