//! The controller: the platform's API of apps, artifacts, releases, formations and routes,
//! and the event log every change lands in. The core ([`Controller`]) has no HTTP in it; the
//! edge ([`http`]) maps each route to one core call; state lives in a [`store::Store`]: an
//! embedded redb file for one host ([`embedded`]) or etcd for a cluster ([`etcd`]). The wire
//! types and the client are in `controller-api`.

pub mod controller;
pub mod embedded;
pub mod error;
pub mod etcd;
pub mod events;
pub mod hosts;
pub mod http;
pub mod logs;
pub mod store;

mod apps;
mod deployments;
mod formations;
mod jobs;
mod keys;
mod names;
mod releases;
mod routes;
mod run;
mod scale;
mod validate;

pub use controller::{Config, Controller};
pub use error::ControllerError;
