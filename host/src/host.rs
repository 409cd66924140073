//! The host: jobs on top of the runtime, their records in the database, and their state changes
//! on the event bus. HTTP lives elsewhere ([`crate::server`]); this is what it calls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use pinkerton::store::Store;
use runtime::{JobId, Runtime, RuntimeError};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::db::Db;
use crate::error::HostError;
use crate::events::Events;
use host_api::{Job, JobState};

mod config;
mod create;
mod restart;
pub use config::{
    HostConfig, CLUSTER_KEY_FILE, DEFAULT_MEMORY, DEFAULT_NOFILE, DEFAULT_PIDS, DISCOVERD_KEY_FILE,
    REGISTRY_AUTH_FILE,
};

/// The daemon's core, cheap to clone.
#[derive(Debug, Clone)]
pub struct Host {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: HostConfig,
    pub(crate) runtime: Runtime,
    pub(crate) store: Store,
    db: Db,
    jobs: Mutex<BTreeMap<JobId, Job>>,
    pub(crate) events: Events,
    starts: Semaphore,
    /// Serialises the end-of-job bookkeeping, so each job ends once.
    transitions: tokio::sync::Mutex<()>,
    pub(crate) id: String,
    pub(crate) started: Instant,
    /// When this daemon process opened the host (new after a SIGHUP restart).
    pub(crate) started_at: host_api::Timestamp,
    /// Taking no new jobs (persisted in the database's meta table as `draining`).
    draining: std::sync::atomic::AtomicBool,
    pub(crate) registrations: Arc<crate::registration::Registrations>,
    /// Why jobs being stopped by the host itself fail (a missed start timeout), by id:
    /// their end records this reason.
    failing: Mutex<BTreeMap<JobId, String>>,
    /// Jobs being stopped or deleted through the API: their end is recorded as `stopped`.
    stopping: Mutex<BTreeSet<JobId>>,
    /// Jobs whose restart is scheduled.
    pending_restarts: Mutex<BTreeSet<JobId>>,
    /// Runs in a row shorter than `RestartPolicy::STEADY`, by job: the restart delay.
    short_runs: Mutex<BTreeMap<JobId, u32>>,
    /// `cluster.json`'s etcd endpoints as last read, given to the host-network jobs started
    /// ([`flynn_etcd::CLUSTER_ENDPOINTS_ENV`]).
    pub(crate) cluster_etcd: Mutex<Vec<String>>,
}

/// The database meta key of the drain flag.
const DRAINING: &str = "draining";

/// The host's registration metadata.
fn host_meta(draining: bool) -> BTreeMap<String, String> {
    match draining {
        true => BTreeMap::from([(host_api::DRAINING_META.to_string(), "true".to_string())]),
        false => BTreeMap::new(),
    }
}

/// How long a job that missed its start timeout gets between SIGTERM and SIGKILL.
const UNHEALTHY_GRACE: Duration = Duration::from_secs(5);

/// Why a job is marked failed when its shim vanished without recording an exit.
const ABANDONED: &str = "the job's monitor process ended without recording an exit \
                         (flynn-shim was killed or the host rebooted); the job was stopped";

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A random id: 16 hex digits.
pub(crate) fn random_id() -> String {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    hex::encode(b)
}

