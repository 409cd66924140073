//! Registrations in discoverd: jobs that name a service while they run, and the host itself.
//! Each registration is a task heartbeating every few seconds (so it survives a discoverd
//! restart); ending it deregisters.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use discoverd::{Client, Registration};

use crate::api::{Job, JobState};

/// Registration TTL; heartbeats come every third of it.
const TTL: Duration = Duration::from_secs(10);

/// The host's registrations.
#[derive(Debug)]
pub struct Services {
    client: Option<Client>,
    /// The address other jobs and hosts reach this host's published ports at.
    host_ip: std::net::IpAddr,
    tasks: Mutex<HashMap<(String, String), tokio::task::JoinHandle<()>>>,
}

impl Services {
    /// Registrations with the discoverd at `url` (none at all without one), written with the
    /// platform `key`; jobs are
    /// registered at `host_ip` and their published port, the only way other jobs reach them.
    pub fn new(url: Option<&str>, key: Option<&str>, host_ip: std::net::IpAddr) -> Self {
        Self {
            client: url.map(|u| match key {
                Some(k) => Client::new(u).with_key(k),
                None => Client::new(u),
            }),
            host_ip,
            tasks: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), tokio::task::JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `service/id` registered at `addr` until [`Services::drop_registration`].
    pub fn keep(&self, service: &str, id: &str, addr: String) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let key = (service.to_string(), id.to_string());
        let mut tasks = self.lock();
        if tasks.contains_key(&key) {
            return;
        }
        let (s, i) = key.clone();
        let task = tokio::spawn(async move {
            let reg = Registration {
                addr,
                proto: "tcp".into(),
                meta: Default::default(),
            };
            loop {
                if let Err(e) = client.register(&s, &i, &reg, TTL).await {
                    tracing::warn!(service = %s, id = %i, error = %e, "registering in discoverd");
                }
                tokio::time::sleep(TTL / 3).await;
            }
        });
        tasks.insert(key, task);
    }

    /// Stops heartbeating `service/id` and deregisters it.
    pub fn drop_registration(&self, service: &str, id: &str) {
        let Some(task) = self.lock().remove(&(service.to_string(), id.to_string())) else {
            return;
        };
        task.abort();
        if let Some(client) = self.client.clone() {
            let (s, i) = (service.to_string(), id.to_string());
            tokio::spawn(async move {
                if let Err(e) = client.deregister(&s, &i).await {
                    tracing::warn!(service = %s, id = %i, error = %e, "deregistering from discoverd");
                }
            });
        }
    }

    /// Registers a job that runs and names a service; deregisters it when it ends.
    pub fn job_changed(&self, job: &Job) {
        let Some(service) = &job.config.service else {
            return;
        };
        match job.state {
            JobState::Running => {
                let port = job
                    .config
                    .service_port
                    .or(job.config.ports.first().map(|p| p.job));
                let Some(port) = port else { return };
                // Bridge jobs are reached through the host port publishing the service port;
                // host-network jobs listen on the host itself.
                let host_port = match job.config.network {
                    runtime::NetworkMode::Bridge => {
                        match job.ports.iter().find(|p| p.job == port) {
                            Some(p) => p.host,
                            None => return,
                        }
                    }
                    _ => port,
                };
                let addr = std::net::SocketAddr::new(self.host_ip, host_port);
                self.keep(service, &job.id, addr.to_string());
            }
            JobState::Exited | JobState::Failed => self.drop_registration(service, &job.id),
            JobState::Starting => {}
        }
    }
}
