//! The runtime as its callers see it: create a job from a [`JobSpec`], watch it, signal it,
//! stop it, read its log, delete it without leaving anything behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pinkerton::store::{Store, StoreError};

use crate::log::{read_log, LogLine};
use crate::net::{Attachment, NetConfig, NetError, Network};
use crate::oci::SpecError;
use crate::rootfs::{self, RootfsError};
use crate::shim::ExitStatus;
use crate::spec::{JobId, JobSpec};
use crate::volume::{VolumeError, Volumes};

/// The variable that tells a job the address it is reached at: a bridged job's own address
/// (set here), a host-network job's host address (set by the host daemon).
pub const EXTERNAL_IP: &str = "EXTERNAL_IP";

mod cleanup;
mod create;
mod dir;
mod image_use;
mod init;
mod restart;
pub(crate) mod standby;

use cleanup::{kill_cgroup, remove_cgroups};
pub use cleanup::{shim_alive, shims_of};
pub use dir::JobDir;

/// Where jobs live by default.
pub const DEFAULT_ROOT: &str = "/var/lib/flynn/runtime";
/// The cgroup every job's cgroup is created under, unless [`Runtime::with_cgroup_parent`].
pub const CGROUP_PARENT: &str = "flynn";
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Where every job mounts a filesystem of its own (`/dev` a tmpfs, `/proc`, `/sys`).
const MOUNT_POINTS: [&str; 3] = ["dev", "proc", "sys"];

/// A runtime operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A job with this id exists.
    #[error("job {0} already exists; delete it first or choose another id")]
    Exists(JobId),
    /// No job has this id.
    #[error("no such job: {0}")]
    NoSuchJob(String),
    /// The job is still running.
    #[error("job {0} is running; stop it first")]
    Running(JobId),
    /// The image is not in the store, or is incomplete.
    #[error("image {image:?}: {source}")]
    Image {
        /// The image name.
        image: String,
        /// The store's error.
        source: StoreError,
    },
    /// The image's config does not parse.
    #[error("image {image:?} has an unusable config: {reason}")]
    ImageConfig {
        /// The image name.
        image: String,
        /// The parse error.
        reason: String,
    },
    /// The job spec cannot be turned into a runtime spec.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The root filesystem failed.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// The job did not start.
    #[error("job {id} failed to start: {reason}")]
    StartFailed {
        /// The job.
        id: JobId,
        /// The shim's report.
        reason: String,
    },
    /// Waiting for the job timed out.
    #[error("job {0} did not exit in time")]
    Timeout(JobId),
    /// A volume operation failed.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// Networking failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A filesystem or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed (the underlying error).
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let what = what.into();
    move |source| RuntimeError::Io { what, source }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Being set up.
    Starting,
    /// Running with this init pid.
    Running(i32),
    /// Ended.
    Exited(ExitStatus),
    /// Never started.
    Failed,
}

/// The init jobs run as PID 1 when they ask for one: Debian's static tini (package `tini`).
pub const DEFAULT_INIT: &str = "/usr/bin/tini-static";

/// Runs jobs from images in a pinkerton store.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    run: PathBuf,
    mount_points: PathBuf,
    store: Store,
    shim: PathBuf,
    standby: Option<std::sync::Arc<standby::Standby>>,
    volumes: Volumes,
    network: Network,
    cgroup_parent: String,
    init: PathBuf,
}

impl Runtime {
    /// A runtime keeping jobs in `root/jobs` (their files while they run in `root/run`, see
    /// [`JobDir`]) and volumes in `root/volumes`, images from `store`, starting `shim` per job.
    pub fn new(
        root: impl Into<PathBuf>,
        store: Store,
        shim: impl Into<PathBuf>,
    ) -> Result<Self, RuntimeError> {
        let root = root.into();
        let jobs = root.join("jobs");
        let run = root.join("run");
        for d in [&jobs, &run] {
            fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
        }
        // Job directories hold environments and logs: root only.
        for d in [&root, &jobs, &run] {
            fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(io(format!("restricting {}", d.display())))?;
        }
        // The bottom layer of every job's root filesystem: what it mounts over.
        let mount_points = root.join("mountpoints");
        for d in MOUNT_POINTS {
            let d = mount_points.join(d);
            fs::create_dir_all(&d).map_err(io(format!("creating {}", d.display())))?;
        }
        let volumes = Volumes::new(root.join("volumes"));
        let network = Network::new(NetConfig::default(), root.join("net"));
        Ok(Self {
            root: jobs,
            run,
            mount_points,
            store,
            shim: shim.into(),
            standby: None,
            volumes,
            network,
            cgroup_parent: CGROUP_PARENT.into(),
            init: DEFAULT_INIT.into(),
        })
    }

    /// The same runtime with another static init binary for jobs that ask for one
    /// (default [`DEFAULT_INIT`]).
    pub fn with_init(mut self, path: impl Into<PathBuf>) -> Self {
        self.init = path.into();
        self
    }

    /// The same runtime with another network configuration.
    pub fn with_network(mut self, cfg: NetConfig) -> Self {
        let dir = self.root.parent().unwrap_or(&self.root).join("net");
        self.network = Network::new(cfg, dir);
        self
    }

