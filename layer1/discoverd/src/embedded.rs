//! The single-host store: instances in memory with deadlines, written through to a redb file
//! (with their expiry as wall-clock time) so a restarted discoverd keeps them for the rest of
//! their TTL. A reaper task expires instances whose heartbeats stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::store::{Change, Snapshot, Store, StoreError};
use discoverd_api::{Instance, ServiceMeta};

const INSTANCES: TableDefinition<&str, &[u8]> = TableDefinition::new("instances");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SERVICE_META: TableDefinition<&str, &[u8]> = TableDefinition::new("service_meta");
/// How often expiry is checked.
const REAP_EVERY: Duration = Duration::from_millis(100);

#[derive(Serialize, Deserialize)]
struct Record {
    instance: Instance,
    /// Expiry, milliseconds since the epoch.
    expires: u64,
}

struct State {
    instances: BTreeMap<(String, String), Record>,
    metas: BTreeMap<String, ServiceMeta>,
    next_index: u64,
    watchers: Vec<mpsc::UnboundedSender<Change>>,
}

/// The embedded store.
#[derive(Clone)]
pub struct Embedded {
    state: Arc<Mutex<State>>,
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("path", &self.path)
            .finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn key(service: &str, id: &str) -> String {
    format!("{service}/{id}")
}

impl Embedded {
    /// Opens (creating) the store in `dir` and starts its reaper. Must run in a tokio runtime.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("discoverd.redb");
        let err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Db {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(e.into()))?;
        let db = Database::create(&path).map_err(|e| err(e.into()))?;
        let mut instances = BTreeMap::new();
        let mut metas = BTreeMap::new();
        let mut next_index = 1;
        {
            let tx = db.begin_write().map_err(|e| err(e.into()))?;
            {
                let t = tx.open_table(INSTANCES).map_err(|e| err(e.into()))?;
                let now = now_ms();
                for row in t.iter().map_err(|e| err(e.into()))? {
                    let (_, v) = row.map_err(|e| err(e.into()))?;
                    if let Ok(rec) = flynn_http::json::from_slice::<Record>(v.value()) {
                        if rec.expires > now {
                            let k = (rec.instance.service.clone(), rec.instance.id.clone());
                            instances.insert(k, rec);
                        }
                    }
                }
                let sm = tx.open_table(SERVICE_META).map_err(|e| err(e.into()))?;
                for row in sm.iter().map_err(|e| err(e.into()))? {
                    let (_, v) = row.map_err(|e| err(e.into()))?;
                    if let Ok(m) = flynn_http::json::from_slice::<ServiceMeta>(v.value()) {
                        metas.insert(m.service.clone(), m);
                    }
                }
                let m = tx.open_table(META).map_err(|e| err(e.into()))?;
                let stored = m
                    .get("next_index")
                    .map_err(|e| err(e.into()))?
                    .map(|v| v.value());
                if let Some(v) = stored {
                    next_index = v;
                }
            }
            tx.commit().map_err(|e| err(e.into()))?;
        }
        let store = Self {
            state: Arc::new(Mutex::new(State {
                instances,
                metas,
                next_index,
                watchers: Vec::new(),
            })),
            db: Arc::new(db),
            path,
        };
        let reaper = store.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REAP_EVERY).await;
                reaper.reap().await;
            }
        });
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
        StoreError::Db {
            path: self.path.display().to_string(),
            source: e.into(),
        }
    }

    /// Writes or removes records in one transaction.
    fn persist(
        &self,
        puts: &[&Record],
        deletes: &[String],
        next_index: u64,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(INSTANCES).map_err(|e| self.err(e))?;
            for r in puts {
                let bytes = serde_json::to_vec(r).expect("records serialise");
                t.insert(
                    key(&r.instance.service, &r.instance.id).as_str(),
                    bytes.as_slice(),
                )
                .map_err(|e| self.err(e))?;
            }
            for k in deletes {
                t.remove(k.as_str()).map_err(|e| self.err(e))?;
            }
            let mut m = tx.open_table(META).map_err(|e| self.err(e))?;
            m.insert("next_index", next_index)
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn announce(state: &mut State, change: Change) {
        state.watchers.retain(|w| w.send(change.clone()).is_ok());
    }

    async fn reap(&self) {
        let now = now_ms();
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut st = this.lock();
            let expired: Vec<(String, String)> = st
                .instances
                .iter()
                .filter(|(_, r)| r.expires <= now)
                .map(|(k, _)| k.clone())
                .collect();
            if expired.is_empty() {
                return;
            }
            let keys: Vec<String> = expired.iter().map(|(s, i)| key(s, i)).collect();
            if let Err(e) = this.persist(&[], &keys, st.next_index) {
                tracing::error!(error = %e, "persisting expiries");
            }
            for (service, id) in expired {
                st.instances.remove(&(service.clone(), id.clone()));
                tracing::info!(%service, %id, "instance expired");
                Self::announce(&mut st, Change::Delete { service, id });
            }
        })
        .await;
    }
}

