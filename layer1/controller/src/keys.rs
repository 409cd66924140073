//! Where each object lives in the store: every key the controller writes is made here.

/// `apps/ID`: an [`controller_api::App`].
pub fn app(id: &str) -> String {
    format!("apps/{id}")
}

/// `app-names/NAME`: the id of the app of that name (what keeps names unique).
pub fn app_name(name: &str) -> String {
    format!("app-names/{name}")
}

/// `artifacts/ID`.
pub fn artifact(id: &str) -> String {
    format!("artifacts/{id}")
}

/// `releases/ID`.
pub fn release(id: &str) -> String {
    format!("releases/{id}")
}

/// `app-releases/APP/RELEASE`: the index of an app's releases.
pub fn app_release(app: &str, release: &str) -> String {
    format!("app-releases/{app}/{release}")
}

/// `formations/APP/RELEASE`.
pub fn formation(app: &str, release: &str) -> String {
    format!("formations/{app}/{release}")
}

/// `jobs/APP/ID`: a job as the scheduler reported it.
pub fn job(app: &str, id: &str) -> String {
    format!("jobs/{app}/{id}")
}

/// `deployments/APP/ID`.
pub fn deployment(app: &str, id: &str) -> String {
    format!("deployments/{app}/{id}")
}

/// `deploy-active/APP`: the id of the app's unfinished deployment (one at most).
pub fn deploy_active(app: &str) -> String {
    format!("deploy-active/{app}")
}

/// `scale-requests/APP/ID`.
pub fn scale_request(app: &str, id: &str) -> String {
    format!("scale-requests/{app}/{id}")
}

/// `scale-pending/APP`: the id of the app's pending scale request (one at most).
pub fn scale_pending(app: &str) -> String {
    format!("scale-pending/{app}")
}

/// `routes/APP/ID`: a stored route.
pub fn route(app: &str, id: &str) -> String {
    format!("routes/{app}/{id}")
}

/// `route-hosts/DOMAIN/PATH`: the id of the HTTP route serving it (uniqueness).
pub fn route_host(domain: &str, path: &str) -> String {
    format!("route-hosts/{domain}{path}")
}

/// `route-ports/PORT`: the id of the TCP route on it (uniqueness).
pub fn route_port(port: u16) -> String {
    format!("route-ports/{port}")
}

/// The prefix of everything of one app under `kind` (`formations`, `routes`, `app-releases`).
pub fn of_app(kind: &str, app: &str) -> String {
    format!("{kind}/{app}/")
}
