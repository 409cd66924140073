//! The single-host store: a redb file. A commit is one redb write transaction (redb allows one
//! at a time, so checks, writes and event ids are serialised by the database itself) and is
//! durable when it returns.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use controller_api::Event;
use flynn_http::Timestamp;
use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::mpsc;

use crate::store::{Check, Committed, Store, StoreError, Txn, Versioned};

/// Key -> 8-byte big-endian version, then the value.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// Event id -> event JSON.
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// `rev` (last version given out), `seq` (last event id).
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
/// Events a subscriber may fall behind by before it is dropped (and reads them back).
const SUBSCRIBER_BACKLOG: usize = 4096;

/// The embedded store.
#[derive(Clone)]
pub struct Embedded {
    db: Arc<Database>,
    path: PathBuf,
    subscribers: Arc<Mutex<Vec<mpsc::Sender<Event>>>>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("path", &self.path)
            .finish()
    }
}

fn encode(version: u64, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(value);
    v
}

fn decode(key: &str, raw: &[u8]) -> Result<Versioned, StoreError> {
    if raw.len() < 8 {
        return Err(StoreError::Corrupt {
            key: key.to_string(),
            reason: "shorter than its version".into(),
        });
    }
    let (v, value) = raw.split_at(8);
    Ok(Versioned {
        value: value.to_vec(),
        version: u64::from_be_bytes(v.try_into().expect("8 bytes")),
    })
}

fn decode_event(id: u64, raw: &[u8]) -> Result<Event, StoreError> {
    flynn_http::json::from_slice(raw).map_err(|e| StoreError::Corrupt {
        key: crate::store::event_key(id),
        reason: e.to_string(),
    })
}

impl Embedded {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let s = Self {
            db: Arc::new(Database::create(path).map_err(|e| Self::err_at(path, e))?),
            path: path.to_path_buf(),
            subscribers: Arc::default(),
        };
        let w = s.db.begin_write().map_err(|e| s.err(e))?;
        w.open_table(KV).map_err(|e| s.err(e))?;
        w.open_table(EVENTS).map_err(|e| s.err(e))?;
        w.open_table(COUNTERS).map_err(|e| s.err(e))?;
        w.commit().map_err(|e| s.err(e))?;
        Ok(s)
    }

    fn err_at(path: &Path, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: path.display().to_string(),
            source: Box::new(e.into()),
        }
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        Self::err_at(&self.path, e)
    }

    fn commit_blocking(&self, txn: Txn) -> Result<Committed, StoreError> {
        // Held from the write to the hand-off, so subscribers get events in id order.
        let mut subs = self.subscribers.lock().expect("subscriber list");
        let w = self.db.begin_write().map_err(|e| self.err(e))?;
        let events = {
            let mut kv = w.open_table(KV).map_err(|e| self.err(e))?;
            let mut counters = w.open_table(COUNTERS).map_err(|e| self.err(e))?;
            for check in &txn.checks {
                let holds = match check {
                    Check::Absent(k) => kv.get(k.as_str()).map_err(|e| self.err(e))?.is_none(),
                    Check::Version(k, v) => match kv.get(k.as_str()).map_err(|e| self.err(e))? {
                        Some(raw) => decode(k, raw.value())?.version == *v,
                        None => false,
                    },
                };
                if !holds {
                    return Ok(Committed::Conflict);
                }
            }
            let read = |c: &redb::Table<&str, u64>, name: &str| -> Result<u64, StoreError> {
                Ok(c.get(name)
                    .map_err(|e| self.err(e))?
                    .map_or(0, |v| v.value()))
            };
            let rev = read(&counters, "rev")? + 1;
            let mut seq = read(&counters, "seq")?;
            for (k, value) in &txn.puts {
                kv.insert(k.as_str(), encode(rev, value).as_slice())
                    .map_err(|e| self.err(e))?;
            }
            for k in &txn.deletes {
                kv.remove(k.as_str()).map_err(|e| self.err(e))?;
            }
            let mut table = w.open_table(EVENTS).map_err(|e| self.err(e))?;
            let now = Timestamp::now();
            let mut events = Vec::new();
            for e in txn.events {
                seq += 1;
                let event = Event {
                    id: seq,
                    app: e.app,
                    object_type: e.object_type,
                    object_id: e.object_id,
                    data: e.data,
                    created_at: now,
                };
                let json = serde_json::to_vec(&event).expect("events serialise");
                table
                    .insert(seq, json.as_slice())
                    .map_err(|e| self.err(e))?;
                events.push(event);
            }
            counters.insert("rev", rev).map_err(|e| self.err(e))?;
            counters.insert("seq", seq).map_err(|e| self.err(e))?;
            events
        };
        w.commit().map_err(|e| self.err(e))?;
        subs.retain(|tx| events.iter().all(|e| tx.try_send(e.clone()).is_ok()));
        Ok(Committed::Done(events))
    }
}

impl Store for Embedded {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let kv = r.open_table(KV).map_err(|e| self.err(e))?;
        match kv.get(key).map_err(|e| self.err(e))? {
            Some(raw) => Ok(Some(decode(key, raw.value())?)),
            None => Ok(None),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let kv = r.open_table(KV).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in kv.range(prefix..).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_string(), decode(key, v.value())?));
        }
        Ok(out)
    }

    async fn commit(&self, txn: Txn) -> Result<Committed, StoreError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.commit_blocking(txn))
            .await
            .expect("commit task")
    }

    async fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(EVENTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t
            .range(after.saturating_add(1)..)
            .map_err(|e| self.err(e))?
        {
            if out.len() >= limit {
                break;
            }
            let (id, raw) = item.map_err(|e| self.err(e))?;
            out.push(decode_event(id.value(), raw.value())?);
        }
        Ok(out)
    }

    async fn event(&self, id: u64) -> Result<Option<Event>, StoreError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(EVENTS).map_err(|e| self.err(e))?;
        match t.get(id).map_err(|e| self.err(e))? {
            Some(raw) => Ok(Some(decode_event(id, raw.value())?)),
            None => Ok(None),
        }
    }

    async fn last_event(&self) -> Result<u64, StoreError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let c = r.open_table(COUNTERS).map_err(|e| self.err(e))?;
        Ok(c.get("seq")
            .map_err(|e| self.err(e))?
            .map_or(0, |v| v.value()))
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<Event>, StoreError> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BACKLOG);
        self.subscribers.lock().expect("subscriber list").push(tx);
        Ok(rx)
    }
}
