//! The cluster store: etcd. A key is `ROOT/kv/KEY` (its version is etcd's mod revision),
//! event `N` is `ROOT/events/N` (zero-padded) and `ROOT/seq` holds the last event id. Every
//! commit is one etcd transaction that also compares `seq`'s revision, so event ids are
//! given out by etcd in commit order even with several controllers writing at once.

use std::time::Duration;

use controller_api::Event;
use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, SortOrder, SortTarget, Txn as EtcdTxn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use flynn_http::Timestamp;
use tokio::sync::mpsc;

use crate::store::{event_key, Check, Committed, Store, StoreError, Txn, Versioned};

/// Commits retried when only the event counter moved (another controller committed).
const MAX_SEQ_RETRIES: usize = 64;

/// The etcd store.
#[derive(Clone)]
pub struct Etcd {
    client: etcd_client::Client,
    /// `ROOT/`.
    root: String,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd").field("root", &self.root).finish()
    }
}

fn err(e: etcd_client::Error) -> StoreError {
    StoreError::Etcd(Box::new(e))
}

fn decode_event(key: &[u8], raw: &[u8]) -> Result<Event, StoreError> {
    flynn_http::json::from_slice(raw).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

impl Etcd {
    /// Connects to the cluster at `endpoints` (`http://HOST:PORT`) and the client URLs of
    /// the `members` the host last saw ([`flynn_etcd::CLUSTER_ENDPOINTS_ENV`]), keeping keys
    /// under `prefix`.
    pub async fn connect(
        endpoints: &[String],
        members: &[String],
        prefix: &str,
    ) -> Result<Self, StoreError> {
        let client = flynn_etcd::connect_following(endpoints, members, Duration::from_secs(5))
            .await
            .map_err(err)?;
        Ok(Self {
            client,
            root: format!("{}/", prefix.trim_end_matches('/')),
        })
    }

    fn kv(&self, key: &str) -> String {
        format!("{}kv/{key}", self.root)
    }

    fn seq_key(&self) -> String {
        format!("{}seq", self.root)
    }

    fn event_key(&self, id: u64) -> String {
        format!("{}{}", self.root, event_key(id))
    }

    /// The last event id and the counter's revision (0: no event yet).
    async fn seq(&self) -> Result<(u64, i64), StoreError> {
        let mut c = self.client.clone();
        let got = c.get(self.seq_key(), None).await.map_err(err)?;
        Ok(match got.kvs().first() {
            Some(kv) => (
                std::str::from_utf8(kv.value())
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt {
                        key: self.seq_key(),
                        reason: "not a number".into(),
                    })?,
                kv.mod_revision(),
            ),
            None => (0, 0),
        })
    }
}

impl Store for Etcd {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let mut c = self.client.clone();
        let got = c.get(self.kv(key), None).await.map_err(err)?;
        Ok(got.kvs().first().map(|kv| Versioned {
            value: kv.value().to_vec(),
            version: kv.mod_revision() as u64,
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        let mut c = self.client.clone();
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        let got = c.get(self.kv(prefix), Some(opts)).await.map_err(err)?;
        let strip = self.kv("");
        Ok(got
            .kvs()
            .iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(kv.key());
                let key = key.strip_prefix(strip.as_str()).unwrap_or(&key).to_string();
                let v = Versioned {
                    value: kv.value().to_vec(),
                    version: kv.mod_revision() as u64,
                };
                (key, v)
            })
            .collect())
    }

    async fn commit(&self, txn: Txn) -> Result<Committed, StoreError> {
        let mut c = self.client.clone();
        for _ in 0..MAX_SEQ_RETRIES {
            let (seq, seq_rev) = self.seq().await?;
            let seq_key = self.seq_key();
            let mut when = vec![Compare::mod_revision(
                seq_key.as_str(),
                CompareOp::Equal,
                seq_rev,
            )];
            for check in &txn.checks {
                when.push(match check {
                    Check::Absent(k) => Compare::create_revision(self.kv(k), CompareOp::Equal, 0),
                    Check::Version(k, v) => {
                        Compare::mod_revision(self.kv(k), CompareOp::Equal, *v as i64)
                    }
                });
            }
            let mut ops = Vec::new();
            for (k, v) in &txn.puts {
                ops.push(TxnOp::put(self.kv(k), v.clone(), None));
            }
            for k in &txn.deletes {
                ops.push(TxnOp::delete(self.kv(k), None));
            }
            let now = Timestamp::now();
            let mut events = Vec::new();
            let mut next = seq;
            for e in &txn.events {
                next += 1;
                let event = Event {
                    id: next,
                    app: e.app.clone(),
                    object_type: e.object_type,
                    object_id: e.object_id.clone(),
                    data: e.data.clone(),
                    created_at: now,
                };
                let json = serde_json::to_vec(&event).expect("events serialise");
                ops.push(TxnOp::put(self.event_key(next), json, None));
                events.push(event);
            }
            if next != seq {
                ops.push(TxnOp::put(seq_key.as_str(), next.to_string(), None));
            }
            let t = EtcdTxn::new()
                .when(when)
                .and_then(ops)
                .or_else(vec![TxnOp::get(seq_key.as_str(), None)]);
            let resp = c.txn(t).await.map_err(err)?;
            if resp.succeeded() {
                return Ok(Committed::Done(events));
            }
            let now_rev = resp.op_responses().into_iter().find_map(|r| match r {
                TxnOpResponse::Get(g) => Some(g.kvs().first().map_or(0, |kv| kv.mod_revision())),
                _ => None,
            });
            if now_rev == Some(seq_rev) {
                return Ok(Committed::Conflict);
            }
        }
        Ok(Committed::Conflict)
    }

    async fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let mut c = self.client.clone();
        let start = self.event_key(after.saturating_add(1));
        let end = format!("{}events0", self.root);
        let opts = GetOptions::new()
            .with_range(end)
            .with_limit(limit as i64)
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        let got = c.get(start, Some(opts)).await.map_err(err)?;
        got.kvs()
            .iter()
            .map(|kv| decode_event(kv.key(), kv.value()))
            .collect()
    }

    async fn event(&self, id: u64) -> Result<Option<Event>, StoreError> {
        let mut c = self.client.clone();
        let got = c.get(self.event_key(id), None).await.map_err(err)?;
        got.kvs()
            .first()
            .map(|kv| decode_event(kv.key(), kv.value()))
            .transpose()
    }

    async fn last_event(&self) -> Result<u64, StoreError> {
        Ok(self.seq().await?.0)
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<Event>, StoreError> {
        let mut c = self.client.clone();
        // The revision now: the watch starts right after it, so nothing committed after this
        // call is missed, and nothing before it is sent twice.
        let got = c.get(self.seq_key(), None).await.map_err(err)?;
        let mut revision = got.header().map_or(0, |h| h.revision());
        let (tx, rx) = mpsc::channel(4096);
        let this = self.clone();
        let prefix = format!("{}events/", self.root);
        tokio::spawn(async move {
            loop {
                let opts = WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1);
                let mut c = this.client.clone();
                let Ok((_watcher, mut stream)) = c.watch(prefix.as_str(), Some(opts)).await else {
                    if tx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                while let Ok(Some(resp)) = stream.message().await {
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        revision = revision.max(kv.mod_revision());
                        if ev.event_type() != EventType::Put {
                            continue;
                        }
                        let Ok(event) = decode_event(kv.key(), kv.value()) else {
                            continue;
                        };
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                if tx.is_closed() {
                    return;
                }
                tracing::warn!("etcd event watch broke; resuming after revision {revision}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Ok(rx)
    }
}
