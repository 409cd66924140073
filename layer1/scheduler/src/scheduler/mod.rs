//! The scheduler's state and loop: one task owns the view of hosts, jobs and formations,
//! applies every input (host and job events, formation changes, leadership, results of its
//! own requests), and, while it leads, plans and carries out what makes the jobs match the
//! formations. Requests to hosts run as tasks that report back as inputs.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use host_api::client::Client as HostClient;
use host_api::{HostStatus, Job, JobId, JobState};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::formations::Active;
use crate::hosts::HostUp;
use crate::plan::{self, Action, Crash, HostView, JobView, Key, Phase, Want};
use crate::report::Report;
use crate::{backoff, spec};

mod apply;
mod outputs;
#[cfg(test)]
mod tests;
use controller_api::PutJob;

/// How long a stopped job gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Everything the scheduler loop reacts to.
#[derive(Debug)]
pub enum Input {
    /// A host answered: its status and every job it has.
    HostUp(Box<HostUp>),
    /// A job on a host changed (or its record was deleted).
    HostJob {
        /// The host.
        host: String,
        /// The job as it is now.
        job: Box<Job>,
        /// The record is gone.
        deleted: bool,
    },
    /// A host left discoverd or stopped answering: its jobs no longer count.
    HostLost {
        /// The host.
        id: String,
    },
    /// Every active formation (replaces all).
    Formations(Vec<Active>),
    /// A formation was set.
    Formation(Box<Active>),
    /// A formation was removed or scaled to nothing.
    FormationGone {
        /// The app id.
        app: String,
        /// The release id.
        release: String,
    },
    /// Whether this scheduler leads.
    Leader(bool),
    /// A job creation this scheduler asked for ended.
    Created {
        /// The host.
        host: String,
        /// The job.
        job: JobId,
        /// The job as created, or why it was not.
        result: Result<Box<Job>, String>,
    },
    /// A job stop this scheduler asked for returned.
    Stopped {
        /// The job.
        job: JobId,
        /// True when the host answered with the job ended: its end is then ours to handle
        /// as a stop (not a crash) whenever the host's event of it arrives.
        ended: bool,
    },
    /// A waiting crash may be ready.
    Tick,
    /// Every registration in discoverd, as `(service, instance id)` (replaces all).
    Registrations(BTreeSet<(String, String)>),
    /// An instance registered (`up`) or left.
    Registration {
        /// Its service.
        service: String,
        /// Its id (a job's id when its host or the job registered it).
        id: String,
        /// Registered, or gone.
        up: bool,
    },
}

struct HostState {
    client: HostClient,
    status: HostStatus,
    jobs: BTreeMap<JobId, Job>,
    /// Images known to be on the host.
    pulled: Arc<Mutex<HashSet<String>>>,
}

struct Creating {
    host: String,
    key: Key,
    memory: u64,
    restarts: u32,
}

/// What `GET /status` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// This scheduler's id.
    pub id: String,
    /// Whether it leads.
    pub leader: bool,
    /// Hosts and the scheduler's jobs on each (id and state).
    pub hosts: BTreeMap<String, BTreeMap<String, String>>,
    /// Formations: `APP/RELEASE/TYPE` to the count wanted.
    pub formations: BTreeMap<String, u32>,
    /// Crashed slots waiting to restart: `APP/RELEASE/TYPE` to their restart counts.
    pub crashed: BTreeMap<String, Vec<u32>>,
    /// Jobs no host can take: `APP/RELEASE/TYPE` to how many.
    pub blocked: BTreeMap<String, u32>,
}

fn key_name(k: &Key) -> String {
    format!("{}/{}/{}", k.app, k.release, k.kind)
}

