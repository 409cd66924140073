//! Apps: create (with the default route), read, update, delete (with everything of theirs).

use controller_api::{
    route_parent, App, AppDeletion, AppName, AppUpdate, HttpRoute, NewApp, ObjectType, Route,
    DEFAULT_DEPLOY_TIMEOUT,
};
use flynn_http::Timestamp;

use crate::controller::{new_id, Controller, Read};
use crate::error::ControllerError;
use crate::keys;
use crate::routes::StoredRoute;
use crate::store::{NewEvent, Store, Txn};

/// Longest deploy timeout accepted, in seconds.
const MAX_DEPLOY_TIMEOUT: u32 = 3600;

fn check_meta(meta: &std::collections::BTreeMap<String, String>) -> Result<(), ControllerError> {
    if let Some(k) = meta.keys().find(|k| k.is_empty() || k.len() > 200) {
        return Err(ControllerError::Invalid(format!(
            "meta key {k:?}: use 1-200 characters"
        )));
    }
    Ok(())
}

fn check_timeout(t: u32) -> Result<(), ControllerError> {
    if t == 0 || t > MAX_DEPLOY_TIMEOUT {
        return Err(ControllerError::Invalid(format!(
            "deploy_timeout {t}: use 1-{MAX_DEPLOY_TIMEOUT} seconds"
        )));
    }
    Ok(())
}

pub(crate) fn app_event(app: &App, kind: ObjectType) -> NewEvent {
    NewEvent {
        app: Some(app.id.clone()),
        object_type: kind,
        object_id: app.id.clone(),
        data: serde_json::to_value(app).expect("apps serialise"),
    }
}

impl<S: Store> Controller<S> {
    /// Creates an app; a non-system app also gets the route `NAME.DOMAIN` to `NAME-web`.
    pub async fn create_app(&self, new: NewApp) -> Result<App, ControllerError> {
        let meta = new.meta.clone().unwrap_or_default();
        check_meta(&meta)?;
        let deploy_timeout = new.deploy_timeout.unwrap_or(DEFAULT_DEPLOY_TIMEOUT);
        check_timeout(deploy_timeout)?;
        self.transact(|| async {
            let name = match &new.name {
                Some(n) => n.clone(),
                None => self.free_name().await?,
            };
            if self.name_taken(&name).await? {
                return Err(ControllerError::AppExists(name.to_string()));
            }
            let now = Timestamp::now();
            let app = App {
                id: new_id(),
                name: name.clone(),
                meta: meta.clone(),
                strategy: new.strategy.unwrap_or_default(),
                release: None,
                deploy_timeout,
                created_at: now,
                updated_at: now,
            };
            let mut txn = Txn::default();
            txn.unchanged(&keys::app_name(name.as_str()), None)
                .put_json(keys::app(&app.id), &app)
                .put_json(keys::app_name(name.as_str()), &app.id)
                .event(app_event(&app, ObjectType::App));
            if let (Some(domain), false) = (&self.config.domain, app.is_system()) {
                let mut r = HttpRoute::new(
                    format!("http-{}", new_id()),
                    format!("{name}.{domain}"),
                    format!("{name}-web"),
                );
                r.drain_backends = true;
                r.parent_ref = Some(route_parent(&app.id));
                let route = Route::Http(r);
                if let Err(e) = self.check_route_free(&route, &mut txn).await {
                    // Reads are not one snapshot: an app of this name committed since the
                    // name was read holds the route too, and that is the error to give.
                    if self.name_taken(&name).await? {
                        return Err(ControllerError::AppExists(name.to_string()));
                    }
                    return Err(e);
                }
                self.add_route_to(&mut txn, &app, StoredRoute::new(route), None);
            }
            Ok((txn, app))
        })
        .await
    }

    async fn name_taken(&self, name: &AppName) -> Result<bool, ControllerError> {
        Ok(self
            .store
            .get(&keys::app_name(name.as_str()))
            .await?
            .is_some())
    }

    /// A generated name no app has yet.
    async fn free_name(&self) -> Result<AppName, ControllerError> {
        for _ in 0..16 {
            let name =
                AppName::try_from(crate::names::generate()).expect("generated names are valid");
            if self
                .store
                .get(&keys::app_name(name.as_str()))
                .await?
                .is_none()
            {
                return Ok(name);
            }
        }
        Err(ControllerError::Invalid(
            "no free generated name was found; give the app a name".into(),
        ))
    }

