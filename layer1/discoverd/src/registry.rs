//! The registry: this process's view of every service, kept from the store's changes, with
//! leaders (the oldest live instance of a service leads) and the events watchers receive.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::store::{Change, Store, StoreError};
use discoverd_api::{Event, Instance, Registration, ServiceMeta};

/// Events kept for slow watchers.
const BACKLOG: usize = 8192;

#[derive(Default)]
struct View {
    services: BTreeMap<String, BTreeMap<String, Instance>>,
    leaders: BTreeMap<String, String>,
    metas: BTreeMap<String, ServiceMeta>,
}

/// Registrations over a store.
pub struct Registry<S: Store> {
    store: Arc<S>,
    view: Arc<Mutex<View>>,
    events: broadcast::Sender<Event>,
}

impl<S: Store> Clone for Registry<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            view: self.view.clone(),
            events: self.events.clone(),
        }
    }
}

impl<S: Store> std::fmt::Debug for Registry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

fn lock(v: &Mutex<View>) -> MutexGuard<'_, View> {
    v.lock().unwrap_or_else(|p| p.into_inner())
}

impl View {
    fn leader_of(&self, service: &str) -> Option<&Instance> {
        self.services.get(service)?.values().min_by_key(|i| i.index)
    }

    /// Applies a change; returns the events it causes (none when it changes nothing).
    fn apply(&mut self, change: Change) -> Vec<Event> {
        let mut out = Vec::new();
        let service = match change {
            Change::Meta(meta) => {
                if self.metas.get(&meta.service) == Some(&meta) {
                    return out;
                }
                self.metas.insert(meta.service.clone(), meta.clone());
                out.push(Event::ServiceMeta {
                    service: meta.service.clone(),
                    meta,
                });
                return out;
            }
            Change::Put(inst) => {
                let service = inst.service.clone();
                let instances = self.services.entry(service.clone()).or_default();
                let event = match instances.insert(inst.id.clone(), inst.clone()) {
                    None => Some(Event::Up {
                        service: service.clone(),
                        instance: inst,
                    }),
                    Some(old) if old != inst => Some(Event::Update {
                        service: service.clone(),
                        instance: inst,
                    }),
                    Some(_) => None,
                };
                out.extend(event);
                service
            }
            Change::Delete { service, id } => {
                let removed = self.services.get_mut(&service).and_then(|m| m.remove(&id));
                if let Some(inst) = removed {
                    out.push(Event::Down {
                        service: service.clone(),
                        instance: inst,
                    });
                }
                if self.services.get(&service).is_some_and(|m| m.is_empty()) {
                    self.services.remove(&service);
                }
                service
            }
        };
        let leader = self.leader_of(&service).cloned();
        let old = self.leaders.get(&service).cloned();
        if leader.as_ref().map(|l| &l.id) != old.as_ref() {
            match &leader {
                Some(l) => self.leaders.insert(service.clone(), l.id.clone()),
                None => self.leaders.remove(&service),
            };
            out.push(Event::Leader {
                service,
                instance: leader,
            });
        }
        out
    }
}

impl<S: Store> Registry<S> {
    /// A registry over `store`, following its changes. Must run in a tokio runtime.
    pub async fn start(store: S) -> Result<Self, StoreError> {
        let store = Arc::new(store);
        let (current, mut changes) = store.watch().await?;
        let mut view = View::default();
        for i in current.instances {
            view.apply(Change::Put(i));
        }
        for m in current.metas {
            view.apply(Change::Meta(m));
        }
        let reg = Self {
            store,
            view: Arc::new(Mutex::new(view)),
            events: broadcast::channel(BACKLOG).0,
        };
        let r = reg.clone();
        tokio::spawn(async move {
            while let Some(c) = changes.recv().await {
                r.apply(c);
            }
        });
        Ok(reg)
    }

    fn apply(&self, change: Change) {
        let mut v = lock(&self.view);
        for e in v.apply(change) {
            let _ = self.events.send(e);
        }
    }

    /// Registers (or heartbeats) an instance that expires after `ttl` without a heartbeat.
    pub async fn register(
        &self,
        service: &str,
        id: &str,
        reg: Registration,
        ttl: Duration,
    ) -> Result<Instance, StoreError> {
        let inst = Instance {
            id: id.into(),
            service: service.into(),
            addr: reg.addr,
            proto: reg.proto,
            meta: reg.meta,
            index: 0,
            registered_at: discoverd_api::Timestamp::now(),
        };
        let stored = self.store.put(inst, ttl).await?;
        // Applied now so that the caller's next read sees it; the store's own notice of the
        // same change then changes nothing.
        self.apply(Change::Put(stored.clone()));
        Ok(stored)
    }

    /// Removes an instance; `false` when it was not registered.
    pub async fn deregister(&self, service: &str, id: &str) -> Result<bool, StoreError> {
        let found = self.store.delete(service, id).await?;
        self.apply(Change::Delete {
            service: service.into(),
            id: id.into(),
        });
        Ok(found)
    }