impl Store for Embedded {
    async fn put(&self, mut instance: Instance, ttl: Duration) -> Result<Instance, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut st = this.lock();
            let k = (instance.service.clone(), instance.id.clone());
            let changed = match st.instances.get(&k) {
                Some(old) => {
                    instance.index = old.instance.index;
                    instance.registered_at = old.instance.registered_at;
                    old.instance != instance
                }
                None => {
                    instance.index = st.next_index;
                    st.next_index += 1;
                    true
                }
            };
            let rec = Record {
                instance: instance.clone(),
                expires: now_ms() + ttl.as_millis() as u64,
            };
            this.persist(&[&rec], &[], st.next_index)?;
            st.instances.insert(k, rec);
            if changed {
                Self::announce(&mut st, Change::Put(instance.clone()));
            }
            Ok(instance)
        })
        .await
        .map_err(|e| self.err(e))?
    }

    async fn delete(&self, service: &str, id: &str) -> Result<bool, StoreError> {
        let (this, service, id) = (self.clone(), service.to_string(), id.to_string());
        tokio::task::spawn_blocking(move || {
            let mut st = this.lock();
            if st
                .instances
                .remove(&(service.clone(), id.clone()))
                .is_none()
            {
                return Ok(false);
            }
            this.persist(&[], &[key(&service, &id)], st.next_index)?;
            Self::announce(&mut st, Change::Delete { service, id });
            Ok(true)
        })
        .await
        .map_err(|e| self.err(e))?
    }

    async fn set_meta(
        &self,
        service: &str,
        data: serde_json::Value,
        expected: Option<u64>,
    ) -> Result<ServiceMeta, StoreError> {
        let (this, service) = (self.clone(), service.to_string());
        tokio::task::spawn_blocking(move || {
            let mut st = this.lock();
            let actual = st.metas.get(&service).map_or(0, |m| m.index);
            if let Some(expected) = expected.filter(|e| *e != actual) {
                return Err(StoreError::Conflict {
                    service,
                    expected,
                    actual,
                });
            }
            let meta = ServiceMeta {
                service: service.clone(),
                data,
                index: st.next_index,
            };
            st.next_index += 1;
            let tx = this.db.begin_write().map_err(|e| this.err(e))?;
            {
                let mut t = tx.open_table(SERVICE_META).map_err(|e| this.err(e))?;
                let bytes = serde_json::to_vec(&meta).expect("metadata serialises");
                t.insert(service.as_str(), bytes.as_slice())
                    .map_err(|e| this.err(e))?;
                let mut m = tx.open_table(META).map_err(|e| this.err(e))?;
                m.insert("next_index", st.next_index)
                    .map_err(|e| this.err(e))?;
            }
            tx.commit().map_err(|e| this.err(e))?;
            st.metas.insert(service, meta.clone());
            Self::announce(&mut st, Change::Meta(meta.clone()));
            Ok(meta)
        })
        .await
        .map_err(|e| self.err(e))?
    }

    async fn watch(&self) -> Result<(Snapshot, mpsc::UnboundedReceiver<Change>), StoreError> {
        let mut st = self.lock();
        let (tx, rx) = mpsc::unbounded_channel();
        st.watchers.push(tx);
        let snapshot = Snapshot {
            instances: st.instances.values().map(|r| r.instance.clone()).collect(),
            metas: st.metas.values().cloned().collect(),
        };
        Ok((snapshot, rx))
    }
}
