//! The cluster store: etcd. An instance is the key `PREFIX/instances/SERVICE/ID` holding its
//! JSON, attached to a lease of its TTL (a heartbeat attaches a fresh lease), so etcd itself
//! expires it; its index is the key's create revision (global registration order). Every
//! discoverd sharing the etcd cluster follows the prefix with a watch, resumed from the last
//! revision seen when the connection breaks (e.g. the etcd leader goes away).

use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::mpsc;

use crate::store::{Change, Snapshot, Store, StoreError};
use discoverd_api::{Instance, ServiceMeta};

/// The etcd store.
#[derive(Clone)]
pub struct Etcd {
    client: etcd_client::Client,
    /// `ROOT/`: instances under `ROOT/instances/`, metadata under `ROOT/meta/`.
    root: String,
    prefix: String,
    meta_prefix: String,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn err(e: etcd_client::Error) -> StoreError {
    StoreError::Etcd(Box::new(e))
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
        let root = format!("{}/", prefix.trim_end_matches('/'));
        Self {
            client,
            prefix: format!("{root}instances/"),
            meta_prefix: format!("{root}meta/"),
            root,
        }
    }

    fn key(&self, service: &str, id: &str) -> String {
        format!("{}{service}/{id}", self.prefix)
    }

    fn decode(kv: &etcd_client::KeyValue) -> Option<Instance> {
        let mut i: Instance = flynn_http::json::from_slice(kv.value()).ok()?;
        i.index = kv.create_revision() as u64;
        Some(i)
    }

    fn decode_meta(&self, kv: &etcd_client::KeyValue) -> Option<ServiceMeta> {
        let key = std::str::from_utf8(kv.key()).ok()?;
        Some(ServiceMeta {
            service: key.strip_prefix(self.meta_prefix.as_str())?.to_string(),
            data: flynn_http::json::from_slice(kv.value()).ok()?,
            index: kv.mod_revision() as u64,
        })
    }

    fn split_key<'a>(&self, key: &'a str) -> Option<(&'a str, &'a str)> {
        key.strip_prefix(self.prefix.as_str())?.split_once('/')
    }

    /// One try of [`Store::put`] (`None`: the record vanished at once): the old record (for its first registration time) and a
    /// lease, at once; then the write and the read of its create revision in one
    /// transaction: two round trips. etcd rounds TTLs up to its own minimum.
    async fn put_once(
        &self,
        mut instance: Instance,
        ttl: Duration,
    ) -> Result<Option<Instance>, etcd_client::Error> {
        let (mut c, mut l) = (self.client.clone(), self.client.clone());
        let key = self.key(&instance.service, &instance.id);
        let (old, lease) = tokio::join!(
            c.get(key.as_str(), None),
            l.lease_grant(ttl.as_secs().max(1) as i64, None)
        );
        if let Some(old) = old?.kvs().first().and_then(Self::decode) {
            instance.registered_at = old.registered_at;
        }
        let mut stored = instance.clone();
        stored.index = 0;
        let value = serde_json::to_vec(&stored).expect("instances serialise");
        let opts = PutOptions::new().with_lease(lease?.id());
        let txn = Txn::new().and_then(vec![
            TxnOp::put(key.as_str(), value, Some(opts)),
            TxnOp::get(key.as_str(), None),
        ]);
        let resp = c.txn(txn).await?;
        let revision = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.create_revision()),
            _ => None,
        });
        // None: the key vanished between the put and the get (its lease ended at once).
        Ok(revision.map(|r| {
            instance.index = r as u64;
            instance
        }))
    }
}

impl Store for Etcd {
    async fn put(&self, instance: Instance, ttl: Duration) -> Result<Instance, StoreError> {
        // A put (a heartbeat) may be applied twice: one that reached no member is tried
        // again, on the member the client picks next.
        let key = self.key(&instance.service, &instance.id);
        flynn_etcd::retry(|| self.put_once(instance.clone(), ttl))
            .await
            .map_err(err)?
            .ok_or(StoreError::Vanished(key))
    }

    async fn delete(&self, service: &str, id: &str) -> Result<bool, StoreError> {
        let key = self.key(service, id);
        let r = flynn_etcd::retry(|| {
            let (mut c, key) = (self.client.clone(), key.clone());
            async move { c.delete(key, None).await }
        })
        .await
        .map_err(err)?;
        Ok(r.deleted() > 0)
    }