/// The scheduler's state; [`Scheduler::run`] consumes inputs until every sender is gone.
pub struct Scheduler {
    tx: mpsc::Sender<Input>,
    leader: bool,
    hosts: BTreeMap<String, HostState>,
    formations: BTreeMap<(String, String), Active>,
    crashes: BTreeMap<Key, Vec<Crash>>,
    creating: BTreeMap<JobId, Creating>,
    stopping: BTreeSet<JobId>,
    /// Ended jobs already dealt with (their record is being deleted).
    handled: BTreeSet<JobId>,
    /// Hosts given up for lost, whose jobs are strays if they come back.
    lost: BTreeSet<String>,
    strays: BTreeSet<JobId>,
    blocked: BTreeMap<Key, u32>,
    timer: Option<tokio::task::JoinHandle<()>>,
    status: Arc<Mutex<Status>>,
    reports: mpsc::UnboundedSender<Report>,
    discoverd: discoverd_api::client::Client,
    leading: tokio::sync::watch::Sender<bool>,
    /// What the controller was last told of each job.
    reported: BTreeMap<JobId, (String, PutJob)>,
    /// Creations that failed, to report as down.
    failed: Vec<(JobId, Key, String, u32, String)>,
    /// discoverd's registrations, `(service, instance id)`; `None` until the first full
    /// state arrives (a job is then taken as serving once its host runs it).
    registered: Option<BTreeSet<(String, String)>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("leader", &self.leader)
            .field("hosts", &self.hosts.len())
            .field("formations", &self.formations.len())
            .finish()
    }
}

impl Scheduler {
    /// A scheduler sending its own follow-ups to `tx` and publishing its view in `status`.
    pub fn new(
        tx: mpsc::Sender<Input>,
        status: Arc<Mutex<Status>>,
        reports: mpsc::UnboundedSender<Report>,
        discoverd: discoverd_api::client::Client,
        leading: tokio::sync::watch::Sender<bool>,
    ) -> Self {
        Self {
            tx,
            leader: false,
            hosts: BTreeMap::new(),
            formations: BTreeMap::new(),
            crashes: BTreeMap::new(),
            creating: BTreeMap::new(),
            stopping: BTreeSet::new(),
            handled: BTreeSet::new(),
            lost: BTreeSet::new(),
            strays: BTreeSet::new(),
            blocked: BTreeMap::new(),
            timer: None,
            status,
            reports,
            discoverd,
            leading,
            reported: BTreeMap::new(),
            failed: Vec::new(),
            registered: None,
        }
    }

