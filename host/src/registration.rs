//! Registrations in discoverd: jobs that name a service while they run, and the host itself.
//! Each is a [`Heartbeat`] of discoverd's client (so it survives a discoverd restart);
//! ending it deregisters.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use discoverd_api::client::{Client, Heartbeat};
use discoverd_api::Registration;
use flynn_http::Endpoint;
use host_api::{Job, JobState, NetworkMode, Proto};

/// Registration TTL; heartbeats come every third of it.
const TTL: Duration = Duration::from_secs(10);
/// How long a job's service port is tried before the job is left unregistered.
const CHECK_FOR: Duration = Duration::from_secs(120);

/// The host's registrations, by (service, instance id).
#[derive(Debug)]
pub struct Registrations {
    client: Option<Client>,
    /// The address other jobs and hosts reach this host's published ports at.
    host_ip: IpAddr,
    live: Mutex<HashMap<(String, String), Heartbeat>>,
    /// Registrations being health-checked.
    checking: Mutex<HashSet<(String, String)>>,
    /// Registrations taken out on request: not registered again while the job runs.
    out: Mutex<HashSet<(String, String)>>,
    /// Where jobs that never passed their check within their start timeout are reported
    /// (job id, reason): the host stops them.
    unhealthy: Mutex<Option<tokio::sync::mpsc::UnboundedSender<(String, String)>>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registrations {
    /// Registrations with the discoverd at `endpoint` (none at all without one), written
    /// with the platform `key`; jobs are registered at `host_ip` and their published port,
    /// the only way other jobs reach them.
    pub fn new(endpoint: Option<Endpoint>, key: Option<&str>, host_ip: IpAddr) -> Self {
        Self {
            client: endpoint.map(|e| match key {
                Some(k) => Client::new(e).with_key(k),
                None => Client::new(e),
            }),
            host_ip,
            live: Mutex::new(HashMap::new()),
            checking: Mutex::default(),
            out: Mutex::default(),
            unhealthy: Mutex::default(),
        }
    }

    /// The address this host's jobs are reached at from other hosts.
    pub fn host_ip(&self) -> IpAddr {
        self.host_ip
    }

    /// Reports jobs that miss their start timeout to `tx`.
    pub fn on_unhealthy(&self, tx: tokio::sync::mpsc::UnboundedSender<(String, String)>) {
        *locked(&self.unhealthy) = Some(tx);
    }

    /// Whether `key` is still to be registered: checked, and not taken out.
    fn wanted(&self, key: &(String, String)) -> bool {
        locked(&self.checking).contains(key) && !locked(&self.out).contains(key)
    }

    /// Registers `key` at `addr` if it is still wanted, atomically with respect to the job
    /// ending (which takes it out of `checking`) or being taken out (`out`).
    fn keep_if_wanted(&self, key: &(String, String), addr: SocketAddr) -> bool {
        let checking = locked(&self.checking);
        let out = locked(&self.out);
        if !checking.contains(key) || out.contains(key) {
            return false;
        }
        self.keep(&key.0, &key.1, addr);
        true
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Heartbeat>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `service/id` registered at `addr` until [`Registrations::remove`].
    pub fn keep(&self, service: &str, id: &str, addr: SocketAddr) {
        self.keep_with_meta(service, id, addr, Default::default())
    }

    /// Changes the metadata of the live registration `service/id` (discoverd announces an
    /// `update`); nothing when it is not registered.
    pub fn set_meta(
        &self,
        service: &str,
        id: &str,
        meta: std::collections::BTreeMap<String, String>,
    ) {
        if let Some(hb) = self.lock().get(&(service.to_string(), id.to_string())) {
            let mut reg = hb.registration();
            if reg.meta != meta {
                reg.meta = meta;
                hb.update(reg);
            }
        }
    }

    /// [`Registrations::keep`] with metadata.
    pub fn keep_with_meta(
        &self,
        service: &str,
        id: &str,
        addr: SocketAddr,
        meta: std::collections::BTreeMap<String, String>,
    ) {
        let Some(client) = &self.client else {
            return;
        };
        let key = (service.to_string(), id.to_string());
        let mut live = self.lock();
        if live.contains_key(&key) {
            return;
        }
        let reg = Registration {
            addr,
            proto: Proto::Tcp,
            meta,
        };
        live.insert(key, client.keep_registered(service, id, reg, TTL));
    }

    /// Stops heartbeating `service/id` and deregisters it.
    pub fn remove(&self, service: &str, id: &str) {
        let Some(hb) = self.lock().remove(&(service.to_string(), id.to_string())) else {
            return;
        };
        let (s, i) = (service.to_string(), id.to_string());
        tokio::spawn(async move {
            if let Err(e) = hb.stop().await {
                tracing::warn!(service = %s, id = %i, error = %e, "deregistering from discoverd");
            }
        });
    }

    /// Takes a job's registration out (the scheduler drains it before a stop); it is not
    /// registered again while the job runs.
    pub fn deregister(&self, job: &Job) {
        let Some(service) = &job.config.service else {
            return;
        };
        locked(&self.out).insert((service.to_string(), job.id.to_string()));
        self.remove(service.as_str(), job.id.as_str());
    }

    /// Registers a job that runs and names a service once it passes its health check
    /// ([`crate::health`]: a TCP connect, or its HTTP check); deregisters it when it ends.
    pub fn job_changed(self: &Arc<Self>, job: &Job) {
        let Some(service) = &job.config.service else {
            return;
        };
        let config = &job.config.config;
        match job.state {
            JobState::Running => {
                let port = job
                    .config
                    .service_port
                    .or(config.ports.first().map(|p| p.job));
                let Some(port) = port else { return };
                // Bridge jobs are reached through the host port publishing the service port;
                // host-network jobs listen on the host itself.
                let host_port = match config.network {
                    NetworkMode::Bridge => match job.ports.iter().find(|p| p.job == port) {
                        Some(p) => p.host,
                        None => return,
                    },
                    _ => port,
                };
                let key = (service.to_string(), job.id.to_string());
                if self.lock().contains_key(&key)
                    || locked(&self.out).contains(&key)
                    || !locked(&self.checking).insert(key.clone())
                {
                    return;
                }
                let check = match config.network {
                    NetworkMode::Host => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
                    _ => match job.ip {
                        Some(ip) => SocketAddr::new(ip.into(), port),
                        None => return,
                    },
                };
                let addr = SocketAddr::new(self.host_ip, host_port);
                let me = self.clone();
                let http = job.config.service_check.clone();
                let timing = job.config.service_check_timing;
                tokio::spawn(async move {
                    me.check(key, check, addr, http, timing).await;
                });
            }
            JobState::Exited | JobState::Failed => {
                let key = (service.to_string(), job.id.to_string());
                locked(&self.checking).remove(&key);
                locked(&self.out).remove(&key);
                self.remove(service.as_str(), job.id.as_str())
            }
            JobState::Starting | JobState::Unknown => {}
        }
    }

    /// Health-checks `key` at `check` until it passes (`threshold` times in a row), then
    /// registers it at `addr`; with an interval, keeps checking: `threshold` failures in a
    /// row take it out, as many passes bring it back. Ends when the job ends or is taken out.
    async fn check(
        self: Arc<Self>,
        key: (String, String),
        check: SocketAddr,
        addr: SocketAddr,
        http: Option<host_api::HttpCheck>,
        timing: Option<host_api::CheckTiming>,
    ) {
        let every = match http {
            Some(_) => crate::health::HTTP_EVERY,
            None => crate::health::TCP_EVERY,
        };
        let threshold = timing.map_or(1, |t| t.threshold.max(1));
        let start_timeout = timing
            .and_then(|t| t.start_timeout_ms)
            .map(Duration::from_millis);
        let started = Instant::now();
        let mut passes = 0;
        loop {
            // Ended or taken out meanwhile: stop checking.
            if !self.wanted(&key) {
                locked(&self.checking).remove(&key);
                return;
            }
            if crate::health::passes(check, http.as_ref()).await {
                passes += 1;
                if passes >= threshold {
                    break;
                }
            } else {
                passes = 0;
            }
            match start_timeout {
                Some(limit) if started.elapsed() > limit => {
                    let reason = format!(
                        "its service {} did not pass its health check within {} s",
                        key.0,
                        limit.as_secs_f64()
                    );
                    tracing::warn!(service = %key.0, job = %key.1, %check, "{reason}; stopping it");
                    locked(&self.checking).remove(&key);
                    if let Some(tx) = locked(&self.unhealthy).as_ref() {
                        let _ = tx.send((key.1.clone(), reason));
                    }
                    return;
                }
                None if started.elapsed() > CHECK_FOR => {
                    tracing::warn!(service = %key.0, job = %key.1, %check, "the job's service never passed its health check; not registered");
                    locked(&self.checking).remove(&key);
                    return;
                }
                _ => {}
            }
            tokio::time::sleep(every).await;
        }
        if !self.keep_if_wanted(&key, addr) {
            locked(&self.checking).remove(&key);
            return;
        }
        let interval = match timing {
            Some(t) if t.interval_ms > 0 => Duration::from_millis(t.interval_ms),
            _ => {
                locked(&self.checking).remove(&key);
                return;
            }
        };
        // Registered; `checking` keeps the key while this runs, so the job is not checked
        // twice.
        let (mut up, mut streak) = (true, 0);
        loop {
            tokio::time::sleep(interval).await;
            if !self.wanted(&key) {
                locked(&self.checking).remove(&key);
                return;
            }
            let ok = crate::health::passes(check, http.as_ref()).await;
            if ok == up {
                streak = 0;
                continue;
            }
            streak += 1;
            if streak < threshold {
                continue;
            }
            (up, streak) = (ok, 0);
            if up {
                // Unless the job ended or was taken out during the check.
                if !self.keep_if_wanted(&key, addr) {
                    locked(&self.checking).remove(&key);
                    return;
                }
                tracing::info!(service = %key.0, job = %key.1, "passes its health check again; registered");
            } else {
                tracing::warn!(service = %key.0, job = %key.1, %check, failures = threshold, "failed its health check; deregistered until it passes again");
                self.remove(&key.0, &key.1);
            }
        }
    }
}
