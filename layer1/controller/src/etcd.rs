//! The cluster store: etcd. A key is `ROOT/kv/KEY` (its version is etcd's mod revision),
//! event `N` is `ROOT/events/N` (zero-padded) and `ROOT/seq` holds the last event id. Every
//! commit is one etcd transaction that also compares `seq`'s revision, so event ids are
//! given out by etcd in commit order even with several controllers writing at once.
//!
//! A request whose connection broke under it ([`flynn_etcd::unreached`]) is sent again: reads
//! as they are; a commit once it is known not to have been applied (`seq` still at the
//! revision it compared), or reported done when it was (its first event is in place).

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
        Ok(Self::from_client(client, prefix))
    }

    /// The store on a client already connected, keeping keys under `prefix`.
    pub fn from_client(client: etcd_client::Client, prefix: &str) -> Self {
        Self {
            client,
            root: format!("{}/", prefix.trim_end_matches('/')),
        }
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
        let got = self.get_raw(&self.seq_key(), None).await?;
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

    /// A read, sent again while it reaches no member ([`flynn_etcd::retry`]).
    async fn get_raw(
        &self,
        key: &str,
        opts: Option<GetOptions>,
    ) -> Result<etcd_client::GetResponse, StoreError> {
        flynn_etcd::retry(|| {
            let mut c = self.client.clone();
            let opts = opts.clone();
            async move { c.get(key, opts).await }
        })
        .await
        .map_err(err)
    }

    /// Sends `t`, a commit compared against `seq` at revision `seq_rev` that, unless it is
    /// empty, also writes `seq`. While the request reaches no member, finds out whether it
    /// was applied before sending it again: `seq` unmoved means it was not; `seq` moved and
    /// event `first`'s stored bytes equal to what `t` writes there means it was; `seq` moved
    /// by another commit means it never can be ([`Sent::Superseded`]). A commit that writes
    /// no event and may have been applied is reported as the error it met.
    async fn send(
        &self,
        t: &EtcdTxn,
        seq_rev: i64,
        empty: bool,
        first: Option<(u64, &[u8])>,
    ) -> Result<Sent, StoreError> {
        let mut pauses = flynn_etcd::pauses();
        let mut resent = false;
        loop {
            let mut c = self.client.clone();
            let (e, pause) = match c.txn(t.clone()).await {
                // Sent again and refused: the first one may have been applied late (it had
                // reached a member before its connection broke).
                Ok(resp) if resent && !resp.succeeded() => {
                    return Ok(match first {
                        Some(first) if self.holds(first).await? => Sent::Applied,
                        _ => Sent::Answered(resp),
                    })
                }
                Ok(resp) => return Ok(Sent::Answered(resp)),
                Err(e) if flynn_etcd::unreached(&e) => match pauses.next() {
                    Some(pause) => (e, pause),
                    None => return Err(err(e)),
                },
                Err(e) => return Err(err(e)),
            };
            resent = true;
            tracing::debug!(error = %e, "etcd commit reached no member; checking whether it was applied");
            tokio::time::sleep(pause).await;
            if empty || self.seq().await?.1 == seq_rev {
                continue;
            }
            let Some(first) = first else {
                return Err(err(e));
            };
            return Ok(if self.holds(first).await? {
                Sent::Applied
            } else {
                Sent::Superseded
            });
        }
    }

    /// Whether event `id` is stored as exactly `bytes` (which hold its time to the
    /// nanosecond and its data: no other commit writes the same).
    async fn holds(&self, (id, bytes): (u64, &[u8])) -> Result<bool, StoreError> {
        let got = self.get_raw(&self.event_key(id), None).await?;
        Ok(got.kvs().first().is_some_and(|kv| kv.value() == bytes))
    }
}

/// What became of a commit sent by [`Etcd::send`].
enum Sent {
    /// etcd answered.
    Answered(etcd_client::TxnResponse),
    /// The connection broke under it, and it had been applied.
    Applied,
    /// The connection broke under it, and another commit took its place first.
    Superseded,
}

impl Store for Etcd {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let got = self.get_raw(&self.kv(key), None).await?;
        Ok(got.kvs().first().map(|kv| Versioned {
            value: kv.value().to_vec(),
            version: kv.mod_revision() as u64,
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        let got = self.get_raw(&self.kv(prefix), Some(opts)).await?;
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
            let empty = ops.is_empty() && txn.events.is_empty();
            let now = Timestamp::now();
            let mut events = Vec::new();
            let mut first = None;
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
                first.get_or_insert_with(|| (next, json.clone()));
                ops.push(TxnOp::put(self.event_key(next), json, None));
                events.push(event);
            }
            // Written by every commit that changes anything (also when its value stays), so
            // that `seq` unmoved means nothing was applied.
            if !empty {
                ops.push(TxnOp::put(seq_key.as_str(), next.to_string(), None));
            }
            let t = EtcdTxn::new()
                .when(when)
                .and_then(ops)
                .or_else(vec![TxnOp::get(seq_key.as_str(), None)]);
            let first = first.as_ref().map(|(id, json)| (*id, json.as_slice()));
            let resp = match self.send(&t, seq_rev, empty, first).await? {
                Sent::Answered(resp) => resp,
                Sent::Applied => return Ok(Committed::Done(events)),
                Sent::Superseded => continue,
            };
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
        let start = self.event_key(after.saturating_add(1));
        let end = format!("{}events0", self.root);
        let opts = GetOptions::new()
            .with_range(end)
            .with_limit(limit as i64)
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        let got = self.get_raw(&start, Some(opts)).await?;
        got.kvs()
            .iter()
            .map(|kv| decode_event(kv.key(), kv.value()))
            .collect()
    }

    async fn event(&self, id: u64) -> Result<Option<Event>, StoreError> {
        let got = self.get_raw(&self.event_key(id), None).await?;
        got.kvs()
            .first()
            .map(|kv| decode_event(kv.key(), kv.value()))
            .transpose()
    }

    async fn last_event(&self) -> Result<u64, StoreError> {
        Ok(self.seq().await?.0)
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<Event>, StoreError> {
        // The revision now: the watch starts right after it, so nothing committed after this
        // call is missed, and nothing before it is sent twice.
        let got = self.get_raw(&self.seq_key(), None).await?;
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