    /// The app named or identified by `app`, with its version.
    pub(crate) async fn find_app(&self, app: &str) -> Result<Read<App>, ControllerError> {
        let id = if uuid::Uuid::try_parse(app).is_ok() {
            app.to_string()
        } else {
            if !controller_api::valid_app_name(app) {
                return Err(ControllerError::NoSuchApp(app.to_string()));
            }
            match self.read::<String>(&keys::app_name(app)).await? {
                Some(r) => r.value,
                None => return Err(ControllerError::NoSuchApp(app.to_string())),
            }
        };
        self.read(&keys::app(&id))
            .await?
            .ok_or_else(|| ControllerError::NoSuchApp(app.to_string()))
    }

    /// One app, by name or id.
    pub async fn app(&self, app: &str) -> Result<App, ControllerError> {
        Ok(self.find_app(app).await?.value)
    }

    /// Every app, newest first.
    pub async fn apps(&self) -> Result<Vec<App>, ControllerError> {
        let mut apps: Vec<App> = self
            .read_all::<App>("apps/")
            .await?
            .into_iter()
            .map(|r| r.value)
            .collect();
        apps.sort_by_key(|a| std::cmp::Reverse(a.created_at));
        Ok(apps)
    }

    /// Changes an app's strategy, deploy timeout or meta (the whole map).
    pub async fn update_app(&self, app: &str, update: AppUpdate) -> Result<App, ControllerError> {
        if let Some(m) = &update.meta {
            check_meta(m)?;
        }
        if let Some(t) = update.deploy_timeout {
            check_timeout(t)?;
        }
        self.transact(|| async {
            let Read { mut value, at } = self.find_app(app).await?;
            if let Some(m) = &update.meta {
                value.meta = m.clone();
            }
            if let Some(s) = update.strategy {
                value.strategy = s;
            }
            if let Some(t) = update.deploy_timeout {
                value.deploy_timeout = t;
            }
            value.updated_at = Timestamp::now();
            let key = keys::app(&value.id);
            let mut txn = Txn::default();
            txn.unchanged(&key, Some(&at))
                .put_json(key, &value)
                .event(app_event(&value, ObjectType::App));
            Ok((txn, value))
        })
        .await
    }

    /// Deletes an app and its routes, formations and releases (one commit: all or nothing).
    /// Each formation's removal is an event, so a scheduler stops its jobs.
    pub async fn delete_app(&self, app: &str) -> Result<AppDeletion, ControllerError> {
        self.transact(|| async {
            let Read { value, at } = self.find_app(app).await?;
            let id = value.id.clone();
            let mut txn = Txn::default();
            txn.unchanged(&keys::app(&id), Some(&at));
            let routes = self
                .read_all::<StoredRoute>(&keys::of_app("routes", &id))
                .await?;
            for r in &routes {
                txn.unchanged(&keys::route(&id, r.value.route.id()), Some(&r.at));
                self.remove_route_from(&mut txn, &value, &r.value.route);
            }
            let formations = self.formations_read(&id).await?;
            for f in &formations {
                let key = keys::formation(&id, &f.value.release);
                txn.unchanged(&key, Some(&f.at));
                txn.deletes.push(key);
                txn.event(crate::formations::removal_event(&f.value));
            }
            for kind in ["jobs", "scale-requests", "deployments"] {
                for (key, _) in self.store.list(&keys::of_app(kind, &id)).await? {
                    txn.deletes.push(key);
                }
            }
            txn.deletes.push(keys::scale_pending(&id));
            txn.deletes.push(keys::deploy_active(&id));
            let releases = self.store.list(&keys::of_app("app-releases", &id)).await?;
            for (key, _) in &releases {
                let release = key.rsplit('/').next().unwrap_or_default();
                txn.deletes.push(keys::release(release));
                txn.deletes.push(key.clone());
            }
            txn.deletes.push(keys::app(&id));
            txn.deletes.push(keys::app_name(value.name.as_str()));
            txn.event(app_event(&value, ObjectType::AppDeletion));
            let done = AppDeletion {
                app: value,
                removed_routes: routes.len() as u32,
                deleted_releases: releases.len() as u32,
                removed_formations: formations.len() as u32,
            };
            Ok((txn, done))
        })
        .await
    }
}
