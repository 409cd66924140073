//! A job's files, in two directories named in this one place: `ROOT/jobs/ID/` on disk holds
//! what outlives the job's processes (its spec, log, exit record, the overlay's upper and
//! work directories), `ROOT/run/ID/` what the job needs only while it runs (bundle, shim
//! config, sockets, pid files, libcontainer's state). The run directory is meant for a tmpfs
//! ([`crate::Runtime::keep_run_files_in_memory`]): kept across daemon restarts, gone with a
//! reboot, as the job's processes are.

use std::path::{Path, PathBuf};

use super::{io, Runtime, RuntimeError};

impl Runtime {
    /// Mounts a tmpfs (mode 0700) on the run directory, where each job's files live while it
    /// runs, unless it is a tmpfs already (a restarted daemon finds its own) or holds files
    /// (a tmpfs mounted over them would hide the files of running jobs). Returns whether the
    /// run directory is a tmpfs afterwards. The mount stays when the daemon exits: the jobs
    /// it leaves running keep their files; a reboot takes it, as it takes the jobs.
    pub fn keep_run_files_in_memory(&self) -> Result<bool, RuntimeError> {
        use nix::mount::{mount, MsFlags};
        use nix::sys::statfs::{statfs, TMPFS_MAGIC};
        let run = &self.run;
        let fs_type = |p: &Path| {
            statfs(p)
                .map(|s| s.filesystem_type())
                .map_err(|e| io(format!("statfs {}", p.display()))(e.into()))
        };
        if fs_type(run)? == TMPFS_MAGIC {
            return Ok(true);
        }
        let occupied = std::fs::read_dir(run)
            .map_err(io(format!("listing {}", run.display())))?
            .next()
            .is_some();
        if occupied {
            return Ok(false);
        }
        mount(
            Some("flynn-run"),
            run,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=0700"),
        )
        .map_err(|e| io(format!("mounting a tmpfs on {}", run.display()))(e.into()))?;
        Ok(true)
    }
}

/// A job's two directories and the names of what they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDir {
    disk: PathBuf,
    run: PathBuf,
}

impl JobDir {
    /// The job's spec as created (`JobSpec`, JSON); written last, its presence marks a job
    /// that exists.
    pub const SPEC: &'static str = "job.json";
    /// What the shim is told to run (JSON). Run directory.
    pub const SHIM_CONFIG: &'static str = "shim.json";
    /// The shim's own log (its stderr). Run directory.
    pub const SHIM_LOG: &'static str = "shim.log";
    /// The shim's pid. Run directory.
    pub const SHIM_PID: &'static str = "shim.pid";
    /// The job's init pid, once it runs. Run directory.
    pub const PID: &'static str = "pid";
    /// How the job ended (`ExitStatus`, JSON).
    pub const EXIT: &'static str = "exit.json";
    /// Why the job failed (text).
    pub const ERROR: &'static str = "error";
    /// The job's network attachment (JSON).
    pub const NET: &'static str = "net.json";
    /// The shim's attach socket. Run directory.
    pub const ATTACH_SOCKET: &'static str = "attach.sock";
    /// The console socket a terminal job's pty arrives on. Run directory.
    pub const CONSOLE_SOCKET: &'static str = "console.sock";
    /// libcontainer's state directory. Run directory.
    pub const STATE: &'static str = "state";
    /// The OCI bundle (`config.json` and the root filesystem mount point). Run directory.
    pub const BUNDLE: &'static str = "bundle";
    /// The OCI runtime spec in the bundle.
    pub const OCI_CONFIG: &'static str = "config.json";
    /// The overlay's upper and work directories.
    pub const UPPER: &'static str = "upper";
    /// See [`JobDir::UPPER`].
    pub const WORK: &'static str = "work";

    /// What lives in the run directory; everything else is on disk.
    const RUN: [&'static str; 8] = [
        Self::SHIM_CONFIG,
        Self::SHIM_LOG,
        Self::SHIM_PID,
        Self::PID,
        Self::ATTACH_SOCKET,
        Self::CONSOLE_SOCKET,
        Self::STATE,
        Self::BUNDLE,
    ];

    /// The job whose files are in `disk` and `run`.
    pub fn new(disk: impl Into<PathBuf>, run: impl Into<PathBuf>) -> Self {
        Self {
            disk: disk.into(),
            run: run.into(),
        }
    }

    /// The job whose files are in `disk` and `run`, or all in `disk` when it was started
    /// before run directories existed (its shim's pid is there and `run` is missing), so a
    /// daemon upgraded under running jobs adopts them.
    pub fn find(disk: PathBuf, run: PathBuf) -> Self {
        if !run.exists() && disk.join(Self::SHIM_PID).exists() {
            return Self::new(disk.clone(), disk);
        }
        Self::new(disk, run)
    }

    /// The directory on disk (it names the job: the shim runs with it as its argument).
    pub fn path(&self) -> &Path {
        &self.disk
    }

    /// The run directory.
    pub fn run_path(&self) -> &Path {
        &self.run
    }

    /// `name` in the directory it belongs in.
    pub fn file(&self, name: &str) -> PathBuf {
        self.side(name).join(name)
    }

    fn side(&self, name: &str) -> &Path {
        match Self::RUN.contains(&name) {
            true => &self.run,
            false => &self.disk,
        }
    }

    /// The OCI bundle directory.
    pub fn bundle(&self) -> PathBuf {
        self.file(Self::BUNDLE)
    }

    /// The job's root filesystem (the overlay mount point).
    pub fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }

    /// True once the job's files are all written (its spec exists).
    pub fn exists(&self) -> bool {
        self.file(Self::SPEC).exists()
    }

    /// Writes `name` in its directory atomically (see [`crate::atomic::write`]).
    pub fn write(&self, name: &str, data: &[u8]) -> std::io::Result<()> {
        crate::atomic::write(self.side(name), name, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_files_go_to_the_run_directory_and_the_rest_to_disk() {
        let d = JobDir::new("/d/jobs/a", "/r/run/a");
        assert_eq!(d.file(JobDir::PID), Path::new("/r/run/a/pid"));
        assert_eq!(
            d.file(crate::log::CURRENT),
            Path::new("/d/jobs/a/log.jsonl")
        );
        assert_eq!(d.file(JobDir::EXIT), Path::new("/d/jobs/a/exit.json"));
        assert_eq!(d.rootfs(), Path::new("/r/run/a/bundle/rootfs"));
        assert_eq!(d.file(JobDir::UPPER), Path::new("/d/jobs/a/upper"));
    }

    #[test]
    fn a_job_started_before_run_directories_keeps_every_file_on_disk() {
        let t = tempfile::tempdir().unwrap();
        let (disk, run) = (t.path().join("jobs/a"), t.path().join("run/a"));
        std::fs::create_dir_all(&disk).unwrap();
        let found = JobDir::find(disk.clone(), run.clone());
        assert_eq!(found.run_path(), run, "a new job");
        std::fs::write(disk.join(JobDir::SHIM_PID), "1").unwrap();
        let old = JobDir::find(disk.clone(), run.clone());
        assert_eq!(old.file(JobDir::PID), disk.join("pid"));
        assert_eq!(old.rootfs(), disk.join("bundle/rootfs"));
        std::fs::create_dir_all(&run).unwrap();
        assert_eq!(JobDir::find(disk, run.clone()).run_path(), run);
    }
}
