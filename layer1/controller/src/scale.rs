//! Scale requests: a change of some process types' counts and tags, committed with the new
//! formation (and the cancellation of the app's pending request) in one transaction, then
//! `complete` once the jobs the scheduler reports match it: for every type of the new
//! formation, exactly that many jobs of the release up and none starting or stopping.

use std::collections::BTreeMap;

use controller_api::{
    Job, JobState, NewScaleRequest, ObjectType, PutFormation, ScaleRequest, ScaleRequestState,
};
use flynn_http::Timestamp;

use crate::controller::{new_id, Controller, Read};
use crate::error::ControllerError;
use crate::keys;
use crate::store::{NewEvent, Store, Txn};

fn scale_event(r: &ScaleRequest) -> NewEvent {
    NewEvent {
        app: Some(r.app.clone()),
        object_type: ObjectType::ScaleRequest,
        object_id: r.id.clone(),
        data: serde_json::to_value(r).expect("scale requests serialise"),
    }
}

/// True when `jobs` (the app's) show `r` done.
fn settled(r: &ScaleRequest, jobs: &[Job]) -> bool {
    let of_release = |j: &&Job| j.release == r.release;
    if jobs
        .iter()
        .filter(of_release)
        .any(|j| matches!(j.state, JobState::Starting | JobState::Stopping) && !j.kind.is_empty())
    {
        return false;
    }
    let mut up: BTreeMap<&str, u32> = BTreeMap::new();
    for j in jobs.iter().filter(of_release) {
        if j.state == JobState::Up && !j.kind.is_empty() {
            *up.entry(j.kind.as_str()).or_default() += 1;
        }
    }
    r.new_processes
        .iter()
        .all(|(t, n)| up.get(t.as_str()).copied().unwrap_or(0) == *n)
        && up
            .keys()
            .all(|t| r.new_processes.keys().any(|k| k.as_str() == *t))
}

impl<S: Store> Controller<S> {
    /// Scales `app`'s `release`: the types in `new` get its counts and tags, the others keep
    /// theirs. Returns the request, `pending` (or `complete` when nothing needs to change).
    pub async fn scale(
        &self,
        app: &str,
        release: &str,
        new: NewScaleRequest,
    ) -> Result<ScaleRequest, ControllerError> {
        let req = self
            .transact(|| async {
                let asked = PutFormation {
                    processes: new.processes.clone(),
                    tags: new.tags.clone(),
                };
                let w = self.prepare_formation(app, release, &asked, true).await?;
                let (old_processes, old_tags) =
                    w.old.map(|o| (o.processes, o.tags)).unwrap_or_default();
                let now = w.new.updated_at;
                let req = ScaleRequest {
                    id: new_id(),
                    app: w.new.app.clone(),
                    release: w.new.release.clone(),
                    state: ScaleRequestState::Pending,
                    old_processes,
                    new_processes: w.new.processes.clone(),
                    old_tags,
                    new_tags: w.new.tags.clone(),
                    created_at: now,
                    updated_at: now,
                };
                let mut txn = w.txn;
                // The pending request, if any, is cancelled by this one.
                let pkey = keys::scale_pending(&req.app);
                let pending = self.read::<String>(&pkey).await?;
                txn.unchanged(&pkey, pending.as_ref().map(|p| &p.at));
                if let Some(p) = &pending {
                    let key = keys::scale_request(&req.app, &p.value);
                    if let Some(mut old) = self.read::<ScaleRequest>(&key).await? {
                        old.value.state = ScaleRequestState::Cancelled;
                        old.value.updated_at = now;
                        txn.unchanged(&key, Some(&old.at))
                            .put_json(key, &old.value)
                            .event(scale_event(&old.value));
                    }
                }
                txn.put_json(pkey, &req.id)
                    .put_json(keys::scale_request(&req.app, &req.id), &req)
                    .event(scale_event(&req));
                Ok((txn, req))
            })
            .await?;
        // Nothing to wait for when the jobs already match.
        Ok(self.settle_scale(&req.app).await?.unwrap_or(req))
    }

    /// Marks the app's pending scale request complete when its jobs match it; returns the
    /// request as it now is.
    pub(crate) async fn settle_scale(
        &self,
        app_id: &str,
    ) -> Result<Option<ScaleRequest>, ControllerError> {
        self.transact(|| async {
            let pkey = keys::scale_pending(app_id);
            let Some(pending) = self.read::<String>(&pkey).await? else {
                return Ok((Txn::default(), None));
            };
            let key = keys::scale_request(app_id, &pending.value);
            let Some(Read { value: mut r, at }) = self.read::<ScaleRequest>(&key).await? else {
                return Ok((Txn::default(), None));
            };
            let jobs: Vec<Job> = self
                .read_all::<Job>(&keys::of_app("jobs", app_id))
                .await?
                .into_iter()
                .map(|j| j.value)
                .collect();
            if !settled(&r, &jobs) {
                return Ok((Txn::default(), Some(r)));
            }
            r.state = ScaleRequestState::Complete;
            r.updated_at = Timestamp::now();
            let mut txn = Txn::default();
            txn.unchanged(&pkey, Some(&pending.at))
                .unchanged(&key, Some(&at))
                .put_json(key, &r)
                .event(scale_event(&r));
            txn.deletes.push(pkey);
            Ok((txn, Some(r)))
        })
        .await
    }

    /// The app's scale requests, newest first.
    pub async fn scale_requests(&self, app: &str) -> Result<Vec<ScaleRequest>, ControllerError> {
        let a = self.app(app).await?;
        let mut out: Vec<ScaleRequest> = self
            .read_all::<ScaleRequest>(&keys::of_app("scale-requests", &a.id))
            .await?
            .into_iter()
            .map(|r| r.value)
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(kind: &str, release: &str, state: JobState) -> Job {
        Job {
            id: format!("h-{kind}-{}", uuid::Uuid::new_v4().simple()),
            app: "a".into(),
            release: release.into(),
            kind: kind.into(),
            host_id: "h".into(),
            state,
            restarts: 0,
            exit_status: None,
            host_error: None,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    #[test]
    fn a_request_settles_when_exactly_its_counts_are_up() {
        let r = ScaleRequest {
            id: "s".into(),
            app: "a".into(),
            release: "r1".into(),
            state: ScaleRequestState::Pending,
            old_processes: BTreeMap::new(),
            new_processes: BTreeMap::from([("web".parse().unwrap(), 2)]),
            old_tags: BTreeMap::new(),
            new_tags: BTreeMap::new(),
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        };
        let up = |k| job(k, "r1", JobState::Up);
        assert!(!settled(&r, &[up("web")]));
        assert!(settled(&r, &[up("web"), up("web")]));
        // Other releases, one-off jobs and ended jobs do not count.
        let others = [
            up("web"),
            up("web"),
            job("web", "r0", JobState::Up),
            job("", "r1", JobState::Up),
            job("web", "r1", JobState::Down),
        ];
        assert!(settled(&r, &others));
        assert!(!settled(&r, &[up("web"), up("web"), up("web")]));
        assert!(!settled(
            &r,
            &[up("web"), up("web"), job("web", "r1", JobState::Stopping)]
        ));
        assert!(!settled(&r, &[up("web"), up("web"), up("worker")]));
    }
}
