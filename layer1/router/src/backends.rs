//! Backends: every discoverd service's live instances, kept current by one discoverd watch
//! (never by polling), with in-flight counts, passive ejection after connect failures, the
//! less-loaded-of-two choice, and draining of backends that leave.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use discoverd_api::{client::Client, Event as DiscoverdEvent, Instance};
use flynn_http::service::Shutdown;
use router_api::EventKind;
use tokio::sync::Notify;

use crate::clock::now_ms;
use crate::events::Events;
use crate::pool::Pool;

/// How long a backend that refused a connection gets no new requests.
pub const EJECT_FOR: Duration = Duration::from_secs(5);

/// One instance of a service.
#[derive(Debug)]
pub struct Backend {
    /// The service.
    pub service: Arc<str>,
    /// The discoverd instance id.
    pub id: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its connections.
    pub pool: Pool,
    in_flight: AtomicU64,
    ejected_until: AtomicU64,
    down: AtomicBool,
    drained: AtomicBool,
    gone: Notify,
    events: Events,
}

impl Backend {
    fn new(service: Arc<str>, instance: &Instance, events: Events) -> Self {
        Self {
            service,
            id: instance.id.clone(),
            addr: instance.addr,
            pool: Pool::default(),
            in_flight: AtomicU64::new(0),
            ejected_until: AtomicU64::new(0),
            down: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            gone: Notify::new(),
            events,
        }
    }

    /// The wire form, with the in-flight count now.
    pub fn to_api(&self) -> router_api::Backend {
        router_api::Backend {
            service: self.service.to_string(),
            addr: self.addr,
            id: self.id.clone(),
            in_flight: self.in_flight(),
        }
    }

    /// Requests and connections in flight to it.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Counts a request or connection until the guard drops; `None` once the backend left
    /// discoverd (it may have been chosen just before). Count first, then look: a backend
    /// marked down either sees this request in flight or this request sees it down, never
    /// neither, so no request starts on a backend already reported drained.
    pub fn begin(self: &Arc<Self>) -> Option<InFlight> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let flight = InFlight(self.clone());
        (!self.down.load(Ordering::SeqCst)).then_some(flight)
    }

    /// Takes it out of the choice for [`EJECT_FOR`] (a connect failed).
    pub fn eject(&self) {
        tracing::warn!(service = %self.service, addr = %self.addr, "backend refused a connection: ejected for {EJECT_FOR:?}");
        self.ejected_until
            .store(now_ms() + EJECT_FOR.as_millis() as u64, Ordering::Relaxed);
        self.pool.clear();
    }

    fn ejected(&self) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now_ms()
    }

    /// True once it left discoverd.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Resolves once it left discoverd (tunnels to it close then unless their route drains).
    pub async fn gone(&self) {
        let notified = self.gone.notified();
        if self.is_down() {
            return;
        }
        notified.await
    }

    fn mark_down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.gone.notify_waiters();
        self.pool.clear();
        self.events
            .emit(EventKind::BackendDown, None, Some(self.to_api()));
        self.maybe_drained();
    }

    fn maybe_drained(&self) {
        if self.is_down() && self.in_flight() == 0 && !self.drained.swap(true, Ordering::AcqRel) {
            self.events
                .emit(EventKind::BackendDrained, None, Some(self.to_api()));
        }
    }
}

/// One request or connection in flight to a backend; dropping it ends it (and reports the
/// backend drained when it was the last one to a backend that went down).
#[derive(Debug)]
pub struct InFlight(Arc<Backend>);

impl InFlight {
    /// The backend.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.maybe_drained();
        }
    }
}

/// A service's live backends and leader.
#[derive(Debug)]
pub struct Service {
    /// The service name.
    pub name: Arc<str>,
    live: ArcSwap<Vec<Arc<Backend>>>,
    leader: ArcSwapOption<Backend>,
}

