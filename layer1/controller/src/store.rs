//! Where the controller's state lives: one narrow trait of versioned keys, conditional
//! commits and an event log, implemented by an embedded redb file (one host) and by etcd (a
//! cluster). Everything the controller guarantees across processes rests on [`Store::commit`]:
//! its checks and writes and the events it appends are one atomic step, and event ids are
//! given out by the store in commit order, so two controllers sharing an etcd agree on both.

use std::future::Future;

use controller_api::Event;
use tokio::sync::mpsc;

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
    /// A stored value does not decode (written by another version, or damaged).
    #[error("stored value {key} does not decode ({reason}); the state is damaged or from a newer controller")]
    Corrupt {
        /// Its key.
        key: String,
        /// The decoder's message.
        reason: String,
    },
}

/// A value and the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The bytes (JSON).
    pub value: Vec<u8>,
    /// Changes whenever the key is written (etcd: its mod revision).
    pub version: u64,
}

/// A condition of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The key does not exist.
    Absent(String),
    /// The key exists at this version (unchanged since it was read).
    Version(String, u64),
}

/// An event to append, without its id and time (the store gives both).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The app it concerns, if any.
    pub app: Option<String>,
    /// What it is about.
    pub object_type: controller_api::ObjectType,
    /// That object's id.
    pub object_id: String,
    /// The object.
    pub data: serde_json::Value,
}

/// One atomic change: when every check holds, every put and delete is applied and every
/// event appended; otherwise nothing is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Txn {
    /// Conditions.
    pub checks: Vec<Check>,
    /// Keys to write.
    pub puts: Vec<(String, Vec<u8>)>,
    /// Keys to remove.
    pub deletes: Vec<String>,
    /// Events to append, in order.
    pub events: Vec<NewEvent>,
}

impl Txn {
    /// Adds a check that `key` is unchanged since it was read as `v` (absent when `None`).
    pub fn unchanged(&mut self, key: &str, v: Option<&Versioned>) -> &mut Self {
        self.checks.push(match v {
            Some(v) => Check::Version(key.to_string(), v.version),
            None => Check::Absent(key.to_string()),
        });
        self
    }

    /// Adds a write of `value` as JSON.
    pub fn put_json(&mut self, key: String, value: &impl serde::Serialize) -> &mut Self {
        let bytes = serde_json::to_vec(value).expect("state serialises");
        self.puts.push((key, bytes));
        self
    }

    /// Adds an event.
    pub fn event(&mut self, e: NewEvent) -> &mut Self {
        self.events.push(e);
        self
    }
}

/// What a commit came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Committed {
    /// Applied; the events as appended.
    Done(Vec<Event>),
    /// A check failed; nothing changed.
    Conflict,
}

/// Durable, shared controller state.
pub trait Store: Clone + Send + Sync + 'static {
    /// The value of `key`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// Every key under `prefix` with its value, in key order.
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<(String, Versioned)>, StoreError>> + Send;

    /// Applies `txn` atomically if its checks hold.
    fn commit(&self, txn: Txn) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// Events with ids after `after`, oldest first, at most `limit`.
    fn events(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;

    /// One event.
    fn event(&self, id: u64) -> impl Future<Output = Result<Option<Event>, StoreError>> + Send;

    /// The id of the newest event (0: none yet).
    fn last_event(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Events as they are committed, by this process or another sharing the store, from now
    /// on. The channel closes when the store can no longer follow (a watcher then reconnects
    /// and reads what it missed with [`Store::events`]).
    fn subscribe(&self) -> impl Future<Output = Result<mpsc::Receiver<Event>, StoreError>> + Send;
}

/// The key of event `id`: zero-padded so key order is id order.
pub fn event_key(id: u64) -> String {
    format!("events/{id:020}")
}