    async fn set_meta(
        &self,
        service: &str,
        data: serde_json::Value,
        expected: Option<u64>,
    ) -> Result<ServiceMeta, StoreError> {
        let mut c = self.client.clone();
        let key = format!("{}{service}", self.meta_prefix);
        let value = serde_json::to_vec(&data).expect("metadata serialises");
        let when = match expected {
            None => Vec::new(),
            Some(0) => vec![Compare::create_revision(key.as_str(), CompareOp::Equal, 0)],
            Some(n) => vec![Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                n as i64,
            )],
        };
        let txn = Txn::new()
            .when(when)
            .and_then(vec![
                TxnOp::put(key.as_str(), value.clone(), None),
                TxnOp::get(key.as_str(), None),
            ])
            .or_else(vec![TxnOp::get(key.as_str(), None)]);
        // Sent again while it reaches no member; a conditional one only once its value is
        // found not to be in place already (then the first one was applied).
        let mut pauses = flynn_etcd::pauses();
        let resp = loop {
            let (e, pause) = match c.txn(txn.clone()).await {
                Ok(resp) => break resp,
                Err(e) if flynn_etcd::unreached(&e) => match pauses.next() {
                    Some(pause) => (e, pause),
                    None => return Err(err(e)),
                },
                Err(e) => return Err(err(e)),
            };
            tracing::debug!(error = %e, "etcd metadata write reached no member; trying again");
            tokio::time::sleep(pause).await;
            if expected.is_some() {
                let got = flynn_etcd::retry(|| {
                    let mut c = self.client.clone();
                    let key = key.clone();
                    async move { c.get(key, None).await }
                })
                .await
                .map_err(err)?;
                if let Some(kv) = got
                    .kvs()
                    .first()
                    .filter(|kv| kv.value() == value.as_slice())
                {
                    return self
                        .decode_meta(kv)
                        .ok_or_else(|| StoreError::Vanished(key.to_string()));
                }
            }
        };
        let kv = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().cloned(),
            _ => None,
        });
        if !resp.succeeded() {
            return Err(StoreError::Conflict {
                service: service.into(),
                expected: expected.unwrap_or(0),
                actual: kv.map_or(0, |kv| kv.mod_revision() as u64),
            });
        }
        kv.and_then(|kv| self.decode_meta(&kv))
            .ok_or_else(|| StoreError::Vanished(key.to_string()))
    }

    async fn watch(&self) -> Result<(Snapshot, mpsc::UnboundedReceiver<Change>), StoreError> {
        let got = flynn_etcd::retry(|| {
            let mut c = self.client.clone();
            async move {
                c.get(self.root.as_str(), Some(GetOptions::new().with_prefix()))
                    .await
            }
        })
        .await
        .map_err(err)?;
        let current = Snapshot {
            instances: got
                .kvs()
                .iter()
                .filter(|kv| kv.key().starts_with(self.prefix.as_bytes()))
                .filter_map(Self::decode)
                .collect(),
            metas: got
                .kvs()
                .iter()
                .filter_map(|kv| self.decode_meta(kv))
                .collect(),
        };
        let mut revision = got.header().map_or(0, |h| h.revision());
        let (tx, rx) = mpsc::unbounded_channel();
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let opts = WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1);
                let mut c = this.client.clone();
                let stream = c.watch(this.root.as_str(), Some(opts)).await;
                let Ok((_watcher, mut stream)) = stream else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                while let Ok(Some(resp)) = stream.message().await {
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        revision = revision.max(kv.mod_revision());
                        let is_meta = kv.key().starts_with(this.meta_prefix.as_bytes());
                        let change = match ev.event_type() {
                            EventType::Put if is_meta => this.decode_meta(kv).map(Change::Meta),
                            EventType::Delete if is_meta => None,
                            EventType::Put => Self::decode(kv).map(Change::Put),
                            EventType::Delete => {
                                let key = String::from_utf8_lossy(kv.key()).into_owned();
                                this.split_key(&key).map(|(s, i)| Change::Delete {
                                    service: s.into(),
                                    id: i.into(),
                                })
                            }
                        };
                        if let Some(change) = change {
                            if tx.send(change).is_err() {
                                return;
                            }
                        }
                    }
                }
                tracing::warn!("etcd watch broke; resuming after revision {revision}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Ok((current, rx))
    }
}