impl Service {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            live: ArcSwap::from_pointee(Vec::new()),
            leader: ArcSwapOption::empty(),
        }
    }

    /// The live backends.
    pub fn backends(&self) -> Arc<Vec<Arc<Backend>>> {
        self.live.load_full()
    }

    /// The live backend at `addr` (a sticky cookie's), unless ejected.
    pub fn find(&self, addr: SocketAddr) -> Option<Arc<Backend>> {
        self.live
            .load()
            .iter()
            .find(|b| b.addr == addr && !b.ejected())
            .cloned()
    }

    /// A backend for a new request: the leader when `leader`, else the less loaded of two
    /// chosen at random; never one in `tried`; ejected backends only when nothing else is
    /// left (failing open beats refusing every request).
    pub fn pick(&self, leader: bool, tried: &[SocketAddr]) -> Option<Arc<Backend>> {
        if leader {
            return self
                .leader
                .load_full()
                .filter(|b| !b.is_down() && !tried.contains(&b.addr));
        }
        let live = self.live.load();
        let fresh = |b: &&Arc<Backend>| !tried.contains(&b.addr);
        let healthy: Vec<&Arc<Backend>> =
            live.iter().filter(fresh).filter(|b| !b.ejected()).collect();
        let pool = if healthy.is_empty() {
            live.iter().filter(fresh).collect()
        } else {
            healthy
        };
        match pool.len() {
            0 => None,
            1 => Some(pool[0].clone()),
            n => {
                let a = fastrand::usize(..n);
                let mut b = fastrand::usize(..n - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (pool[a], pool[b]);
                Some(if b.in_flight() < a.in_flight() { b } else { a }.clone())
            }
        }
    }

    fn set_live(&self, live: Vec<Arc<Backend>>) {
        self.live.store(Arc::new(live));
    }
}

/// Every service's backends, from discoverd.
#[derive(Debug)]
pub struct Discovery {
    services: Mutex<HashMap<String, Arc<Service>>>,
    events: Events,
    client: Option<Client>,
    synced: AtomicBool,
}

impl Discovery {
    /// Backends from the discoverd that `client` talks to; [`Discovery::run`] watches it.
    pub fn new(client: Client, events: Events) -> Self {
        Self {
            services: Mutex::default(),
            events,
            client: Some(client),
            synced: AtomicBool::new(false),
        }
    }

    /// Without discoverd: every service stays empty (for tests of the table).
    pub fn detached() -> Self {
        Self {
            services: Mutex::default(),
            events: Events::new(),
            client: None,
            synced: AtomicBool::new(false),
        }
    }