impl Host {
    /// Opens the state directory, then re-adopts the jobs a previous daemon left: running ones
    /// are watched again, ones that ended meanwhile get their exit recorded, ones whose
    /// monitor is gone are marked failed and cleaned up. Must run inside a tokio runtime.
    pub async fn open(mut config: HostConfig) -> Result<Self, HostError> {
        if let Some(n) = config.default_resources.nofile {
            config.default_resources.nofile = Some(config::usable_nofile(n));
        }
        let io = |what: String| move |source| HostError::Io { what, source };
        std::fs::create_dir_all(&config.state)
            .map_err(io(format!("creating {}", config.state.display())))?;
        // The state holds job environments (secrets), logs and the API token: root only.
        std::fs::set_permissions(
            &config.state,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .map_err(io(format!("restricting {}", config.state.display())))?;
        let store = Store::open(&config.store)?;
        let mut net = config.network.clone();
        if let Some(endpoint) = &config.discoverd {
            // discoverd answers DNS on the bridge gateway, and its HTTP API: the only host
            // services jobs reach.
            let gateway = std::net::Ipv4Addr::from(u32::from(net.subnet) + 1);
            net.nameservers = vec![gateway.to_string()];
            let http = match endpoint {
                flynn_http::Endpoint::Tcp(a) => a.port(),
                flynn_http::Endpoint::Unix(_) => 1111,
            };
            for (proto, port) in [("udp", 53), ("tcp", 53), ("tcp", http)] {
                net.open_ports.push(runtime::net::nat::OpenPort {
                    proto: proto.into(),
                    port,
                });
            }
        }
        let runtime = Runtime::new(config.state.join("runtime"), store.clone(), &config.shim)?
            .with_network(net)
            .with_cgroup_parent(&config.cgroup_parent)?
            .with_init(&config.init)
            .with_standby_shim();
        match runtime.keep_run_files_in_memory() {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "the runtime's run directory is not a tmpfs and holds files: jobs keep their \
                 run files on disk (slower starts) until it is emptied"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "jobs keep their run files on disk (slower starts)")
            }
        }
        let rt = runtime.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || rt.network().ensure()).await? {
            tracing::error!(error = %e, "setting up the job network; bridge-mode jobs will fail");
        }
        let db = Db::open(&config.state.join("host.redb"))?;
        let id = match db.meta("host_id")? {
            Some(id) => id,
            None => {
                let id = random_id();
                db.set_meta("host_id", &id)?;
                id
            }
        };
        let jobs = db.jobs()?.into_iter().map(|j| (j.id.clone(), j)).collect();
        let draining = db.meta(DRAINING)?.as_deref() == Some("true");
        let config_discoverd = config.discoverd.clone();
        // discoverd's platform key: the host writes registrations with it, and bootstrap
        // gives it to discoverd.
        let discoverd_key = match &config.discoverd {
            Some(_) => {
                let path = config.state.join(DISCOVERD_KEY_FILE);
                Some(
                    crate::secret::load_or_create(&path)
                        .map_err(io(format!("reading or creating {}", path.display())))?,
                )
            }
            None => None,
        };
        // Where this host's published ports are reached: its advertised address, or the
        // bridge gateway when it advertises none that jobs could use.
        let gateway = runtime.network().gateway();
        let host_ip = match config.advertise.map(|a| a.ip()) {
            Some(ip) if !ip.is_unspecified() && !ip.is_loopback() => ip,
            _ => std::net::IpAddr::V4(gateway),
        };
        // Read before adopting, whose restarts give host-network jobs these endpoints.
        let cluster_etcd = match crate::cluster::read(&config.state) {
            Ok(c) => c.map(|c| c.etcd).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the cluster's etcd endpoints");
                Vec::new()
            }
        };
        let host = Host {
            inner: Arc::new(Inner {
                starts: Semaphore::new(config.parallel_starts.max(1)),
                config,
                runtime,
                store,
                db,
                jobs: Mutex::new(jobs),
                events: Events::default(),
                transitions: tokio::sync::Mutex::new(()),
                registrations: Arc::new(crate::registration::Registrations::new(
                    config_discoverd,
                    discoverd_key.as_deref(),
                    host_ip,
                )),
                id,
                started: Instant::now(),
                started_at: host_api::Timestamp::now(),
                draining: draining.into(),
                failing: Mutex::default(),
                stopping: Mutex::default(),
                pending_restarts: Mutex::default(),
                short_runs: Mutex::default(),
                cluster_etcd: Mutex::new(cluster_etcd),
            }),
        };
        // Jobs that miss their health check's start timeout are stopped, failed with why.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
        host.inner.registrations.on_unhealthy(tx);
        let weak = Arc::downgrade(&host.inner);
        tokio::spawn(async move {
            while let Some((id, reason)) = rx.recv().await {
                let (Some(inner), Ok(id)) = (weak.upgrade(), id.parse::<JobId>()) else {
                    continue;
                };
                let host = Host { inner };
                lock(&host.inner.failing).insert(id.clone(), reason);
                if let Err(e) = host.halt(&id, UNHEALTHY_GRACE).await {
                    tracing::warn!(job = %id, error = %e, "stopping a job that failed its start timeout");
                }
            }
        });
        host.adopt().await?;
        host.prune_network().await;
        if let Some(addr) = host.advertised_api() {
            host.inner.registrations.keep_with_meta(
                host_api::HOST_SERVICE,
                &host.inner.id,
                addr,
                host_meta(draining),
            );
        }
        host.spawn_etcd_refresh();
        Ok(host)
    }

    /// The address of the daemon's TCP API as registered in discoverd: its advertised
    /// address, the bridge gateway for an unspecified one.
    pub fn advertised_api(&self) -> Option<std::net::SocketAddr> {
        let addr = self.inner.config.advertise?;
        let gw = self.runtime().network().gateway();
        Some(match addr.ip().is_unspecified() {
            true => std::net::SocketAddr::new(gw.into(), addr.port()),
            false => addr,
        })
    }

    /// Whether the host is draining: it refuses new jobs, and the scheduler moves the jobs
    /// it placed here to other hosts.
    pub fn draining(&self) -> bool {
        self.inner
            .draining
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Starts (`true`) or ends a drain: kept across restarts, and announced in the host's
    /// discoverd registration (metadata `draining=true`), which is how the scheduler learns.
    pub fn set_draining(&self, on: bool) -> Result<(), HostError> {
        self.inner
            .db
            .set_meta(DRAINING, if on { "true" } else { "false" })?;
        let was = self
            .inner
            .draining
            .swap(on, std::sync::atomic::Ordering::SeqCst);
        if was != on {
            tracing::info!(
                draining = on,
                "host drain {}",
                if on { "started" } else { "ended" }
            );
        }
        self.inner
            .registrations
            .set_meta(host_api::HOST_SERVICE, &self.inner.id, host_meta(on));
        Ok(())
    }

    async fn adopt(&self) -> Result<(), HostError> {
        let rt = self.inner.runtime.clone();
        let known: Vec<JobId> = lock(&self.inner.jobs).keys().cloned().collect();
        // Job directories without a record: a daemon died before recording them.
        let orphans = tokio::task::spawn_blocking(move || -> Result<Vec<String>, HostError> {
            let mut purged = Vec::new();
            for id in rt.list()? {
                if !known.contains(&id) && rt.purge(id.as_str()).is_ok() {
                    purged.push(id.to_string());
                }
            }
            Ok(purged)
        })
        .await??;
        for id in orphans {
            tracing::warn!(job = %id, "removed a job directory that had no record");
        }
        let live: Vec<Job> = lock(&self.inner.jobs)
            .values()
            .filter(|j| !j.state.is_final())
            .cloned()
            .collect();
        for job in live {
            let rt = self.inner.runtime.clone();
            let id = job.id.clone();
            let running = tokio::task::spawn_blocking(move || {
                let pid = match rt.state(id.as_str()) {
                    Ok(runtime::JobState::Running(pid)) => Some(pid),
                    _ => None,
                };
                (rt.shim_running(id.as_str()).unwrap_or(false), pid)
            })
            .await?;
            match running {
                (true, pid) => {
                    if job.state == JobState::Starting {
                        if let Some(pid) = pid {
                            self.mark_running(&job.id, pid)?;
                        }
                    }
                    tracing::info!(job = %job.id, "re-adopted a running job");
                    if let Ok(j) = self.job(&job.id) {
                        self.inner.registrations.job_changed(&j);
                    }
                    self.spawn_watch(job.id.clone());
                }
                (false, _) => {
                    let job = self.finalize(&job.id).await?;
                    self.after_end(&job);
                }
            }
        }
        // Jobs that ended before (a daemon killed while their restart waited).
        for job in self.jobs().into_iter().filter(|j| j.state.is_final()) {
            self.after_end(&job);
        }
        Ok(())
    }

    /// Removes port rules, veths and leases that no job owns (a daemon killed in the middle of
    /// a job's setup or teardown leaves them).
    async fn prune_network(&self) {
        let rt = self.inner.runtime.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            let live: Vec<String> = rt
                .list()
                .unwrap_or_default()
                .into_iter()
                .map(String::from)
                .collect();
            if let Ok(dropped) = rt.prune_store_uses() {
                for user in dropped {
                    tracing::warn!(user, "dropped an image use no job owns");
                }
            }
            rt.network().prune(&live)
        })
        .await;
        match pruned {
            Ok(Ok(removed)) if !removed.is_empty() => {
                tracing::warn!(removed = ?removed, "removed network state no job owns")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "removing network state no job owns"),
            Err(e) => tracing::error!(error = %e, "removing network state no job owns"),
        }
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Stores a changed job record and announces it.
    fn save(&self, job: Job) -> Result<Job, HostError> {
        tokio::task::block_in_place(|| self.inner.db.put_job(&job))?;
        lock(&self.inner.jobs).insert(job.id.clone(), job.clone());
        self.inner.events.job(&job);
        self.inner.registrations.job_changed(&job);
        Ok(job)
    }

    /// A job by id.
    pub fn job(&self, id: &JobId) -> Result<Job, HostError> {
        lock(&self.inner.jobs)
            .get(id)
            .cloned()
            .ok_or_else(|| HostError::NoSuchJob(id.to_string()))
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Vec<Job> {
        let mut jobs: Vec<Job> = lock(&self.inner.jobs).values().cloned().collect();
        jobs.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        jobs
    }

    /// Stops a job: SIGTERM, then SIGKILL after `grace`; returns it ended, marked `stopped`
    /// (not restarted under its restart policy; a restart it waited for is dropped).
    #[tracing::instrument(name = "job", skip(self), fields(id = %id))]
    pub async fn stop(&self, id: &JobId, grace: Duration) -> Result<Job, HostError> {
        self.job(id)?;
        self.stopping(id).await;
        match self.halt(id, grace).await {
            Ok(_) => self.stopped(id).await,
            Err(e) => {
                lock(&self.inner.stopping).remove(id);
                Err(e)
            }
        }
    }

    /// Stops a job as [`Host::stop`] does, its restart policy left to apply.
    async fn halt(&self, id: &JobId, grace: Duration) -> Result<Job, HostError> {
        let job = self.job(id)?;
        if job.state.is_final() {
            return Ok(job);
        }
        let rt = self.inner.runtime.clone();
        let rid = id.as_str().to_string();
        match tokio::task::spawn_blocking(move || rt.stop(&rid, grace)).await? {
            Ok(_) | Err(RuntimeError::NoSuchJob(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.finalize(id).await
    }

    /// Takes a running job out of discoverd (routers drain it) before it is stopped; it
    /// stays out until it ends.
    pub fn deregister(&self, id: &JobId) -> Result<(), HostError> {
        let job = self.job(id)?;
        self.inner.registrations.deregister(&job);
        Ok(())
    }

    /// Sends a signal to a running job's init process.
    pub async fn signal(&self, id: &JobId, signal: &str) -> Result<(), HostError> {
        let sig = parse_signal(signal)?;
        let job = self.job(id)?;
        if job.state != JobState::Running {
            return Err(HostError::JobNotRunning(id.clone(), job.state));
        }
        let rt = self.inner.runtime.clone();
        let rid = id.as_str().to_string();
        Ok(tokio::task::spawn_blocking(move || rt.signal(&rid, sig)).await??)
    }

    /// Removes an ended job and all its files; with `force`, kills it first.
    #[tracing::instrument(name = "job", skip(self), fields(id = %id))]
    pub async fn delete(&self, id: &JobId, force: bool) -> Result<(), HostError> {
        let job = self.job(id)?;
        if !job.state.is_final() && !force {
            return Err(HostError::JobRunning(id.clone(), job.state));
        }
        self.stopping(id).await;
        let deleted = self.delete_now(id, force).await;
        lock(&self.inner.stopping).remove(id);
        if deleted.is_ok() {
            lock(&self.inner.short_runs).remove(id);
        }
        deleted
    }

    async fn delete_now(&self, id: &JobId, force: bool) -> Result<(), HostError> {
        let mut job = self.job(id)?;
        if !job.state.is_final() && !force {
            return Err(HostError::JobRunning(id.clone(), job.state));
        }
        // A job being created is stopped once its start has ended one way or the other.
        let deadline = Instant::now() + Duration::from_secs(120);
        while job.state == JobState::Starting && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            job = match self.job(id) {
                Ok(j) => j,
                // A refused start leaves no record: nothing to delete.
                Err(HostError::NoSuchJob(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
        }
        if !job.state.is_final() {
            self.stop(id, Duration::ZERO).await?;
        }
        let rt = self.inner.runtime.clone();
        let rid = id.as_str().to_string();
        match tokio::task::spawn_blocking(move || rt.delete(&rid)).await? {
            Ok(()) | Err(RuntimeError::NoSuchJob(_)) => {}
            Err(e) => return Err(e.into()),
        }
        tokio::task::block_in_place(|| self.inner.db.delete_job(id))?;
        if let Some(job) = lock(&self.inner.jobs).remove(id) {
            self.inner.events.job_deleted(&job);
        }
        Ok(())
    }

    /// Watches a running job's shim and records the job's end when the shim exits.
    fn spawn_watch(&self, id: JobId) {
        let host = self.clone();
        let span = tracing::info_span!("job", id = %id);
        tokio::spawn(
            async move {
                loop {
                    crate::watch::shim_exit(host.runtime(), id.as_str()).await;
                    match host.finalize(&id).await {
                        Ok(job) if !job.state.is_final() => {
                            tokio::time::sleep(Duration::from_millis(100)).await
                        }
                        Ok(job) => {
                            host.after_end(&job);
                            return;
                        }
                        Err(e) => {
                            tracing::error!(job = %id, error = %e, "recording the end of a job");
                            return;
                        }
                    }
                }
            }
            .instrument(span),
        );
    }
}

/// A signal by name (`TERM`, `SIGTERM`, case-insensitive) or number.
pub fn parse_signal(s: &str) -> Result<Signal, HostError> {
    let bad = || {
        HostError::BadRequest(format!(
            "unknown signal {s:?}: use a name such as TERM, KILL, HUP, USR1 or a number"
        ))
    };
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigusr1").unwrap(), Signal::SIGUSR1);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        for bad in ["", "NOPE", "999", "-1"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
