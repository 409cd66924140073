//! Artifacts and releases (both immutable once made), and an app's current release.

use controller_api::{
    App, AppReleaseChange, Artifact, NewArtifact, NewRelease, ObjectType, Release,
};
use flynn_http::Timestamp;

use crate::apps::app_event;
use crate::controller::{new_id, Controller, Read};
use crate::error::ControllerError;
use crate::keys;
use crate::store::{NewEvent, Store, Txn};
use crate::validate;

/// Most artifacts one release may overlay.
const MAX_ARTIFACTS: usize = 16;
/// Most process types in one release.
const MAX_PROCESS_TYPES: usize = 64;

impl<S: Store> Controller<S> {
    /// Records an artifact: an image by digest.
    pub async fn create_artifact(&self, new: NewArtifact) -> Result<Artifact, ControllerError> {
        validate::image_uri(&new.uri)?;
        let a = Artifact {
            id: new_id(),
            kind: new.kind,
            uri: new.uri,
            meta: new.meta,
            created_at: Timestamp::now(),
        };
        self.transact(|| async {
            let key = keys::artifact(&a.id);
            let mut txn = Txn::default();
            txn.unchanged(&key, None).put_json(key, &a).event(NewEvent {
                app: None,
                object_type: ObjectType::Artifact,
                object_id: a.id.clone(),
                data: serde_json::to_value(&a).expect("artifacts serialise"),
            });
            Ok((txn, a.clone()))
        })
        .await
    }

    /// One artifact.
    pub async fn artifact(&self, id: &str) -> Result<Artifact, ControllerError> {
        match self.read(&keys::artifact(id)).await? {
            Some(r) => Ok(r.value),
            None => Err(ControllerError::NoSuchArtifact(id.to_string())),
        }
    }

    /// Creates a release of `new.app_id` (an id or name). Process types are checked (only
    /// system apps may reach the host) and their missing resources get the defaults.
    pub async fn create_release(&self, new: NewRelease) -> Result<Release, ControllerError> {
        validate::env(&new.env, "release")?;
        if new.artifacts.len() > MAX_ARTIFACTS {
            return Err(ControllerError::Invalid(format!(
                "{} artifacts: a release overlays at most {MAX_ARTIFACTS}",
                new.artifacts.len()
            )));
        }
        if new.processes.len() > MAX_PROCESS_TYPES {
            return Err(ControllerError::Invalid(format!(
                "{} process types: at most {MAX_PROCESS_TYPES}",
                new.processes.len()
            )));
        }
        let id = new_id();
        self.transact(|| async {
            let Read { value: app, at } = self.find_app(&new.app_id).await?;
            for a in &new.artifacts {
                self.artifact(a).await?;
            }
            let mut processes = new.processes.clone();
            for (name, p) in &mut processes {
                validate::process(name.as_str(), p, app.is_system())?;
                p.resources = controller_api::Resources::with_defaults(p.resources);
            }
            let release = Release {
                id: id.clone(),
                app_id: app.id.clone(),
                artifacts: new.artifacts.clone(),
                env: new.env.clone(),
                meta: new.meta.clone(),
                processes,
                created_at: Timestamp::now(),
            };
            let mut txn = Txn::default();
            txn.unchanged(&keys::app(&app.id), Some(&at))
                .put_json(keys::release(&id), &release)
                .put_json(keys::app_release(&app.id, &id), &())
                .event(NewEvent {
                    app: Some(app.id.clone()),
                    object_type: ObjectType::Release,
                    object_id: id.clone(),
                    data: serde_json::to_value(&release).expect("releases serialise"),
                });
            Ok((txn, release))
        })
        .await
    }

    /// One release.
    pub async fn release(&self, id: &str) -> Result<Release, ControllerError> {
        match self.read(&keys::release(id)).await? {
            Some(r) => Ok(r.value),
            None => Err(ControllerError::NoSuchRelease(id.to_string(), "")),
        }
    }

    /// Release `id` if it is `app`'s.
    pub(crate) async fn release_of(&self, app: &App, id: &str) -> Result<Release, ControllerError> {
        match self.release(id).await {
            Ok(r) if r.app_id == app.id => Ok(r),
            Ok(_) | Err(ControllerError::NoSuchRelease(..)) => Err(ControllerError::NoSuchRelease(
                id.to_string(),
                " for this app; `GET /apps/APP/releases` lists them",
            )),
            Err(e) => Err(e),
        }
    }

    /// The app's releases, newest first.
    pub async fn app_releases(&self, app: &str) -> Result<Vec<Release>, ControllerError> {
        let app = self.app(app).await?;
        let mut out = Vec::new();
        for (key, _) in self
            .store
            .list(&keys::of_app("app-releases", &app.id))
            .await?
        {
            let id = key.rsplit('/').next().unwrap_or_default();
            out.push(self.release(id).await?);
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(out)
    }

    /// Makes `release` the app's current release. This deploys nothing: it moves the pointer.
    pub async fn set_app_release(&self, app: &str, release: &str) -> Result<App, ControllerError> {
        self.transact(|| async {
            let Read { value: mut a, at } = self.find_app(app).await?;
            self.release_of(&a, release).await?;
            let change = AppReleaseChange {
                release: release.to_string(),
                prev_release: a.release.replace(release.to_string()),
            };
            a.updated_at = Timestamp::now();
            let key = keys::app(&a.id);
            let mut txn = Txn::default();
            txn.unchanged(&key, Some(&at))
                .put_json(key, &a)
                .event(crate::deployments::release_event(&a.id, &change))
                .event(app_event(&a, ObjectType::App));
            Ok((txn, a))
        })
        .await
    }

    /// The app's current release.
    pub async fn app_release(&self, app: &str) -> Result<Release, ControllerError> {
        let a = self.app(app).await?;
        match &a.release {
            Some(r) => self.release(r).await,
            None => Err(ControllerError::NoCurrentRelease(a.name.to_string())),
        }
    }
}
