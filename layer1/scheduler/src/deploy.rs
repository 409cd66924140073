//! Carrying out deployments, on the leading scheduler only. A deployment moves the app's
//! job counts from the old release's formation to the new one's, by strategy:
//! `all-at-once` (every new job up, then the old ones stopped) or `one-by-one` (per process
//! type: one new job up, then one old job stopped). A new job is up once the controller
//! lists it up (its host runs it and its service port accepted a connection) and every
//! router routes it; old jobs are stopped with drain (see [`crate::routers::drain`]). New
//! jobs that keep failing, or a step that outlasts the deploy timeout, roll the deployment
//! back: the old formation is restored, the new one removed, and the deployment fails
//! with the reason (`web job failed to start: ...`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use controller_api::client::{Client, ClientError, EventQuery};
use controller_api::{
    Deployment, DeploymentStatus, DeploymentUpdate, JobState, ObjectType, ProcessTypeName,
    PutFormation, Release, Strategy,
};
use discoverd_api::client::Client as Discoverd;
use tokio::sync::watch;

/// New jobs of a type that may fail before the deployment does.
const TOLERATED_FAILURES: usize = 2;
/// How often a step's progress is checked.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Runs unfinished deployments while this scheduler leads, until the process ends.
pub async fn run(controller: Client, discoverd: Discoverd, mut leading: watch::Receiver<bool>) {
    let mut running: BTreeSet<String> = BTreeSet::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    loop {
        if !*leading.borrow() {
            if leading.changed().await.is_err() {
                return;
            }
            continue;
        }
        // Follow deployment events, then take every unfinished one.
        let q = EventQuery {
            object_types: vec![ObjectType::Deployment],
            ..EventQuery::default()
        };
        let mut events = match controller.follow_events(&q).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "following deployments; again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let lead_rx = leading.clone();
        let start = |d: Deployment, running: &mut BTreeSet<String>| {
            if d.status.is_final() || !running.insert(d.id.clone()) {
                return;
            }
            let (c, dc, done, lead) = (
                controller.clone(),
                discoverd.clone(),
                done_tx.clone(),
                lead_rx.clone(),
            );
            tokio::spawn(async move {
                let id = d.id.clone();
                carry_out(&c, &dc, d, lead).await;
                let _ = done.send(id);
            });
        };
        match controller.active_deployments().await {
            Ok(list) => list.into_iter().for_each(|d| start(d, &mut running)),
            Err(e) => {
                tracing::warn!(error = %e, "listing unfinished deployments; again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        loop {
            tokio::select! {
                ev = events.next() => match ev {
                    Ok(Some(ev)) => {
                        if let Ok(d) = flynn_http::json::from_value::<Deployment>(ev.data) {
                            start(d, &mut running);
                        }
                    }
                    _ => break,
                },
                Some(id) = done_rx.recv() => { running.remove(&id); }
                r = leading.changed() => if r.is_err() || !*leading.borrow() { break },
            }
        }
    }
}

/// Why a deployment failed.
#[derive(Debug)]
struct Failed(String);

impl From<ClientError> for Failed {
    fn from(e: ClientError) -> Self {
        Failed(format!("controller: {e}"))
    }
}

async fn carry_out(c: &Client, discoverd: &Discoverd, d: Deployment, lead: watch::Receiver<bool>) {
    tracing::info!(deployment = %d.id, app = %d.app, strategy = ?d.strategy, "deploying");
    let running = DeploymentUpdate {
        status: DeploymentStatus::Running,
        error: None,
    };
    if d.status == DeploymentStatus::Pending {
        if let Err(e) = c.update_deployment(&d.app, &d.id, &running).await {
            tracing::warn!(deployment = %d.id, error = %e, "marking a deployment running");
            return;
        }
    }
    let outcome = steps(c, discoverd, &d, &lead).await;
    if !*lead.borrow() {
        // Leadership moved mid-way: the new leader carries it on from where it is.
        return;
    }
    let update = match outcome {
        Ok(()) => {
            if let Some(old) = &d.old_release {
                let _ = c.delete_formation(&d.app, old).await;
            }
            DeploymentUpdate {
                status: DeploymentStatus::Complete,
                error: None,
            }
        }
        Err(Failed(why)) => {
            tracing::warn!(deployment = %d.id, error = %why, "deployment failed; rolling back");
            if let Some(old) = &d.old_release {
                let restore = PutFormation {
                    processes: d.processes.clone(),
                    tags: d.tags.clone(),
                };
                if let Err(e) = c.put_formation(&d.app, old, &restore).await {
                    tracing::error!(deployment = %d.id, error = %e, "restoring the old formation");
                }
            }
            let _ = c.delete_formation(&d.app, &d.new_release).await;
            DeploymentUpdate {
                status: DeploymentStatus::Failed,
                error: Some(why),
            }
        }
    };
    if let Err(e) = c.update_deployment(&d.app, &d.id, &update).await {
        tracing::warn!(deployment = %d.id, error = %e, "reporting a deployment's end");
    }
}

async fn steps(
    c: &Client,
    discoverd: &Discoverd,
    d: &Deployment,
    lead: &watch::Receiver<bool>,
) -> Result<(), Failed> {
    let new = c.release(&d.new_release).await?;
    // Only the types the new release still has.
    let target: BTreeMap<ProcessTypeName, u32> = d
        .processes
        .iter()
        .filter(|(k, _)| new.processes.contains_key(*k))
        .map(|(k, n)| (k.clone(), *n))
        .collect();
    let old_counts = d.processes.clone();
    let put = |release: &str, counts: &BTreeMap<ProcessTypeName, u32>| {
        let f = PutFormation {
            processes: counts.clone(),
            tags: d.tags.clone(),
        };
        let release = release.to_string();
        async move { c.put_formation(&d.app, &release, &f).await }
    };
    let timeout = Duration::from_secs(d.deploy_timeout.max(1) as u64);
    match d.strategy {
        // A strategy a newer controller added: nothing was changed yet, the deployment
        // fails saying so (and the app keeps its release).
        Strategy::Unknown => {
            return Err(Failed(
                "this scheduler does not know the deployment's strategy (a newer controller's): upgrade the scheduler, or deploy with all-at-once or one-by-one".into(),
            ));
        }
        Strategy::AllAtOnce => {
            put(&d.new_release, &target).await?;
            wait_up(c, discoverd, d, &new, &target, timeout, lead).await?;
            if let Some(old) = &d.old_release {
                let zero = old_counts.keys().map(|k| (k.clone(), 0)).collect();
                put(old, &zero).await?;
                wait_down(c, d, old, &zero, timeout).await?;
            }
        }
        Strategy::OneByOne => {
            let mut now_new: BTreeMap<ProcessTypeName, u32> =
                target.keys().map(|k| (k.clone(), 0)).collect();
            let mut now_old = old_counts.clone();
            for (kind, n) in &target {
                for _ in 0..*n {
                    *now_new.entry(kind.clone()).or_default() += 1;
                    put(&d.new_release, &now_new).await?;
                    wait_up(c, discoverd, d, &new, &now_new, timeout, lead).await?;
                    if let (Some(old), Some(left)) = (&d.old_release, now_old.get_mut(kind)) {
                        if *left > 0 {
                            *left -= 1;
                            put(old, &now_old).await?;
                            wait_down(c, d, old, &now_old, timeout).await?;
                        }
                    }
                }
            }
            // Types the new release dropped.
            if let Some(old) = &d.old_release {
                let zero = old_counts.keys().map(|k| (k.clone(), 0)).collect();
                put(old, &zero).await?;
                wait_down(c, d, old, &zero, timeout).await?;
            }
        }
    }
    Ok(())
}

/// The service name of a process type's first port that names one.
fn service_of(r: &Release, kind: &str) -> Option<String> {
    let p = r.processes.iter().find(|(k, _)| k.as_str() == kind)?.1;
    crate::spec::service(p)
}

/// Whether `kind` runs on every host.
fn is_omni(r: &Release, kind: &str) -> bool {
    r.processes
        .iter()
        .any(|(k, p)| k.as_str() == kind && p.omni)
}

/// Waits until the new release runs `counts` jobs that are up, registered in discoverd when
/// their type names a service, and routed by every router with a route to it.
async fn wait_up(
    c: &Client,
    discoverd: &Discoverd,
    d: &Deployment,
    new: &Release,
    counts: &BTreeMap<ProcessTypeName, u32>,
    timeout: Duration,
    lead: &watch::Receiver<bool>,
) -> Result<(), Failed> {
    let started = Instant::now();
    loop {
        if !*lead.borrow() {
            return Err(Failed("this scheduler stopped leading".into()));
        }
        let jobs = c.jobs(&d.app, false).await?;
        let routers = crate::routers::all(discoverd).await;
        let mut done = true;
        for (kind, n) in counts {
            let of_type: Vec<_> = jobs
                .iter()
                .filter(|j| j.release == d.new_release && j.kind == kind.as_str())
                .collect();
            let failed: Vec<_> = of_type
                .iter()
                .filter(|j| {
                    j.state == JobState::Down
                        && j.updated_at.as_datetime() >= d.created_at.as_datetime()
                })
                .collect();
            if failed.len() > TOLERATED_FAILURES {
                let last = failed
                    .iter()
                    .max_by_key(|j| j.updated_at)
                    .expect("not empty");
                let why = match (&last.host_error, last.exit_status) {
                    (Some(e), _) => e.clone(),
                    (None, Some(code)) => format!("exited with status {code}"),
                    (None, None) => "got a down job event".to_string(),
                };
                return Err(Failed(format!("{kind} job failed to start: {why}")));
            }
            let service = service_of(new, kind.as_str());
            let mut up = 0u32;
            for j in of_type.iter().filter(|j| j.state == JobState::Up) {
                let routed = match &service {
                    Some(s) => crate::routers::ready(discoverd, &routers, s, &j.id).await,
                    None => true,
                };
                if routed {
                    up += 1;
                }
            }
            // An omni type runs `n` on every host it runs on: the hosts with a job of the
            // type, of either release, each get theirs before old jobs stop.
            let want = if is_omni(new, kind.as_str()) {
                let hosts: std::collections::BTreeSet<&str> = jobs
                    .iter()
                    .filter(|j| j.kind == kind.as_str() && j.state != JobState::Down)
                    .map(|j| j.host_id.as_str())
                    .collect();
                n * hosts.len().max(1) as u32
            } else {
                *n
            };
            if up < want {
                done = false;
            }
        }
        if done {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(Failed(format!(
                "new jobs were not up within {} s (the deploy timeout)",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// Waits until the old release runs at most `counts` jobs that are not down (omni types: on
/// each host).
async fn wait_down(
    c: &Client,
    d: &Deployment,
    old: &str,
    counts: &BTreeMap<ProcessTypeName, u32>,
    timeout: Duration,
) -> Result<(), Failed> {
    let started = Instant::now();
    let release = c.release(old).await?;
    loop {
        let jobs = c.jobs(&d.app, true).await?;
        let done = counts.iter().all(|(kind, n)| {
            // An omni type's count holds on each host.
            let omni = is_omni(&release, kind.as_str());
            let mut per_host: BTreeMap<&str, u32> = BTreeMap::new();
            for j in jobs
                .iter()
                .filter(|j| j.release == old && j.kind == kind.as_str())
            {
                let host = if omni { j.host_id.as_str() } else { "" };
                *per_host.entry(host).or_default() += 1;
            }
            per_host.values().all(|have| have <= n)
        });
        if done {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(Failed(format!(
                "old jobs were not stopped within {} s (the deploy timeout)",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}
