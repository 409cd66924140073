//! Where registrations live: one narrow trait, implemented by the embedded store (one host,
//! state in a redb file) and by etcd (a cluster; leases for TTLs, watches for changes).

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;

use discoverd_api::{Instance, ServiceMeta};

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database failed.
    #[error("state database {path}: check the disk and the data directory")]
    Db {
        /// The database file.
        path: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// etcd failed or cannot be reached.
    #[error("etcd: check that the etcd endpoints are up")]
    Etcd(#[source] Box<etcd_client::Error>),
    /// A key etcd acknowledged was gone when read back (another writer removed it).
    #[error("etcd: {0} vanished right after it was written; retry")]
    Vanished(String),
    /// A compare-and-swap of service metadata found another version.
    #[error("metadata of {service} is at version {actual}, not {expected}; read it and retry")]
    Conflict {
        /// The service.
        service: String,
        /// The version the writer expected.
        expected: u64,
        /// The version there is (0: none).
        actual: u64,
    },
}

/// The state at the start of a watch.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Live instances.
    pub instances: Vec<Instance>,
    /// Service metadata.
    pub metas: Vec<ServiceMeta>,
}

/// A change to the registrations, from this process or another sharing the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An instance was registered or refreshed with new data.
    Put(Instance),
    /// A service's metadata was set.
    Meta(ServiceMeta),
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

    /// Sets a service's metadata; with `expected`, only if its version is that (0: none yet).
    fn set_meta(
        &self,
        service: &str,
        data: serde_json::Value,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<ServiceMeta, StoreError>> + Send;

    /// Every live instance and all metadata, and the changes after that moment.
    fn watch(
        &self,
    ) -> impl Future<Output = Result<(Snapshot, mpsc::UnboundedReceiver<Change>), StoreError>> + Send;
}
