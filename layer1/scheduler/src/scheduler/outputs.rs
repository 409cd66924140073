//! What the scheduler's loop tells others: every job's state to the controller, in order
//! and only when it changed ([`Scheduler::report`]), and its view to `/status`
//! ([`Scheduler::publish`]).

use std::collections::BTreeMap;

use controller_api::{JobState as Reported, PutJob};
use host_api::JobId;

use super::Status;
use super::{key_name, Scheduler};
use crate::plan::Key;
use crate::spec;

impl Scheduler {
    /// Tells the controller of every job whose state changed since the last report.
    pub(super) fn report(&mut self) {
        let mut now: BTreeMap<JobId, (String, PutJob)> = BTreeMap::new();
        for (host, h) in &self.hosts {
            for j in h.jobs.values() {
                // Formation jobs, and one-off jobs (the controller started them; their
                // state comes from here like any other's).
                let labels = &j.config.metadata;
                let Some((key, restarts)) = spec::key_of(labels).or_else(|| {
                    let (app, release) = spec::one_off_of(labels)?;
                    let kind = String::new();
                    Some((Key { app, release, kind }, 0))
                }) else {
                    continue;
                };
                let mut put = spec::report(j, &key.release, &key.kind, host, restarts);
                if put.state != Reported::Down && self.stopping.contains(&j.id) {
                    put.state = Reported::Stopping;
                }
                now.insert(j.id.clone(), (key.app, put));
            }
        }
        for (id, c) in &self.creating {
            now.entry(id.clone()).or_insert_with(|| {
                let put = PutJob {
                    release: c.key.release.clone(),
                    kind: c.key.kind.clone(),
                    host_id: c.host.clone(),
                    state: match self.stopping.contains(id) {
                        true => Reported::Stopping,
                        false => Reported::Starting,
                    },
                    restarts: c.restarts,
                    exit_status: None,
                    host_error: None,
                };
                (c.key.app.clone(), put)
            });
        }
        for (id, key, host, restarts, error) in self.failed.drain(..) {
            let put = PutJob {
                release: key.release,
                kind: key.kind,
                host_id: host,
                state: Reported::Down,
                restarts,
                exit_status: None,
                host_error: Some(error),
            };
            now.insert(id, (key.app, put));
        }
        // Jobs no host lists any more: their host was lost, or their record deleted.
        for (id, (app, old)) in &self.reported {
            if now.contains_key(id) || old.state == Reported::Down {
                continue;
            }
            let mut put = old.clone();
            put.state = Reported::Down;
            if !self.hosts.contains_key(&put.host_id) {
                put.host_error = Some(format!("host {} was lost", put.host_id));
            }
            now.insert(id.clone(), (app.clone(), put));
        }
        for (id, (app, put)) in &now {
            if self.reported.get(id).is_some_and(|(_, old)| old == put) {
                continue;
            }
            let _ = self
                .reports
                .send((app.clone(), id.to_string(), put.clone()));
        }
        // Forget what is down and gone from the hosts.
        self.reported = now
            .into_iter()
            .filter(|(id, (_, p))| {
                p.state != Reported::Down || self.hosts.values().any(|h| h.jobs.contains_key(id))
            })
            .collect();
    }

    pub(super) fn publish(&self) {
        let mut s = Status {
            leader: self.leader,
            ..Status::default()
        };
        for (id, h) in &self.hosts {
            let jobs = h
                .jobs
                .values()
                .filter(|j| spec::key_of(&j.config.metadata).is_some())
                .map(|j| (j.id.to_string(), j.state.to_string()))
                .collect();
            s.hosts.insert(id.clone(), jobs);
        }
        for (k, w) in self.wants() {
            s.formations.insert(key_name(&k), w.count);
        }
        for (k, list) in &self.crashes {
            s.crashed
                .insert(key_name(k), list.iter().map(|c| c.restarts).collect());
        }
        for (k, n) in &self.blocked {
            s.blocked.insert(key_name(k), *n);
        }
        let mut cur = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.id = std::mem::take(&mut cur.id);
        *cur = s;
    }
}
