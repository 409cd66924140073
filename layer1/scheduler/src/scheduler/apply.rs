//! Applying one input to the scheduler's view: hosts and their jobs, formations,
//! leadership, and the answers to its own create and stop requests.

use std::collections::BTreeMap;
use std::time::Duration;

use host_api::{Job, JobId, JobState};

use super::{HostState, Input, Scheduler};
use crate::backoff;
use crate::hosts::HostUp;

impl Scheduler {
    pub(super) fn apply(&mut self, input: Input) {
        match input {
            Input::HostUp(up) => {
                let HostUp {
                    id,
                    client,
                    status,
                    jobs,
                } = *up;
                let jobs: BTreeMap<JobId, Job> =
                    jobs.into_iter().map(|j| (j.id.clone(), j)).collect();
                if self.lost.remove(&id) {
                    tracing::warn!(host = %id, jobs = jobs.len(), "a lost host is back; its jobs are strays");
                    self.strays.extend(jobs.keys().cloned());
                }
                let pulled = self.hosts.remove(&id).map(|h| h.pulled).unwrap_or_default();
                self.hosts.insert(
                    id,
                    HostState {
                        client,
                        status,
                        jobs,
                        pulled,
                    },
                );
            }
            Input::HostJob { host, job, deleted } => {
                let Some(h) = self.hosts.get_mut(&host) else {
                    return;
                };
                if deleted {
                    h.jobs.remove(&job.id);
                    self.creating.remove(&job.id);
                    self.handled.remove(&job.id);
                    self.strays.remove(&job.id);
                    self.stopping.remove(&job.id);
                    return;
                }
                h.record(*job);
            }
            Input::HostLost { id } => {
                if let Some(h) = self.hosts.remove(&id) {
                    tracing::warn!(host = %id, jobs = h.jobs.len(), "host lost; its jobs are placed again elsewhere");
                    self.lost.insert(id.clone());
                }
                self.creating.retain(|_, c| c.host != id);
            }
            Input::Formations(all) => {
                self.formations = all
                    .into_iter()
                    .map(|a| ((a.app.clone(), a.release.id.clone()), a))
                    .collect();
            }
            Input::Formation(a) => {
                let k = (a.app.clone(), a.release.id.clone());
                let newer = self
                    .formations
                    .get(&k)
                    .is_none_or(|old| old.updated_at <= a.updated_at);
                if newer {
                    self.formations.insert(k, *a);
                }
            }
            Input::FormationGone { app, release } => {
                self.formations.remove(&(app, release));
            }
            Input::Leader(leads) => {
                if leads != self.leader {
                    tracing::info!(leader = leads, "leadership changed");
                }
                self.leader = leads;
                self.leading.send_replace(leads);
            }
            Input::Created { host, job, result } => {
                let Some(c) = self.creating.remove(&job) else {
                    return;
                };
                match result {
                    Ok(j) => {
                        if let Some(h) = self.hosts.get_mut(&host) {
                            h.record(*j);
                        }
                        // Stopped while it was being created: the stop may have come too
                        // early for the host; it is asked again now that the job exists.
                        if self.stopping.remove(&job) {
                            self.stop(job.to_string(), host);
                        }
                    }
                    // Stopped on purpose while it was being created: not a crash.
                    Err(e) if self.stopping.remove(&job) => {
                        tracing::info!(job = %job, error = %e, "a job stopped while being created ended");
                        self.failed.push((job, c.key.clone(), host, c.restarts, e));
                    }
                    Err(e) => {
                        let restarts = c.restarts.saturating_add(1);
                        let delay = backoff::delay(restarts).max(Duration::from_secs(1));
                        tracing::warn!(
                            job = %job, host = %host, app = %c.key.app, r#type = %c.key.kind,
                            error = %e, retry_in = ?delay, "job failed to start"
                        );
                        self.failed.push((job, c.key.clone(), host, c.restarts, e));
                        self.crash(c.key, restarts, delay);
                    }
                }
            }
            // An ended job stays "stopping" until its end is handled, so an exit event that
            // arrives after this answer is not taken for a crash; a failed stop is forgotten,
            // so the plan can ask again.
            Input::Stopped { job, ended } => {
                let known = self.hosts.values().any(|h| h.jobs.contains_key(&job));
                // A job still being created stays "stopping": its creation's end decides.
                let creating = self.creating.contains_key(&job);
                if (!ended || !known || self.handled.contains(&job)) && !creating {
                    self.stopping.remove(&job);
                }
            }
            Input::Tick => {}
            Input::Registrations(all) => self.registered = Some(all),
            Input::Registration { service, id, up } => {
                if let Some(all) = self.registered.as_mut() {
                    if up {
                        all.insert((service, id));
                    } else {
                        all.remove(&(service, id));
                    }
                }
            }
        }
    }
}

impl HostState {
    /// Takes `job` as the host's view of it, unless the view is further along in the job's
    /// life (events and answers may trail the listing).
    fn record(&mut self, job: Job) {
        let newer = self
            .jobs
            .get(&job.id)
            .is_none_or(|old| rank(old.state) <= rank(job.state));
        if newer {
            self.jobs.insert(job.id.clone(), job);
        }
    }
}

/// Order of a job's states in its life.
fn rank(s: JobState) -> u8 {
    match s {
        JobState::Starting => 0,
        // A state a newer host added: neither ended nor known to be before running.
        JobState::Running | JobState::Unknown => 1,
        JobState::Exited | JobState::Failed => 2,
    }
}