    /// Applies inputs (a batch at a time) and reconciles after each batch while it leads.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Input>) {
        while let Some(first) = rx.recv().await {
            self.apply(first);
            while let Ok(more) = rx.try_recv() {
                self.apply(more);
            }
            if self.leader {
                self.reconcile();
                self.report();
            }
            self.publish();
        }
    }

    fn crash(&mut self, key: Key, restarts: u32, delay: Duration) {
        let list = self.crashes.entry(key).or_default();
        list.push(Crash {
            restarts,
            ready_at: Instant::now() + delay,
        });
        list.sort_by_key(|c| c.ready_at);
    }

    /// The discoverd service `key`'s jobs register under, if its release is known here.
    fn service(&self, key: &Key) -> Option<String> {
        let a = self
            .formations
            .get(&(key.app.clone(), key.release.clone()))?;
        spec::service(a.release.processes.get(key.kind.as_str())?)
    }

    fn wants(&self) -> BTreeMap<Key, Want> {
        let mut wants = BTreeMap::new();
        for a in self.formations.values() {
            for (kind, count) in &a.processes {
                let Some(p) = a.release.processes.get(kind.as_str()) else {
                    continue;
                };
                let key = Key {
                    app: a.app.clone(),
                    release: a.release.id.clone(),
                    kind: kind.clone(),
                };
                wants.insert(
                    key,
                    Want {
                        count: *count,
                        omni: p.omni,
                        tags: a.tags.get(kind).cloned().unwrap_or_default(),
                        memory: spec::memory(p),
                    },
                );
            }
        }
        wants
    }

    /// Deals with ended jobs: a stop this scheduler asked for, or a crash to restart.
    fn handle_ended(&mut self, wants: &BTreeMap<Key, Want>) {
        let mut ended = Vec::new();
        for (host, h) in &self.hosts {
            for j in h.jobs.values() {
                if j.state.is_final() && !self.handled.contains(&j.id) {
                    if let Some((key, restarts)) = spec::key_of(&j.config.metadata) {
                        ended.push((host.clone(), j.clone(), key, restarts));
                    }
                }
            }
        }
        for (host, job, key, restarts) in ended {
            self.handled.insert(job.id.clone());
            // Its host had it and it ended: the creation call's answer, whenever it comes,
            // changes nothing (the job must not count as being created once its record goes).
            self.creating.remove(&job.id);
            let stopped = self.stopping.remove(&job.id) || self.strays.contains(&job.id);
            if !stopped && wants.get(&key).is_some_and(|w| w.count > 0) {
                let uptime = match (&job.started_at, &job.ended_at) {
                    (Some(s), Some(e)) => (e.as_datetime() - s.as_datetime())
                        .to_std()
                        .unwrap_or_default(),
                    _ => Duration::ZERO,
                };
                let next = backoff::next(restarts, uptime);
                let delay = backoff::delay(next);
                tracing::warn!(
                    job = %job.id, host = %host, app = %key.app, r#type = %key.kind,
                    exit = ?job.exit, error = ?job.error, restarts = next, restart_in = ?delay,
                    "job crashed"
                );
                self.crash(key, next, delay);
            }
            let client = self.hosts[&host].client.clone();
            tokio::spawn(async move {
                if let Err(e) = client.delete_job(&job.id, true).await {
                    tracing::warn!(job = %job.id, error = %e, "deleting an ended job's record");
                    return;
                }
                for v in spec::volumes_to_delete(&job.config.metadata) {
                    if let Err(e) = client.delete_volume(&v).await {
                        tracing::warn!(job = %job.id, volume = %v, error = %e, "deleting a job's volume");
                    }
                }
            });
        }
    }

    fn reconcile(&mut self) {
        let wants = self.wants();
        self.handle_ended(&wants);
        let hosts: Vec<HostView> = self
            .hosts
            .iter()
            .map(|(id, h)| HostView {
                id: id.clone(),
                tags: h.status.tags.clone(),
                memory: h.status.memory.total,
                draining: h.status.draining,
            })
            .collect();
        let mut jobs = Vec::new();
        for (host, h) in &self.hosts {
            for j in h.jobs.values() {
                if self.stopping.contains(&j.id) {
                    continue;
                }
                let Some((key, _)) = spec::key_of(&j.config.metadata) else {
                    continue;
                };
                let phase = match j.state {
                    // A state a newer host added holds its slot until a known one
                    // follows: counted as starting, not replaced, not taken as up.
                    JobState::Starting | JobState::Unknown => Phase::Starting,
                    // Running, it serves once registered under its type's service.
                    JobState::Running => {
                        let serves = self.registered.as_ref().is_none_or(|all| {
                            self.service(&key)
                                .is_none_or(|s| all.contains(&(s, j.id.to_string())))
                        });
                        if serves {
                            Phase::Running
                        } else {
                            Phase::Starting
                        }
                    }
                    JobState::Exited | JobState::Failed => continue,
                };
                let memory = wants.get(&key).map(|w| w.memory).unwrap_or(0);
                jobs.push(JobView {
                    id: j.id.to_string(),
                    host: host.clone(),
                    key,
                    phase,
                    created: j.created_at.as_datetime().timestamp_micros().max(0) as u128,
                    memory,
                    stray: self.strays.contains(&j.id),
                });
            }
        }
        for (id, c) in &self.creating {
            // Listed by its host already, or stopped while its creation was still under way
            // (it no longer counts: counting it would stop a running job in its place).
            if self.stopping.contains(id)
                || self
                    .hosts
                    .get(&c.host)
                    .is_some_and(|h| h.jobs.contains_key(id))
            {
                continue;
            }
            jobs.push(JobView {
                id: id.to_string(),
                host: c.host.clone(),
                key: c.key.clone(),
                phase: Phase::Creating,
                created: u128::MAX,
                memory: c.memory,
                stray: false,
            });
        }
        let now = Instant::now();
        let p = plan::plan(&wants, &hosts, &jobs, &self.crashes, now);
        for (key, n) in &p.restarted {
            if let Some(list) = self.crashes.get_mut(key) {
                // Sorted by readiness: the first `n` are the ready ones the plan used.
                list.drain(..(*n).min(list.len()));
            }
        }
        for (key, n) in &p.dropped {
            if let Some(list) = self.crashes.get_mut(key) {
                let keep = list.len().saturating_sub(*n);
                list.truncate(keep);
            }
        }
        self.crashes.retain(|_, l| !l.is_empty());
        if p.blocked != self.blocked {
            for (key, n) in &p.blocked {
                tracing::warn!(job = %key_name(key), count = n, "no host has the tags and memory for these jobs");
            }
            self.blocked = p.blocked.clone();
        }
        for action in p.actions {
            match action {
                Action::Start {
                    key,
                    host,
                    restarts,
                } => self.start(key, host, restarts, &wants),
                Action::Stop { job, host } => self.stop(job, host),
            }
        }
        if let Some(at) = p.next_ready {
            if let Some(t) = self.timer.take() {
                t.abort();
            }
            let tx = self.tx.clone();
            self.timer = Some(tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                let _ = tx.send(Input::Tick).await;
            }));
        }
    }

    fn start(&mut self, key: Key, host: String, restarts: u32, wants: &BTreeMap<Key, Want>) {
        let Some(a) = self.formations.get(&(key.app.clone(), key.release.clone())) else {
            return;
        };
        let Some(process) = a.release.processes.get(key.kind.as_str()) else {
            return;
        };
        let Some(h) = self.hosts.get(&host) else {
            return;
        };
        let id = spec::job_id(&host);
        let req = spec::create_job(
            spec::Process {
                app_name: &a.app_name,
                release: &a.release,
                image: &a.image,
                kind: &key.kind,
                process,
            },
            &id,
            restarts,
        );
        tracing::info!(job = %id, host = %host, app = %a.app_name, r#type = %key.kind, restarts, "starting job");
        self.creating.insert(
            id.clone(),
            Creating {
                host: host.clone(),
                memory: wants.get(&key).map(|w| w.memory).unwrap_or(0),
                key,
                restarts,
            },
        );
        let (client, pulled, tx) = (h.client.clone(), h.pulled.clone(), self.tx.clone());
        tokio::spawn(async move {
            let result = create(&client, &pulled, &req).await.map(Box::new);
            let _ = tx
                .send(Input::Created {
                    host,
                    job: id,
                    result,
                })
                .await;
        });
    }

    fn stop(&mut self, job: String, host: String) {
        let Ok(id) = job.parse::<JobId>() else {
            return;
        };
        let Some(h) = self.hosts.get(&host) else {
            return;
        };
        if !self.stopping.insert(id.clone()) {
            return;
        }
        tracing::info!(job = %id, host = %host, "stopping job");
        let (client, tx) = (h.client.clone(), self.tx.clone());
        let service = h.jobs.get(&id).and_then(|j| j.config.service.clone());
        let discoverd = self.discoverd.clone();
        tokio::spawn(async move {
            // Routers stop sending it requests and finish those in flight first.
            if let Some(service) = service {
                crate::routers::drain(&discoverd, &client, &id, service.as_str()).await;
            }
            let ended = match client.stop(&id, STOP_GRACE).await {
                Ok(j) => j.state.is_final(),
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "stopping a job");
                    false
                }
            };
            let _ = tx.send(Input::Stopped { job: id, ended }).await;
        });
    }
}

/// Pulls the image onto the host unless it is known to be there, then creates the job.
async fn create(
    client: &HostClient,
    pulled: &Mutex<HashSet<String>>,
    req: &host_api::CreateJob,
) -> Result<Job, String> {
    let image = &req.config.image;
    let have = pulled
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(image);
    if !have {
        client
            .pull_complete(image)
            .await
            .map_err(|e| format!("pulling {image}: {e}"))?;
        pulled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(image.clone());
    }
    for v in &req.config.volumes {
        match client.create_volume(&v.name).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(host_api::ErrorCode::VolumeExists) => {}
            Err(e) => return Err(format!("creating volume {}: {e}", v.name)),
        }
    }
    client.create_job(req).await.map_err(|e| e.to_string())
}
