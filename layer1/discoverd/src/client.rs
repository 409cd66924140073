//! A client of discoverd for other services: register with heartbeats, list, find the leader,
//! watch.

use std::time::Duration;

use crate::model::{Event, Instance, Registration, ServiceMeta, SetMeta};

/// A request that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// HTTP failed or discoverd is not reachable.
    #[error("discoverd at {url}: {source}")]
    Http {
        /// The base URL.
        url: String,
        /// The error.
        source: reqwest::Error,
    },
    /// discoverd refused the request.
    #[error("discoverd: {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its error body.
        body: String,
    },
}

/// A client of one discoverd.
#[derive(Debug, Clone)]
pub struct Client {
    url: String,
    http: reqwest::Client,
    key: Option<String>,
}

/// A registration kept alive by a heartbeat task; dropping it stops the heartbeats (the
/// instance then expires), [`Heartbeat::stop`] deregisters at once.
#[derive(Debug)]
pub struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    client: Client,
    service: String,
    id: String,
}

impl Heartbeat {
    /// Stops heartbeating and deregisters.
    pub async fn stop(self) -> Result<(), ClientError> {
        self.task.abort();
        self.client.deregister(&self.service, &self.id).await
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    /// A client of discoverd at `url` (e.g. `http://127.0.0.1:1111`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into().trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            key: None,
        }
    }

    /// The same client sending `key` (the platform key, or a service's own key) with writes.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into().trim().to_string());
        self
    }

    /// A write request with the key, when there is one.
    fn write(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let b = self.http.request(method, url);
        match &self.key {
            Some(k) => b.bearer_auth(k),
            None => b,
        }
    }

    fn http_err(&self) -> impl FnOnce(reqwest::Error) -> ClientError + '_ {
        move |source| ClientError::Http {
            url: self.url.clone(),
            source,
        }
    }

    async fn check(&self, r: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        if r.status().is_success() {
            return Ok(r);
        }
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        Err(ClientError::Refused { status, body })
    }

    /// Registers (or heartbeats) an instance with `ttl`.
    pub async fn register(
        &self,
        service: &str,
        id: &str,
        reg: &Registration,
        ttl: Duration,
    ) -> Result<Instance, ClientError> {
        let url = format!(
            "{}/services/{service}/instances/{id}?ttl={}",
            self.url,
            ttl.as_secs().max(1)
        );
        let r = self
            .write(reqwest::Method::PUT, url)
            .json(reg)
            .send()
            .await
            .map_err(self.http_err())?;
        self.check(r).await?.json().await.map_err(self.http_err())
    }

    /// Registers and keeps heartbeating every third of `ttl` until the handle is dropped.
    pub async fn register_alive(
        &self,
        service: &str,
        id: &str,
        reg: Registration,
        ttl: Duration,
    ) -> Result<Heartbeat, ClientError> {
        self.register(service, id, &reg, ttl).await?;
        let (c, s, i) = (self.clone(), service.to_string(), id.to_string());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                if let Err(e) = c.register(&s, &i, &reg, ttl).await {
                    tracing::warn!(service = %s, id = %i, error = %e, "heartbeat failed");
                }
            }
        });
        Ok(Heartbeat {
            task,
            client: self.clone(),
            service: service.into(),
            id: id.into(),
        })
    }

    /// Deregisters an instance.
    pub async fn deregister(&self, service: &str, id: &str) -> Result<(), ClientError> {
        let url = format!("{}/services/{service}/instances/{id}", self.url);
        let r = self
            .write(reqwest::Method::DELETE, url)
            .send()
            .await
            .map_err(self.http_err())?;
        self.check(r).await.map(|_| ())
    }

    /// The live instances of a service.
    pub async fn instances(&self, service: &str) -> Result<Vec<Instance>, ClientError> {
        let url = format!("{}/services/{service}/instances", self.url);
        let r = self.http.get(url).send().await.map_err(self.http_err())?;
        self.check(r).await?.json().await.map_err(self.http_err())
    }

    /// The leader of a service, if it has instances.
    pub async fn leader(&self, service: &str) -> Result<Option<Instance>, ClientError> {
        let url = format!("{}/services/{service}/leader", self.url);
        let r = self.http.get(url).send().await.map_err(self.http_err())?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.check(r).await?.json().await.map_err(self.http_err())
    }

    /// Sets a service's metadata; with `index`, only if its version is that (0: none yet),
    /// otherwise [`ClientError::Refused`] with status 409.
    pub async fn set_meta(
        &self,
        service: &str,
        data: serde_json::Value,
        index: Option<u64>,
    ) -> Result<ServiceMeta, ClientError> {
        let url = format!("{}/services/{service}/meta", self.url);
        let body = SetMeta { data, index };
        let r = self
            .write(reqwest::Method::PUT, url)
            .json(&body)
            .send()
            .await
            .map_err(self.http_err())?;
        self.check(r).await?.json().await.map_err(self.http_err())
    }

    /// A service's metadata, if set.
    pub async fn meta(&self, service: &str) -> Result<Option<ServiceMeta>, ClientError> {
        let url = format!("{}/services/{service}/meta", self.url);
        let r = self.http.get(url).send().await.map_err(self.http_err())?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.check(r).await?.json().await.map_err(self.http_err())
    }

    /// A watch of a service (all services when `None`).
    pub async fn watch(&self, service: Option<&str>) -> Result<Watch, ClientError> {
        let url = match service {
            Some(s) => format!("{}/services/{s}/instances", self.url),
            None => format!("{}/events", self.url),
        };
        let r = self
            .http
            .get(url)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(self.http_err())?;
        Ok(Watch {
            resp: self.check(r).await?,
            buf: Vec::new(),
        })
    }
}

/// The events of a watch as they arrive.
#[derive(Debug)]
pub struct Watch {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Watch {
    /// The next event; `None` when the stream ends.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&block);
                if let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) {
                    if let Ok(e) = serde_json::from_str(data) {
                        return Some(e);
                    }
                }
            }
            let chunk = self.resp.chunk().await.ok()??;
            self.buf.extend_from_slice(&chunk);
        }
    }
}