    /// The same runtime with jobs' cgroups under `/PARENT/` instead of `/flynn/`, so that two
    /// runtimes on one machine never share a cgroup. Refused unless `parent` is a plain name.
    pub fn with_cgroup_parent(mut self, parent: &str) -> Result<Self, RuntimeError> {
        if !crate::spec::valid_name(parent) {
            return Err(RuntimeError::Io {
                what: format!("cgroup parent {parent:?}"),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "use 1-64 letters, digits, '_', '.' or '-'",
                ),
            });
        }
        self.cgroup_parent = parent.into();
        Ok(self)
    }

    /// The same runtime keeping a shim started ahead of the next job (`flynn-shim --standby`,
    /// ready for it in the caller's mount and network namespaces): a job start hands its job
    /// to it instead of starting a shim (about 1.5 ms of a start), and starts the next one off
    /// its path. For a long-lived runtime (the host daemon); one that starts a single job
    /// gains nothing. The standby ends when the runtime and its clones are dropped.
    pub fn with_standby_shim(mut self) -> Self {
        let standby = standby::Standby::new(self.shim.clone());
        standby.start_next();
        self.standby = Some(standby);
        self
    }

    /// The pid of the standby shim waiting for the next job, if one is ready (see
    /// [`Runtime::with_standby_shim`]).
    pub fn standby_shim(&self) -> Option<i32> {
        self.standby.as_ref()?.waiting()
    }

    /// The bridge network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Where job `id` is on the network, for bridge-mode jobs.
    pub fn attachment(&self, id: &str) -> Result<Option<Attachment>, RuntimeError> {
        let (_, dir) = self.existing(id)?;
        Ok(read_attachment(&dir))
    }

    /// The directory jobs live in.
    pub fn jobs_dir(&self) -> &Path {
        &self.root
    }

    /// The runtime's volumes.
    pub fn volumes(&self) -> &Volumes {
        &self.volumes
    }

    /// Deletes a volume that no job (running or not yet deleted) uses.
    pub fn delete_volume(&self, name: &str) -> Result<(), RuntimeError> {
        for id in self.list()? {
            let spec = fs::read(self.dir(&id).file(JobDir::SPEC)).ok();
            let spec: Option<JobSpec> = spec.and_then(|b| serde_json::from_slice(&b).ok());
            if spec.is_some_and(|s| s.config.volumes.iter().any(|v| v.name == name)) {
                let job = id.to_string();
                return Err(VolumeError::InUse {
                    name: name.to_string(),
                    job,
                }
                .into());
            }
        }
        Ok(self.volumes.delete(name)?)
    }

    fn dir(&self, id: &JobId) -> JobDir {
        JobDir::find(self.root.join(id.as_str()), self.run.join(id.as_str()))
    }

    fn existing(&self, id: &str) -> Result<(JobId, JobDir), RuntimeError> {
        let job: JobId = id
            .parse()
            .map_err(|_| RuntimeError::NoSuchJob(id.to_string()))?;
        let dir = self.dir(&job);
        if !dir.exists() {
            return Err(RuntimeError::NoSuchJob(id.to_string()));
        }
        Ok((job, dir))
    }

    /// The job's cgroup path (relative to each hierarchy's root).
    pub fn cgroup_path(&self, id: &JobId) -> String {
        format!("/{}/{id}", self.cgroup_parent)
    }

    fn state_in(&self, dir: &JobDir) -> JobState {
        if let Ok(b) = fs::read(dir.file(JobDir::EXIT)) {
            if let Ok(status) = serde_json::from_slice(&b) {
                return JobState::Exited(status);
            }
        }
        if dir.file(JobDir::ERROR).exists() {
            return JobState::Failed;
        }
        match fs::read_to_string(dir.file(JobDir::PID))
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            Some(pid) => JobState::Running(pid),
            None => JobState::Starting,
        }
    }

    /// The job's state.
    pub fn state(&self, id: &str) -> Result<JobState, RuntimeError> {
        let (_, dir) = self.existing(id)?;
        Ok(self.state_in(&dir))
    }

    /// Waits up to `timeout` for the job to end.
    pub fn wait(&self, id: &str, timeout: Duration) -> Result<ExitStatus, RuntimeError> {
        let (job, dir) = self.existing(id)?;
        let start = Instant::now();
        loop {
            if let JobState::Exited(s) = self.state_in(&dir) {
                return Ok(s);
            }
            let waited = start.elapsed();
            if waited > timeout {
                return Err(RuntimeError::Timeout(job));
            }
            // Short jobs are noticed quickly; long waits poll less often.
            let pause = if waited < Duration::from_millis(100) {
                500
            } else {
                10_000
            };
            std::thread::sleep(Duration::from_micros(pause));
        }
    }

    /// Sends `signal` to the job's init process.
    pub fn signal(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        let (job, dir) = self.existing(id)?;
        match self.state_in(&dir) {
            JobState::Running(pid) => match kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
                Err(e) => Err(RuntimeError::Io {
                    what: format!("signalling job {job}"),
                    source: e.into(),
                }),
            },
            _ => Ok(()),
        }
    }

    /// Stops the job: SIGTERM, then SIGKILL after `grace` (a pid-namespace init ignores
    /// SIGTERM unless it handles it). SIGCONT follows SIGTERM, so a job that was stopped
    /// (SIGSTOP) handles it at once rather than waiting out the grace period.
    pub fn stop(&self, id: &str, grace: Duration) -> Result<ExitStatus, RuntimeError> {
        self.signal(id, Signal::SIGTERM)?;
        self.signal(id, Signal::SIGCONT)?;
        match self.wait(id, grace) {
            Ok(s) => Ok(s),
            Err(RuntimeError::Timeout(_)) => {
                self.signal(id, Signal::SIGKILL)?;
                self.wait(id, Duration::from_secs(30))
            }
            Err(e) => Err(e),
        }
    }

    /// The job's log records.
    pub fn logs(&self, id: &str) -> Result<Vec<LogLine>, RuntimeError> {
        let (_, dir) = self.existing(id)?;
        read_log(dir.path()).map_err(io("reading the log"))
    }

    /// Removes an ended job: its root filesystem, cgroup and files.
    pub fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        let (job, dir) = self.existing(id)?;
        if let JobState::Running(_) | JobState::Starting = self.state_in(&dir) {
            return Err(RuntimeError::Running(job));
        }
        self.clear(&job, &dir, &[])
    }

    /// Removes what an ended job holds: its processes and cgroups, network, root filesystem,
    /// directory (all of it, or all but the files named in `keep`) and image use.
    pub(super) fn clear(
        &self,
        job: &JobId,
        dir: &JobDir,
        keep: &[&str],
    ) -> Result<(), RuntimeError> {
        kill_cgroup(&self.cgroup_path(job));
        remove_cgroups(&self.cgroup_path(job))?;
        self.remove_dir(dir, keep)?;
        self.release_image(job)
    }

    /// Removes the job's run directory, then its directory on disk (all of it, or all but
    /// the files named in `keep`): a directory on disk without a run directory is a job
    /// that still shows in [`Runtime::list`], so it is removed last.
    fn remove_dir(&self, dir: &JobDir, keep: &[&str]) -> Result<(), RuntimeError> {
        if let Some(id) = dir.path().file_name().and_then(|n| n.to_str()) {
            if bridged(dir) {
                self.network.detach(id, read_attachment(dir).as_ref())?;
            }
        }
        rootfs::unmount(&dir.rootfs())?;
        let remove_all = |d: &Path| match fs::remove_dir_all(d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(format!("removing {}", d.display()))(e))
            }
            _ => Ok(()),
        };
        if dir.run_path() != dir.path() {
            remove_all(dir.run_path())?;
        }
        if keep.is_empty() {
            return remove_all(dir.path());
        }
        let removing = |e: std::io::Error| io(format!("removing {}", dir.path().display()))(e);
        for entry in fs::read_dir(dir.path()).map_err(removing)? {
            let entry = entry.map_err(removing)?;
            if keep.iter().any(|k| entry.file_name() == *k) {
                continue;
            }
            let gone = match entry.file_type().map_err(removing)?.is_dir() {
                true => fs::remove_dir_all(entry.path()),
                false => fs::remove_file(entry.path()),
            };
            gone.map_err(removing)?;
        }
        Ok(())
    }

    /// The directory of job `id`, which exists.
    pub fn job_dir(&self, id: &str) -> Result<JobDir, RuntimeError> {
        Ok(self.existing(id)?.1)
    }

    /// The pid of the job's shim, once it has one.
    pub fn shim_pid(&self, id: &str) -> Result<Option<i32>, RuntimeError> {
        let (_, dir) = self.existing(id)?;
        Ok(fs::read_to_string(dir.file(JobDir::SHIM_PID))
            .ok()
            .and_then(|p| p.trim().parse().ok()))
    }

    /// Ids of all jobs present, whole or in part (a job's directory on disk is made before
    /// its run directory and removed after it, so a run directory alone was left by hand:
    /// [`Runtime::purge`] removes it too).
    pub fn list(&self) -> Result<Vec<JobId>, RuntimeError> {
        let mut out: Vec<JobId> = Vec::new();
        for d in [&self.root, &self.run] {
            let entries = fs::read_dir(d).map_err(io("listing jobs"))?;
            out.extend(entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// False only for a job whose spec says it had no bridge network: one whose creation stopped
/// before its spec was written may hold a half-made attachment.
fn bridged(dir: &JobDir) -> bool {
    let spec = fs::read(dir.file(JobDir::SPEC)).ok();
    let spec: Option<JobSpec> = spec.and_then(|b| serde_json::from_slice(&b).ok());
    spec.is_none_or(|s| s.config.network == crate::spec::NetworkMode::Bridge)
}

fn read_attachment(dir: &JobDir) -> Option<Attachment> {
    serde_json::from_slice(&fs::read(dir.file(JobDir::NET)).ok()?).ok()
}

/// A runtime document as pretty JSON.
fn json(v: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec_pretty(v).expect("runtime documents serialise")
}