    /// The service `name` (empty until discoverd names instances of it).
    pub fn service(&self, name: &str) -> Arc<Service> {
        self.services
            .lock()
            .expect("services lock")
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Service::new(name)))
            .clone()
    }

    /// Every service's backends.
    pub fn all(&self) -> Vec<Arc<Backend>> {
        let services: Vec<Arc<Service>> = self
            .services
            .lock()
            .expect("services lock")
            .values()
            .cloned()
            .collect();
        let mut out: Vec<Arc<Backend>> = services
            .iter()
            .flat_map(|s| s.backends().to_vec())
            .collect();
        out.sort_by(|a, b| (&a.service, a.addr).cmp(&(&b.service, b.addr)));
        out
    }

    /// False when detached from discoverd (no state will ever arrive).
    pub fn watches(&self) -> bool {
        self.client.is_some()
    }

    /// True once the first complete state arrived from discoverd.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn up(&self, instance: &Instance) {
        let service = self.service(&instance.service);
        let live = service.backends();
        if let Some(old) = live.iter().find(|b| b.id == instance.id) {
            if old.addr == instance.addr {
                return;
            }
            self.down(&instance.service, &instance.id);
        }
        let backend = Arc::new(Backend::new(
            service.name.clone(),
            instance,
            self.events.clone(),
        ));
        let mut next: Vec<Arc<Backend>> = service.backends().to_vec();
        next.push(backend.clone());
        service.set_live(next);
        self.events
            .emit(EventKind::BackendUp, None, Some(backend.to_api()));
    }

    fn down(&self, service: &str, id: &str) {
        let service = self.service(service);
        let live = service.backends();
        let Some(gone) = live.iter().find(|b| b.id == id).cloned() else {
            return;
        };
        service.set_live(live.iter().filter(|b| b.id != id).cloned().collect());
        if service.leader.load().as_ref().is_some_and(|l| l.id == id) {
            service.leader.store(None);
        }
        gone.mark_down();
    }

    fn leader(&self, service: &str, instance: Option<&Instance>) {
        let s = self.service(service);
        let leader = instance.and_then(|i| s.backends().iter().find(|b| b.id == i.id).cloned());
        s.leader.store(leader);
    }

    /// Replaces everything with a complete state (after a watch (re)connects): instances not
    /// in it go down, new ones come up, the rest keep their counts and connections.
    fn reset(&self, state: &[Instance], leaders: &HashMap<String, String>) {
        let services: Vec<Arc<Service>> = self
            .services
            .lock()
            .expect("services lock")
            .values()
            .cloned()
            .collect();
        for s in services {
            for b in s.backends().iter() {
                if !state
                    .iter()
                    .any(|i| i.service == *s.name && i.id == b.id && i.addr == b.addr)
                {
                    self.down(&s.name, &b.id);
                }
            }
        }
        for i in state {
            self.up(i);
        }
        for (service, id) in leaders {
            let s = self.service(service);
            let leader = s.backends().iter().find(|b| b.id == *id).cloned();
            s.leader.store(leader);
        }
        self.synced.store(true, Ordering::Release);
    }

    /// Watches discoverd until `shutdown`, reconnecting after errors (the backends already
    /// known keep serving meanwhile).
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let mut delay = Duration::from_millis(100);
        loop {
            let result = tokio::select! {
                r = self.watch_once(&client) => r,
                _ = shutdown.clone().wait() => return,
            };
            match result {
                Ok(()) => tracing::warn!("discoverd watch ended; reconnecting"),
                Err(e) => {
                    tracing::warn!(error = %flynn_http::error::message_chain(&e), "discoverd watch failed; retrying in {delay:?}")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.clone().wait() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    async fn watch_once(&self, client: &Client) -> Result<(), discoverd_api::client::ClientError> {
        let mut watch = client.watch(None).await?;
        let mut state = Vec::new();
        let mut leaders = HashMap::new();
        let mut current = false;
        while let Some(event) = watch.next().await? {
            if !current {
                match event {
                    DiscoverdEvent::Up { instance, .. }
                    | DiscoverdEvent::Update { instance, .. } => {
                        state.retain(|i: &Instance| {
                            i.id != instance.id || i.service != instance.service
                        });
                        state.push(instance);
                    }
                    DiscoverdEvent::Down { instance, .. } => {
                        state.retain(|i: &Instance| {
                            i.id != instance.id || i.service != instance.service
                        });
                    }
                    DiscoverdEvent::Leader { service, instance } => match instance {
                        Some(i) => {
                            leaders.insert(service, i.id);
                        }
                        None => {
                            leaders.remove(&service);
                        }
                    },
                    DiscoverdEvent::Current { .. } => {
                        self.reset(&state, &leaders);
                        current = true;
                        tracing::info!(instances = state.len(), "discoverd state loaded");
                    }
                    DiscoverdEvent::ServiceMeta { .. } => {}
                }
                continue;
            }
            match &event {
                DiscoverdEvent::Up { instance, .. } | DiscoverdEvent::Update { instance, .. } => {
                    self.up(instance)
                }
                DiscoverdEvent::Down { service, instance } => self.down(service, &instance.id),
                DiscoverdEvent::Leader { service, instance } => {
                    self.leader(service, instance.as_ref())
                }
                DiscoverdEvent::ServiceMeta { .. } | DiscoverdEvent::Current { .. } => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(service: &str, id: &str, port: u16) -> Instance {
        serde_json::from_value(serde_json::json!({
            "id": id, "service": service, "addr": format!("127.0.0.1:{port}"),
            "proto": "tcp", "index": 1, "registered_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn less_loaded_of_two_and_never_a_tried_one() {
        let d = Discovery::detached();
        d.up(&instance("web", "a", 1));
        d.up(&instance("web", "b", 2));
        let s = d.service("web");
        let a = s.find("127.0.0.1:1".parse().unwrap()).unwrap();
        let _busy: Vec<InFlight> = (0..3).map(|_| a.begin().unwrap()).collect();
        for _ in 0..50 {
            assert_eq!(s.pick(false, &[]).unwrap().id, "b");
        }
        let b_addr: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(s.pick(false, &[b_addr]).unwrap().id, "a");
        assert!(s.pick(false, &[a.addr, b_addr]).is_none());
    }

    #[test]
    fn ejected_backends_are_skipped_unless_nothing_else_is_left() {
        let d = Discovery::detached();
        d.up(&instance("web", "a", 1));
        d.up(&instance("web", "b", 2));
        let s = d.service("web");
        s.find("127.0.0.1:1".parse().unwrap()).unwrap().eject();
        for _ in 0..20 {
            assert_eq!(s.pick(false, &[]).unwrap().id, "b");
        }
        s.find("127.0.0.1:2".parse().unwrap()).unwrap().eject();
        assert!(s.pick(false, &[]).is_some(), "fails open");
    }

    #[test]
    fn a_backend_that_leaves_is_drained_after_its_last_request() {
        let events = Events::new();
        let mut rx = events.subscribe();
        let d = Discovery {
            events,
            ..Discovery::detached()
        };
        d.up(&instance("web", "a", 1));
        let s = d.service("web");
        let a = s.pick(false, &[]).unwrap();
        let req = a.begin().expect("a live backend");
        d.down("web", "a");
        assert!(s.pick(false, &[]).is_none(), "no new requests");
        assert!(a.begin().is_none(), "chosen before it left: refused after");
        let kinds = |rx: &mut tokio::sync::broadcast::Receiver<_>| {
            let mut k = Vec::new();
            while let Ok(e) = rx.try_recv() {
                let e: Arc<router_api::Event> = e;
                k.push(e.event);
            }
            k
        };
        assert_eq!(
            kinds(&mut rx),
            vec![EventKind::BackendUp, EventKind::BackendDown]
        );
        drop(req);
        assert_eq!(kinds(&mut rx), vec![EventKind::BackendDrained]);
    }

    #[test]
    fn leader_only_routes_use_the_leader() {
        let d = Discovery::detached();
        d.up(&instance("db", "a", 1));
        d.up(&instance("db", "b", 2));
        let s = d.service("db");
        assert!(s.pick(true, &[]).is_none(), "no leader yet");
        d.leader("db", Some(&instance("db", "b", 2)));
        for _ in 0..10 {
            assert_eq!(s.pick(true, &[]).unwrap().id, "b");
        }
        d.down("db", "b");
        assert!(s.pick(true, &[]).is_none());
    }

    #[test]
    fn a_fresh_state_replaces_the_old() {
        let d = Discovery::detached();
        d.up(&instance("web", "a", 1));
        d.up(&instance("web", "b", 2));
        let kept = d
            .service("web")
            .find("127.0.0.1:2".parse().unwrap())
            .unwrap();
        d.reset(
            &[instance("web", "b", 2), instance("web", "c", 3)],
            &HashMap::new(),
        );
        let ids: Vec<String> = d
            .service("web")
            .backends()
            .iter()
            .map(|b| b.id.clone())
            .collect();
        assert_eq!(ids, vec!["b", "c"]);
        assert!(Arc::ptr_eq(
            &kept,
            &d.service("web").find(kept.addr).unwrap()
        ));
    }
}
