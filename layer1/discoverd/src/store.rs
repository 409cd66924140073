//! Where registrations live: one narrow trait, implemented by the embedded store (one host,
//! state in a redb file) and by etcd (a cluster; leases for TTLs, watches for changes).

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::model::Instance;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database failed.
    #[error("state database {path}: {message}; check the disk and the --data directory")]
    Db {
        /// The database file.
        path: String,
        /// What failed.
        message: String,
    },
    /// etcd failed or cannot be reached.
    #[error("etcd: {0}; check that the --etcd endpoints are up")]
    Etcd(String),
}

/// A change to the registrations, from this process or another sharing the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An instance was registered or refreshed with new data.
    Put(Instance),
    /// An instance was removed or expired.
    Delete {
        /// Its service.
        service: String,
        /// Its id.
        id: String,
    },
}

/// Durable, shared registrations with expiry.
pub trait Store: Send + Sync + 'static {
    /// Creates or refreshes an instance that expires `ttl` after this call unless refreshed.
    /// Keeps the index of an instance that exists; returns the instance as stored.
    fn put(
        &self,
        instance: Instance,
        ttl: Duration,
    ) -> impl Future<Output = Result<Instance, StoreError>> + Send;

    /// Removes an instance; `false` when there was none.
    fn delete(
        &self,
        service: &str,
        id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every live instance, and the changes after that moment.
    fn watch(
        &self,
    ) -> impl Future<Output = Result<(Vec<Instance>, mpsc::UnboundedReceiver<Change>), StoreError>> + Send;
}
