//! Routes: the router's HTTP and TCP routes, owned by apps. Uniqueness (one route per domain
//! and path, one per TCP port) is kept by index keys the commit checks, so it holds across
//! controllers.

use controller_api::{route_parent, App, ObjectType, Route};
use flynn_http::Timestamp;
use serde::{Deserialize, Serialize};

use crate::controller::{Controller, Read};
use crate::error::ControllerError;
use crate::keys;
use crate::store::{NewEvent, Store, Txn};

/// A route as stored: the route and when it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredRoute {
    pub route: Route,
    pub created_at: Timestamp,
}

impl StoredRoute {
    pub fn new(route: Route) -> Self {
        Self {
            route,
            created_at: Timestamp::now(),
        }
    }
}

/// `http` or `tcp`.
pub fn kind(r: &Route) -> &'static str {
    match r {
        Route::Http(_) => "http",
        Route::Tcp(_) => "tcp",
    }
}

/// The index key a route holds (its domain and path, or its port).
fn unique_key(r: &Route) -> String {
    match r {
        Route::Http(h) => keys::route_host(&h.domain, &h.path),
        Route::Tcp(t) => keys::route_port(t.port),
    }
}

fn conflict(msg: String) -> ControllerError {
    ControllerError::RouteConflict(msg)
}

fn invalid(msg: String) -> ControllerError {
    ControllerError::Invalid(format!("invalid route: {msg}"))
}

fn event(app: &App, r: &Route, kind: ObjectType) -> NewEvent {
    NewEvent {
        app: Some(app.id.clone()),
        object_type: kind,
        object_id: r.id().to_string(),
        data: serde_json::to_value(r.redacted()).expect("routes serialise"),
    }
}

