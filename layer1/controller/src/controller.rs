//! The controller's core: every API operation as a method of [`Controller`], with no HTTP in
//! it. Each write reads what it depends on, checks it, and commits the change together with
//! checks that what it read is unchanged (optimistic concurrency); a lost race re-runs the
//! operation on fresh state, so two controllers sharing a store cannot both win.

use std::future::Future;
use std::ops::RangeInclusive;

use serde::de::DeserializeOwned;

use crate::error::ControllerError;
use crate::store::{Committed, Store, Txn, Versioned};

/// Attempts at an operation whose commit keeps losing races.
const MAX_ATTEMPTS: usize = 20;

/// What the operator configures.
#[derive(Debug, Clone)]
pub struct Config {
    /// The domain of default routes: a new app `NAME` gets `NAME.DOMAIN` (none: no default
    /// routes).
    pub domain: Option<String>,
    /// Ports TCP routes may use.
    pub tcp_ports: RangeInclusive<u16>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            domain: None,
            tcp_ports: 3000..=3500,
        }
    }
}

/// The controller: its store and configuration (cheap to clone: stores share their state).
#[derive(Debug, Clone)]
pub struct Controller<S: Store> {
    pub(crate) store: S,
    pub(crate) config: Config,
    pub(crate) hosts: Option<crate::hosts::Hosts>,
}

/// A value read from the store with its version.
#[derive(Debug, Clone)]
pub(crate) struct Read<T> {
    pub value: T,
    pub at: Versioned,
}

impl<S: Store> Controller<S> {
    /// A controller over `store`.
    pub fn new(store: S, config: Config) -> Self {
        Self {
            store,
            config,
            hosts: None,
        }
    }

    /// The same controller reaching the cluster's hosts through `hosts` (one-off jobs,
    /// kills, logs); without it those answer 503.
    pub fn with_hosts(mut self, hosts: crate::hosts::Hosts) -> Self {
        self.hosts = Some(hosts);
        self
    }

    /// How hosts are reached.
    pub(crate) fn hosts(&self) -> Result<&crate::hosts::Hosts, ControllerError> {
        self.hosts.as_ref().ok_or(ControllerError::NoHostAccess)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reads and decodes `key`.
    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Read<T>>, ControllerError> {
        let Some(at) = self.store.get(key).await? else {
            return Ok(None);
        };
        let value = decode(key, &at.value)?;
        Ok(Some(Read { value, at }))
    }

    /// Every value under `prefix`, decoded.
    pub(crate) async fn read_all<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<Read<T>>, ControllerError> {
        let mut out = Vec::new();
        for (key, at) in self.store.list(prefix).await? {
            let value = decode(&key, &at.value)?;
            out.push(Read { value, at });
        }
        Ok(out)
    }

    /// Runs `attempt` until its transaction commits: `attempt` reads, validates (an error
    /// ends the operation) and returns the transaction and the result to give back.
    pub(crate) async fn transact<T, F, Fut>(&self, mut attempt: F) -> Result<T, ControllerError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(Txn, T), ControllerError>>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let (txn, out) = attempt().await?;
            match self.store.commit(txn).await? {
                Committed::Done(_) => return Ok(out),
                Committed::Conflict => continue,
            }
        }
        Err(ControllerError::Busy(MAX_ATTEMPTS))
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, ControllerError> {
    flynn_http::json::from_slice(bytes).map_err(|e| {
        crate::store::StoreError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        }
        .into()
    })
}

/// A new object id (a random UUID).
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
