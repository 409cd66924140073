//! The controller's wire types: what its API reads and writes, and (feature `client`) a typed
//! client of it. Serde only, so a client links none of the controller's store.

mod deployment;
mod event;
mod job;
mod model;
mod scale;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "spec")]
pub mod spec;

pub use deployment::{Deployment, DeploymentStatus, DeploymentUpdate, NewDeployment};
pub use event::{AppReleaseChange, Event, ObjectType};
pub use job::{Job, JobState, LogMessage, NewJob, PutJob, JOB_ID_HEADER, KEPT_DOWN_JOBS};
pub use model::*;
pub use router_api::{Certificate, HttpRoute, Route, TcpRoute};
pub use scale::{NewScaleRequest, ScaleRequest, ScaleRequestState};

/// The `parent_ref` the controller gives an app's routes: `controller/apps/APP_ID`.
pub fn route_parent(app_id: &str) -> String {
    format!("controller/apps/{app_id}")
}
