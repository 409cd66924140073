//! Jobs as the scheduler reports them: one record per job, its state only ever moving
//! forward (reports may arrive out of order), an event per change, and at most
//! [`KEPT_DOWN_JOBS`] ended jobs kept per app.

use controller_api::{Job, JobState, ObjectType, PutJob, KEPT_DOWN_JOBS};
use flynn_http::Timestamp;

use crate::controller::{Controller, Read};
use crate::error::ControllerError;
use crate::keys;
use crate::store::{NewEvent, Store, Txn};

fn job_event(j: &Job) -> NewEvent {
    NewEvent {
        app: Some(j.app.clone()),
        object_type: ObjectType::Job,
        object_id: j.id.clone(),
        data: serde_json::to_value(j).expect("jobs serialise"),
    }
}

impl<S: Store> Controller<S> {
    /// Records what the scheduler says of job `id` of `app`; a report older than the
    /// record (an earlier state) changes nothing.
    pub async fn put_job(&self, app: &str, id: &str, put: PutJob) -> Result<Job, ControllerError> {
        if !runtime_name(id) {
            return Err(ControllerError::Invalid(format!(
                "job id {id:?}: use 1-64 letters, digits, '_', '.' or '-'"
            )));
        }
        let job = self
            .transact(|| async {
                let Read {
                    value: a,
                    at: app_at,
                } = self.find_app(app).await?;
                let key = keys::job(&a.id, id);
                let old = self.read::<Job>(&key).await?;
                if let Some(o) = &old {
                    if o.value.state > put.state {
                        return Ok((Txn::default(), o.value.clone()));
                    }
                }
                let now = Timestamp::now();
                let job = Job {
                    id: id.to_string(),
                    app: a.id.clone(),
                    release: put.release.clone(),
                    kind: put.kind.clone(),
                    host_id: put.host_id.clone(),
                    state: put.state,
                    restarts: put.restarts,
                    exit_status: put.exit_status,
                    host_error: put.host_error.clone(),
                    created_at: old.as_ref().map_or(now, |o| o.value.created_at),
                    updated_at: now,
                };
                let mut txn = Txn::default();
                txn.unchanged(&keys::app(&a.id), Some(&app_at))
                    .unchanged(&key, old.as_ref().map(|o| &o.at));
                if job.state == JobState::Down {
                    // Keep the newest ended jobs only.
                    let mut down: Vec<Read<Job>> = self
                        .read_all::<Job>(&keys::of_app("jobs", &a.id))
                        .await?
                        .into_iter()
                        .filter(|j| j.value.state == JobState::Down && j.value.id != job.id)
                        .collect();
                    if down.len() >= KEPT_DOWN_JOBS {
                        down.sort_by_key(|j| j.value.updated_at);
                        for j in &down[..down.len() + 1 - KEPT_DOWN_JOBS] {
                            let k = keys::job(&a.id, &j.value.id);
                            txn.unchanged(&k, Some(&j.at));
                            txn.deletes.push(k);
                        }
                    }
                }
                txn.put_json(key, &job).event(job_event(&job));
                Ok((txn, job))
            })
            .await?;
        // The report may finish the app's pending scale request.
        self.settle_scale(&job.app).await?;
        Ok(job)
    }

    /// The app's jobs, newest first; with `active`, only those not down.
    pub async fn jobs(&self, app: &str, active: bool) -> Result<Vec<Job>, ControllerError> {
        let a = self.app(app).await?;
        let mut out: Vec<Job> = self
            .read_all::<Job>(&keys::of_app("jobs", &a.id))
            .await?
            .into_iter()
            .map(|r| r.value)
            .filter(|j| !active || j.state != JobState::Down)
            .collect();
        out.sort_by_key(|j| std::cmp::Reverse(j.created_at));
        Ok(out)
    }

    /// One job of the app.
    pub async fn job(&self, app: &str, id: &str) -> Result<Job, ControllerError> {
        let a = self.app(app).await?;
        match self.read::<Job>(&keys::job(&a.id, id)).await? {
            Some(r) => Ok(r.value),
            None => Err(ControllerError::NoSuchJob {
                app: a.name.to_string(),
                id: id.to_string(),
            }),
        }
    }
}

/// Host job ids: 1-64 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
fn runtime_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}
