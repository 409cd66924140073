//! Formations: how many jobs of each process type of a release an app runs, and where. The
//! scheduler follows their events; it is the only one that acts on them.

use controller_api::{Formation, ObjectType, PutFormation, Release, MAX_PROCESSES};
use flynn_http::Timestamp;

use crate::controller::{Controller, Read};
use crate::error::ControllerError;
use crate::keys;
use crate::store::{NewEvent, Store, Txn};

pub(crate) fn formation_event(f: &Formation) -> NewEvent {
    NewEvent {
        app: Some(f.app.clone()),
        object_type: ObjectType::Formation,
        object_id: format!("{}:{}", f.app, f.release),
        data: serde_json::to_value(f).expect("formations serialise"),
    }
}

/// The event of a formation's removal: the formation with no processes.
pub(crate) fn removal_event(f: &Formation) -> NewEvent {
    let mut gone = f.clone();
    gone.processes.clear();
    gone.updated_at = Timestamp::now();
    formation_event(&gone)
}

/// Refuses counts or tags of process types `r` does not have, and counts over
/// [`MAX_PROCESSES`].
fn check_formation(r: &Release, put: &PutFormation) -> Result<(), ControllerError> {
    for t in put.processes.keys().chain(put.tags.keys()) {
        if !r.processes.contains_key(t) {
            let have: Vec<&str> = r.processes.keys().map(|k| k.as_str()).collect();
            return Err(ControllerError::Invalid(format!(
                "release {} has no process type {t} (it has: {})",
                r.id,
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            )));
        }
    }
    if let Some((t, n)) = put.processes.iter().find(|(_, n)| **n > MAX_PROCESSES) {
        return Err(ControllerError::Invalid(format!(
            "{t}={n}: at most {MAX_PROCESSES} jobs per process type"
        )));
    }
    Ok(())
}

/// A formation about to be written ([`Controller::prepare_formation`]).
pub(crate) struct FormationWrite {
    /// As it was.
    pub old: Option<Formation>,
    /// As it will be.
    pub new: Formation,
    /// The checks, the write and its event.
    pub txn: Txn,
}

impl<S: Store> Controller<S> {
    /// Sets the formation of `app`'s `release`: counts and tags of process types the release
    /// has; the release must have an artifact.
    pub async fn put_formation(
        &self,
        app: &str,
        release: &str,
        put: PutFormation,
    ) -> Result<Formation, ControllerError> {
        self.transact(|| async {
            let w = self.prepare_formation(app, release, &put, false).await?;
            Ok((w.txn, w.new))
        })
        .await
    }

    /// Checks and prepares setting `app`'s `release` formation from `put` (with `merge`, the
    /// types `put` leaves out keep their counts and tags): the transaction writes it, with its
    /// event, if neither the app nor the formation changed meanwhile.
    pub(crate) async fn prepare_formation(
        &self,
        app: &str,
        release: &str,
        put: &PutFormation,
        merge: bool,
    ) -> Result<FormationWrite, ControllerError> {
        let Read {
            value: a,
            at: app_at,
        } = self.find_app(app).await?;
        let r = self.release_of(&a, release).await?;
        if r.artifacts.is_empty() {
            return Err(ControllerError::NotDeployable(r.id));
        }
        check_formation(&r, put)?;
        let key = keys::formation(&a.id, &r.id);
        let old = self.read::<Formation>(&key).await?;
        let now = Timestamp::now();
        let (mut processes, mut tags) = match (&old, merge) {
            (Some(o), true) => (o.value.processes.clone(), o.value.tags.clone()),
            _ => Default::default(),
        };
        processes.extend(put.processes.clone());
        tags.extend(put.tags.clone());
        let new = Formation {
            app: a.id.clone(),
            release: r.id.clone(),
            processes,
            tags,
            created_at: old.as_ref().map_or(now, |o| o.value.created_at),
            updated_at: now,
        };
        let mut txn = Txn::default();
        txn.unchanged(&keys::app(&a.id), Some(&app_at))
            .unchanged(&key, old.as_ref().map(|o| &o.at))
            .put_json(key, &new)
            .event(formation_event(&new));
        Ok(FormationWrite {
            old: old.map(|o| o.value),
            new,
            txn,
        })
    }

    /// The formation of `app`'s `release`.
    pub async fn formation(&self, app: &str, release: &str) -> Result<Formation, ControllerError> {
        let a = self.app(app).await?;
        match self.read(&keys::formation(&a.id, release)).await? {
            Some(r) => Ok(r.value),
            None => Err(ControllerError::NoSuchFormation {
                app: a.name.to_string(),
                release: release.to_string(),
            }),
        }
    }

    pub(crate) async fn formations_read(
        &self,
        app_id: &str,
    ) -> Result<Vec<Read<Formation>>, ControllerError> {
        self.read_all(&keys::of_app("formations", app_id)).await
    }

    /// The app's formations, newest first.
    pub async fn formations(&self, app: &str) -> Result<Vec<Formation>, ControllerError> {
        let a = self.app(app).await?;
        let mut out: Vec<Formation> = self
            .formations_read(&a.id)
            .await?
            .into_iter()
            .map(|r| r.value)
            .collect();
        out.sort_by_key(|f| std::cmp::Reverse(f.updated_at));
        Ok(out)
    }

    /// Every app's formations; with `active`, only those running at least one job.
    pub async fn all_formations(&self, active: bool) -> Result<Vec<Formation>, ControllerError> {
        Ok(self
            .read_all::<Formation>("formations/")
            .await?
            .into_iter()
            .map(|r| r.value)
            .filter(|f| !active || f.processes.values().any(|n| *n > 0))
            .collect())
    }

    /// Removes a formation (its jobs are stopped: the event carries no processes).
    pub async fn delete_formation(&self, app: &str, release: &str) -> Result<(), ControllerError> {
        self.transact(|| async {
            let a = self.app(app).await?;
            let key = keys::formation(&a.id, release);
            let Some(old) = self.read::<Formation>(&key).await? else {
                return Err(ControllerError::NoSuchFormation {
                    app: a.name.to_string(),
                    release: release.to_string(),
                });
            };
            let mut txn = Txn::default();
            txn.unchanged(&key, Some(&old.at))
                .event(removal_event(&old.value))
                .deletes
                .push(key);
            Ok((txn, ()))
        })
        .await
    }
}