    /// Sets `service`'s metadata (compare-and-swap on its version when `expected` is given).
    pub async fn set_meta(
        &self,
        service: &str,
        data: serde_json::Value,
        expected: Option<u64>,
    ) -> Result<ServiceMeta, StoreError> {
        let meta = self.store.set_meta(service, data, expected).await?;
        self.apply(Change::Meta(meta.clone()));
        Ok(meta)
    }

    /// `service`'s metadata, if set.
    pub fn meta(&self, service: &str) -> Option<ServiceMeta> {
        lock(&self.view).metas.get(service).cloned()
    }

    /// The live instances of `service`, oldest first.
    pub fn instances(&self, service: &str) -> Vec<Instance> {
        let v = lock(&self.view);
        let mut out: Vec<Instance> = v
            .services
            .get(service)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        out.sort_by_key(|i| i.index);
        out
    }

    /// The service's leader: its oldest live instance.
    pub fn leader(&self, service: &str) -> Option<Instance> {
        lock(&self.view).leader_of(service).cloned()
    }

    /// Services with at least one live instance.
    pub fn services(&self) -> Vec<String> {
        lock(&self.view).services.keys().cloned().collect()
    }

    /// A watch of `service` (all services when `None`): the current state as `up` events,
    /// then `leader` per service and one `current`, followed by live events on the receiver.
    pub fn watch(&self, service: Option<&str>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let v = lock(&self.view);
        let rx = self.events.subscribe();
        let mut first = Vec::new();
        for (name, instances) in &v.services {
            if service.is_some_and(|s| s != name) {
                continue;
            }
            let mut sorted: Vec<&Instance> = instances.values().collect();
            sorted.sort_by_key(|i| i.index);
            for i in sorted {
                first.push(Event::Up {
                    service: name.clone(),
                    instance: i.clone(),
                });
            }
            first.push(Event::Leader {
                service: name.clone(),
                instance: v.leader_of(name).cloned(),
            });
        }
        for (name, meta) in &v.metas {
            if service.is_none_or(|s| s == name) {
                first.push(Event::ServiceMeta {
                    service: name.clone(),
                    meta: meta.clone(),
                });
            }
        }
        first.push(Event::Current {
            service: service.unwrap_or("").into(),
        });
        (first, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::Embedded;
    use discoverd_api::EventKind;

    fn reg(addr: &str) -> Registration {
        Registration {
            addr: addr.parse().unwrap(),
            proto: discoverd_api::Proto::Tcp,
            meta: Default::default(),
        }
    }

    #[tokio::test]
    async fn leaders_are_the_oldest_and_expiry_announces_down() {
        let t = tempfile::tempdir().unwrap();
        let r = Registry::start(Embedded::open(t.path()).unwrap())
            .await
            .unwrap();
        let (_, mut rx) = r.watch(Some("web"));
        let ttl = Duration::from_secs(30);
        r.register("web", "a", reg("10.0.0.1:80"), ttl)
            .await
            .unwrap();
        r.register("web", "b", reg("10.0.0.2:80"), ttl)
            .await
            .unwrap();
        assert_eq!(r.leader("web").unwrap().id, "a");
        let kinds = |rx: &mut broadcast::Receiver<Event>| {
            let mut k = Vec::new();
            while let Ok(e) = rx.try_recv() {
                k.push((e.kind(), e.instance().map(|i| i.id.clone())));
            }
            k
        };
        assert_eq!(
            kinds(&mut rx),
            [
                (EventKind::Up, Some("a".into())),
                (EventKind::Leader, Some("a".into())),
                (EventKind::Up, Some("b".into())),
            ]
        );
        // A heartbeat with the same data is silent; changed metadata is an update.
        r.register("web", "a", reg("10.0.0.1:80"), ttl)
            .await
            .unwrap();
        let mut changed = reg("10.0.0.1:80");
        changed.meta.insert("v".into(), "2".into());
        r.register("web", "a", changed, ttl).await.unwrap();
        assert_eq!(kinds(&mut rx), [(EventKind::Update, Some("a".into()))]);
        // The leader goes: the next oldest leads.
        assert!(r.deregister("web", "a").await.unwrap());
        assert_eq!(
            kinds(&mut rx),
            [
                (EventKind::Down, Some("a".into())),
                (EventKind::Leader, Some("b".into())),
            ]
        );
        // b's last heartbeat asks for a short TTL, then b stops heartbeating and expires:
        // the events are awaited (however busy the machine), not expected by a deadline.
        r.register("web", "b", reg("10.0.0.2:80"), Duration::from_millis(300))
            .await
            .unwrap();
        let mut expiry = Vec::new();
        while expiry.len() < 2 {
            let e = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                .await
                .expect("b expires")
                .unwrap();
            expiry.push((e.kind(), e.instance().map(|i| i.id.clone())));
        }
        assert_eq!(
            expiry,
            [
                (EventKind::Down, Some("b".into())),
                (EventKind::Leader, None)
            ]
        );
        assert!(r.instances("web").is_empty());
        assert!(!r.deregister("web", "a").await.unwrap());
    }
}
