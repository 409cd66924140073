//! Deployments: made here (one unfinished per app, kept so by the store: a
//! `deploy-active/APP` key that must be absent), carried out by the scheduler's leader,
//! which reports `running`, then `complete` (the new release becomes the app's current one
//! in the same commit) or `failed`.

use controller_api::{
    App, AppReleaseChange, Deployment, DeploymentStatus, DeploymentUpdate, Formation, ObjectType,
};
use flynn_http::Timestamp;

use crate::apps::app_event;
use crate::controller::{new_id, Controller, Read};
use crate::error::ControllerError;
use crate::keys;
use crate::store::{NewEvent, Store, Txn};

fn deployment_event(d: &Deployment) -> NewEvent {
    NewEvent {
        app: Some(d.app.clone()),
        object_type: ObjectType::Deployment,
        object_id: d.id.clone(),
        data: serde_json::to_value(d).expect("deployments serialise"),
    }
}

impl<S: Store> Controller<S> {
    /// Deploys `release` to `app`. With nothing running yet, the release becomes current at
    /// once (the deployment is `complete`); otherwise the deployment is `pending` until the
    /// scheduler carries it out.
    pub async fn deploy(&self, app: &str, release: &str) -> Result<Deployment, ControllerError> {
        let deployment = self
            .transact(|| async {
                let Read { value: mut a, at } = self.find_app(app).await?;
                let r = self.release_of(&a, release).await?;
                if r.artifacts.is_empty() {
                    return Err(ControllerError::NotDeployable(r.id));
                }
                if a.release.as_deref() == Some(r.id.as_str()) {
                    return Err(ControllerError::Invalid(format!(
                        "release {} is already the current release of {}",
                        r.id, a.name
                    )));
                }
                let active = keys::deploy_active(&a.id);
                if let Some(d) = self.read::<String>(&active).await? {
                    return Err(ControllerError::DeployInProgress(
                        a.name.to_string(),
                        d.value,
                    ));
                }
                let old: Option<Formation> = match &a.release {
                    Some(old) => self
                        .read(&keys::formation(&a.id, old))
                        .await?
                        .map(|f| f.value),
                    None => None,
                };
                let runs = old
                    .as_ref()
                    .is_some_and(|f| f.processes.values().any(|n| *n > 0));
                let now = Timestamp::now();
                let mut d = Deployment {
                    id: new_id(),
                    app: a.id.clone(),
                    old_release: a.release.clone(),
                    new_release: r.id.clone(),
                    strategy: a.strategy,
                    status: DeploymentStatus::Pending,
                    processes: old
                        .as_ref()
                        .map(|f| f.processes.clone())
                        .unwrap_or_default(),
                    tags: old.as_ref().map(|f| f.tags.clone()).unwrap_or_default(),
                    deploy_timeout: a.deploy_timeout,
                    error: None,
                    created_at: now,
                    finished_at: None,
                };
                let mut txn = Txn::default();
                txn.unchanged(&keys::app(&a.id), Some(&at))
                    .unchanged(&active, None);
                if runs {
                    txn.put_json(active, &d.id);
                } else {
                    d.status = DeploymentStatus::Complete;
                    d.finished_at = Some(now);
                    make_current(&mut txn, &mut a, &r.id, now);
                }
                txn.put_json(keys::deployment(&a.id, &d.id), &d)
                    .event(deployment_event(&d));
                Ok((txn, d))
            })
            .await?;
        Ok(deployment)
    }

    /// Records the scheduler's progress on a deployment. `complete` makes the new release
    /// current; `complete` and `failed` end it, so the app can deploy again.
    pub async fn update_deployment(
        &self,
        app: &str,
        id: &str,
        update: DeploymentUpdate,
    ) -> Result<Deployment, ControllerError> {
        self.transact(|| async {
            let Read {
                value: mut a,
                at: app_at,
            } = self.find_app(app).await?;
            let key = keys::deployment(&a.id, id);
            let Some(Read { value: mut d, at }) = self.read::<Deployment>(&key).await? else {
                return Err(ControllerError::NoSuchDeployment(id.to_string()));
            };
            if d.status.is_final() {
                return Err(ControllerError::Invalid(format!(
                    "deployment {id} has ended already ({:?})",
                    d.status
                )));
            }
            if update.status == DeploymentStatus::Pending {
                return Err(ControllerError::Invalid(
                    "a deployment cannot go back to pending".into(),
                ));
            }
            let now = Timestamp::now();
            d.status = update.status;
            d.error = update.error.clone();
            let mut txn = Txn::default();
            txn.unchanged(&key, Some(&at))
                .unchanged(&keys::app(&a.id), Some(&app_at));
            if d.status.is_final() {
                d.finished_at = Some(now);
                txn.deletes.push(keys::deploy_active(&a.id));
            }
            if d.status == DeploymentStatus::Complete {
                make_current(&mut txn, &mut a, &d.new_release, now);
            }
            txn.put_json(key, &d).event(deployment_event(&d));
            Ok((txn, d))
        })
        .await
    }

    /// The app's deployments, newest first.
    pub async fn deployments(&self, app: &str) -> Result<Vec<Deployment>, ControllerError> {
        let a = self.app(app).await?;
        let mut out: Vec<Deployment> = self
            .read_all::<Deployment>(&keys::of_app("deployments", &a.id))
            .await?
            .into_iter()
            .map(|r| r.value)
            .collect();
        out.sort_by_key(|d| std::cmp::Reverse(d.created_at));
        Ok(out)
    }

    /// One deployment of the app.
    pub async fn deployment(&self, app: &str, id: &str) -> Result<Deployment, ControllerError> {
        let a = self.app(app).await?;
        match self
            .read::<Deployment>(&keys::deployment(&a.id, id))
            .await?
        {
            Some(r) => Ok(r.value),
            None => Err(ControllerError::NoSuchDeployment(id.to_string())),
        }
    }

    /// Every app's unfinished deployments, oldest first (what the scheduler carries out).
    pub async fn active_deployments(&self) -> Result<Vec<Deployment>, ControllerError> {
        let mut out = Vec::new();
        for (key, _) in self.store.list("deploy-active/").await? {
            let app = key.rsplit('/').next().unwrap_or_default().to_string();
            if let Some(id) = self.read::<String>(&key).await? {
                if let Some(d) = self
                    .read::<Deployment>(&keys::deployment(&app, &id.value))
                    .await?
                {
                    out.push(d.value);
                }
            }
        }
        out.sort_by_key(|d| d.created_at);
        Ok(out)
    }
}

/// Adds to `txn` what makes `release` the app's current release, with its events.
fn make_current(txn: &mut Txn, a: &mut App, release: &str, now: Timestamp) {
    let change = AppReleaseChange {
        release: release.to_string(),
        prev_release: a.release.replace(release.to_string()),
    };
    a.updated_at = now;
    txn.put_json(keys::app(&a.id), &*a)
        .event(release_event(&a.id, &change))
        .event(app_event(a, ObjectType::App));
}

/// The `app_release` event of a change of the current release.
pub(crate) fn release_event(app_id: &str, change: &AppReleaseChange) -> NewEvent {
    NewEvent {
        app: Some(app_id.to_string()),
        object_type: ObjectType::AppRelease,
        object_id: app_id.to_string(),
        data: serde_json::to_value(change).expect("changes serialise"),
    }
}