impl<S: Store> Controller<S> {
    /// Checks a route on its own and normalises it (lowercase domain); sets its parent.
    fn check_route(&self, app: &App, route: &mut Route) -> Result<(), ControllerError> {
        let id = route.id();
        if id.is_empty() || id.len() > 200 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(format!(
                "id {id:?}: use 1-200 printable characters"
            )));
        }
        if !discoverd_api::valid_service(route.service()) {
            return Err(invalid(format!(
                "service {:?}: use a discoverd service name (1-63 of a-z, 0-9, '-')",
                route.service()
            )));
        }
        let parent = Some(route_parent(&app.id));
        match route {
            Route::Http(h) => {
                h.domain = h.domain.to_ascii_lowercase();
                h.parent_ref = parent;
                if !router_api::valid_domain(&h.domain) {
                    return Err(invalid(format!("domain {:?}", h.domain)));
                }
                if !router_api::valid_path(&h.path) {
                    return Err(invalid(format!(
                        "path {:?}: start and end it with '/' (like /api/)",
                        h.path
                    )));
                }
                if let Some(c) = &h.certificate {
                    if !c.cert.contains("-----BEGIN") || !c.key.contains("-----BEGIN") {
                        return Err(invalid(
                            "certificate: give the PEM chain and the PEM key".into(),
                        ));
                    }
                }
            }
            Route::Tcp(t) => {
                t.parent_ref = parent;
                if matches!(t.port, 80 | 443) {
                    return Err(conflict("Port reserved for HTTP/HTTPS traffic".into()));
                }
                if !self.config.tcp_ports.contains(&t.port) {
                    return Err(invalid(format!(
                        "port {}: TCP routes use ports {}-{}",
                        t.port,
                        self.config.tcp_ports.start(),
                        self.config.tcp_ports.end()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Fails when another route holds `route`'s domain and path (or port), or when a path
    /// route has no `/` route on its domain to fall back on.
    pub(crate) async fn check_route_free(
        &self,
        route: &Route,
        txn: &mut Txn,
    ) -> Result<(), ControllerError> {
        let key = unique_key(route);
        if let Some(holder) = self.read::<String>(&key).await? {
            if holder.value != route.id() {
                let what = match route {
                    Route::Http(h) => format!("{}{}", h.domain, h.path),
                    Route::Tcp(t) => format!("port {}", t.port),
                };
                return Err(conflict(format!(
                    "Duplicate route: {what} is served by route {}",
                    holder.value
                )));
            }
        }
        if let Route::Http(h) = route {
            if h.path != "/" {
                let root = keys::route_host(&h.domain, "/");
                let Some(at) = self.store.get(&root).await? else {
                    return Err(invalid(format!(
                        "path {} of {}: add a route for {}/ first (path routes fall back on it)",
                        h.path, h.domain, h.domain
                    )));
                };
                txn.unchanged(&root, Some(&at));
            }
        }
        Ok(())
    }

    /// Adds the writes of `new` (replacing `old`, if given) to `txn`.
    pub(crate) fn add_route_to(
        &self,
        txn: &mut Txn,
        app: &App,
        new: StoredRoute,
        old: Option<&Read<StoredRoute>>,
    ) {
        let key = unique_key(&new.route);
        let old_key = old.map(|o| unique_key(&o.value.route));
        if old_key.as_deref() != Some(key.as_str()) {
            txn.unchanged(&key, None);
            if let Some(k) = old_key {
                txn.deletes.push(k);
            }
        }
        let rkey = keys::route(&app.id, new.route.id());
        txn.unchanged(&rkey, old.map(|o| &o.at));
        txn.put_json(key, &new.route.id())
            .put_json(rkey, &new)
            .event(event(app, &new.route, ObjectType::Route));
    }

    /// Adds the removal of `route` to `txn`.
    pub(crate) fn remove_route_from(&self, txn: &mut Txn, app: &App, route: &Route) {
        txn.deletes.push(keys::route(&app.id, route.id()));
        txn.deletes.push(unique_key(route));
        txn.event(event(app, route, ObjectType::RouteDeletion));
    }

    /// Fails when `route` is a `/` route other path routes of its domain depend on.
    async fn check_no_dependents(&self, route: &Route) -> Result<(), ControllerError> {
        let Route::Http(h) = route else { return Ok(()) };
        if h.path != "/" {
            return Ok(());
        }
        let deps = self
            .store
            .list(&keys::route_host(&h.domain, "/"))
            .await?
            .len();
        if deps > 1 {
            return Err(conflict(format!(
                "Route has dependent routes: {} has {} path route(s); remove them first",
                h.domain,
                deps - 1
            )));
        }
        Ok(())
    }

    /// Adds a route to `app`.
    pub async fn create_route(&self, app: &str, route: Route) -> Result<Route, ControllerError> {
        self.transact(|| async {
            let Read { value: a, at } = self.find_app(app).await?;
            let mut route = route.clone();
            self.check_route(&a, &mut route)?;
            let mut txn = Txn::default();
            txn.unchanged(&keys::app(&a.id), Some(&at));
            if self
                .store
                .get(&keys::route(&a.id, route.id()))
                .await?
                .is_some()
            {
                return Err(conflict(format!("route id {} is taken", route.id())));
            }
            self.check_route_free(&route, &mut txn).await?;
            self.add_route_to(&mut txn, &a, StoredRoute::new(route.clone()), None);
            Ok((txn, route.redacted()))
        })
        .await
    }

    async fn find_route(
        &self,
        a: &App,
        kind_: &str,
        id: &str,
    ) -> Result<Read<StoredRoute>, ControllerError> {
        match self.read::<StoredRoute>(&keys::route(&a.id, id)).await? {
            Some(r) if kind(&r.value.route) == kind_ => Ok(r),
            _ => Err(ControllerError::NoSuchRoute {
                app: a.name.to_string(),
                kind: kind_.to_string(),
                id: id.to_string(),
            }),
        }
    }

    /// One of `app`'s routes (certificate keys left out).
    pub async fn route(&self, app: &str, kind_: &str, id: &str) -> Result<Route, ControllerError> {
        let a = self.app(app).await?;
        Ok(self.find_route(&a, kind_, id).await?.value.route.redacted())
    }

    /// Replaces one of `app`'s routes with `route` (same id and type).
    pub async fn update_route(
        &self,
        app: &str,
        kind_: &str,
        id: &str,
        route: Route,
    ) -> Result<Route, ControllerError> {
        if route.id() != id || kind(&route) != kind_ {
            return Err(invalid(format!(
                "the body is {} route {:?}, the path names {kind_} route {id:?}",
                kind(&route),
                route.id()
            )));
        }
        self.transact(|| async {
            let Read { value: a, at } = self.find_app(app).await?;
            let old = self.find_route(&a, kind_, id).await?;
            let mut route = route.clone();
            self.check_route(&a, &mut route)?;
            if unique_key(&route) != unique_key(&old.value.route) {
                self.check_no_dependents(&old.value.route).await?;
            }
            let mut txn = Txn::default();
            txn.unchanged(&keys::app(&a.id), Some(&at));
            self.check_route_free(&route, &mut txn).await?;
            let stored = StoredRoute {
                route: route.clone(),
                created_at: old.value.created_at,
            };
            self.add_route_to(&mut txn, &a, stored, Some(&old));
            Ok((txn, route.redacted()))
        })
        .await
    }

    /// Removes one of `app`'s routes; a `/` route with path routes on its domain stays.
    pub async fn delete_route(
        &self,
        app: &str,
        kind_: &str,
        id: &str,
    ) -> Result<(), ControllerError> {
        self.transact(|| async {
            let a = self.app(app).await?;
            let old = self.find_route(&a, kind_, id).await?;
            self.check_no_dependents(&old.value.route).await?;
            let mut txn = Txn::default();
            txn.unchanged(&keys::route(&a.id, id), Some(&old.at));
            self.remove_route_from(&mut txn, &a, &old.value.route);
            Ok((txn, ()))
        })
        .await
    }

    async fn routes_under(&self, prefix: &str) -> Result<Vec<Route>, ControllerError> {
        let mut all = self.read_all::<StoredRoute>(prefix).await?;
        all.sort_by_key(|r| std::cmp::Reverse(r.value.created_at));
        Ok(all.into_iter().map(|r| r.value.route).collect())
    }

    /// Every route of every app, newest first, with certificate keys: what routers load.
    pub async fn all_routes(&self) -> Result<Vec<Route>, ControllerError> {
        self.routes_under("routes/").await
    }

    /// `app`'s routes, newest first (certificate keys left out).
    pub async fn app_routes(&self, app: &str) -> Result<Vec<Route>, ControllerError> {
        let a = self.app(app).await?;
        let routes = self.routes_under(&keys::of_app("routes", &a.id)).await?;
        Ok(routes.iter().map(Route::redacted).collect())
    }
}
