//! The typed client of discoverd: register with heartbeats, deregister, list, find the
//! leader, service metadata, watch.

use std::time::Duration;

use flynn_http::client::{Client as Http, Lines};
use flynn_http::{encode, Endpoint, ErrorCode};
use hyper::Method;

pub use flynn_http::client::ClientError;

use crate::model::{Event, Instance, Registration, ServiceMeta, SetMeta};

/// A client of one discoverd.
#[derive(Debug, Clone)]
pub struct Client(Http);

/// The events of a watch as they arrive ([`Lines::next`]).
pub type Watch = Lines<Event>;

/// A registration kept alive by a heartbeat task; dropping it stops the heartbeats (the
/// instance then expires), [`Heartbeat::stop`] deregisters at once.
#[derive(Debug)]
pub struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    quit: Option<tokio::sync::oneshot::Sender<()>>,
    reg: tokio::sync::watch::Sender<Registration>,
    client: Client,
    service: String,
    id: String,
}

/// How long [`Heartbeat::stop`] lets a heartbeat already sent finish before it deregisters.
const STOP_WAIT: Duration = Duration::from_secs(5);

impl Heartbeat {
    /// Changes what the heartbeats register (its metadata, say): sent at once, and with every
    /// heartbeat after (discoverd announces the change as an `update`).
    pub fn update(&self, reg: Registration) {
        self.reg.send_replace(reg);
    }

    /// What the heartbeats register.
    pub fn registration(&self) -> Registration {
        self.reg.borrow().clone()
    }

    /// Stops heartbeating and deregisters. A heartbeat already on its way is let finish
    /// first: cut off, discoverd could still apply it after the deregistration and bring
    /// the instance back until its TTL ran out.
    pub async fn stop(mut self) -> Result<(), ClientError> {
        if let Some(quit) = self.quit.take() {
            let _ = quit.send(());
        }
        if tokio::time::timeout(STOP_WAIT, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
        self.client.deregister(&self.service, &self.id).await
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    /// A client of discoverd at `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        Self(Http::new("discoverd", endpoint))
    }

    /// The same client sending `key` (the platform key, or a service's own key) with
    /// requests; writes need one.
    pub fn with_key(self, key: impl Into<String>) -> Self {
        Self(self.0.with_token(key))
    }

    fn instance_path(service: &str, id: &str) -> String {
        format!("/services/{}/instances/{}", encode(service), encode(id))
    }

    /// Registers (or heartbeats) an instance with `ttl` (whole seconds, at least one).
    pub async fn register(
        &self,
        service: &str,
        id: &str,
        reg: &Registration,
        ttl: Duration,
    ) -> Result<Instance, ClientError> {
        let path = format!(
            "{}?ttl={}",
            Self::instance_path(service, id),
            ttl.as_secs().max(1)
        );
        self.0.call(Method::PUT, &path, Some(reg)).await
    }

    /// Registers, then heartbeats every third of `ttl` (retrying through discoverd restarts)
    /// until the handle is stopped or dropped.
    pub async fn register_alive(
        &self,
        service: &str,
        id: &str,
        reg: Registration,
        ttl: Duration,
    ) -> Result<Heartbeat, ClientError> {
        self.register(service, id, &reg, ttl).await?;
        Ok(self.keep_registered(service, id, reg, ttl))
    }

    /// Heartbeats `service/id` every third of `ttl` from now on, the first at once, logging
    /// failures and retrying (discoverd may not be up yet), until the handle is stopped or
    /// dropped.
    pub fn keep_registered(
        &self,
        service: &str,
        id: &str,
        reg: Registration,
        ttl: Duration,
    ) -> Heartbeat {
        let (c, s, i) = (self.clone(), service.to_string(), id.to_string());
        let (quit, mut quit_rx) = tokio::sync::oneshot::channel::<()>();
        let (reg_tx, mut reg_rx) = tokio::sync::watch::channel(reg);
        let task = tokio::spawn(async move {
            loop {
                let reg = reg_rx.borrow_and_update().clone();
                if let Err(e) = c.register(&s, &i, &reg, ttl).await {
                    tracing::warn!(service = %s, id = %i, error = %e, "heartbeat failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(ttl / 3) => {}
                    Ok(()) = reg_rx.changed() => {}
                    _ = &mut quit_rx => return,
                }
            }
        });
        Heartbeat {
            task,
            quit: Some(quit),
            reg: reg_tx,
            client: self.clone(),
            service: service.into(),
            id: id.into(),
        }
    }

    /// Deregisters an instance.
    pub async fn deregister(&self, service: &str, id: &str) -> Result<(), ClientError> {
        let path = Self::instance_path(service, id);
        self.0.call_empty(Method::DELETE, &path, None::<&()>).await
    }

    /// The live instances of a service, oldest first.
    pub async fn instances(&self, service: &str) -> Result<Vec<Instance>, ClientError> {
        let path = format!("/services/{}/instances", encode(service));
        self.0.call(Method::GET, &path, None::<&()>).await
    }

    /// The leader of a service, if it has instances.
    pub async fn leader(&self, service: &str) -> Result<Option<Instance>, ClientError> {
        let path = format!("/services/{}/leader", encode(service));
        self.0
            .call_optional(Method::GET, &path, ErrorCode::NoLeader)
            .await
    }

    /// Sets a service's metadata; with `index`, only if its version is that (0: none yet),
    /// otherwise [`ClientError::Api`] with code `conflict`.
    pub async fn set_meta(
        &self,
        service: &str,
        data: serde_json::Value,
        index: Option<u64>,
    ) -> Result<ServiceMeta, ClientError> {
        let path = format!("/services/{}/meta", encode(service));
        let body = SetMeta { data, index };
        self.0.call(Method::PUT, &path, Some(&body)).await
    }

    /// A service's metadata, if set.
    pub async fn meta(&self, service: &str) -> Result<Option<ServiceMeta>, ClientError> {
        let path = format!("/services/{}/meta", encode(service));
        self.0
            .call_optional(Method::GET, &path, ErrorCode::NoMeta)
            .await
    }

    /// The names of the services with live instances or metadata.
    pub async fn services(&self) -> Result<Vec<String>, ClientError> {
        self.0.call(Method::GET, "/services", None::<&()>).await
    }

    /// A watch of a service (all services when `None`): the current state, then changes.
    pub async fn watch(&self, service: Option<&str>) -> Result<Watch, ClientError> {
        let path = match service {
            Some(s) => format!("/services/{}/instances", encode(s)),
            None => "/events".to_string(),
        };
        self.0.events(&path).await
    }
}
