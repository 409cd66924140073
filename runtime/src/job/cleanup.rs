//! The end of a job's life on the host: giving back what an ended job holds, ending jobs whose
//! shim died, removing half-made ones, and the cgroup and process checks they rely on.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{bridged, io, read_attachment, JobState, Runtime, RuntimeError};
use crate::job::JobDir;
use crate::rootfs;
use crate::spec::JobId;

impl Runtime {
    /// Gives back what an ended job holds on the host (network address, ports, veth, root
    /// filesystem mount, cgroup) while keeping its files, log included, until it is deleted.
    /// Refused while the job runs; doing it twice is harmless.
    pub fn release(&self, id: &str) -> Result<(), RuntimeError> {
        let (job, dir) = self.existing(id)?;
        if let JobState::Running(_) | JobState::Starting = self.state_in(&dir) {
            return Err(RuntimeError::Running(job));
        }
        if bridged(&dir) {
            self.network
                .detach(job.as_str(), read_attachment(&dir).as_ref())?;
        }
        rootfs::unmount(&dir.rootfs())?;
        kill_cgroup(&self.cgroup_path(&job));
        remove_cgroups(&self.cgroup_path(&job))?;
        self.release_image(&job)
    }

    /// Ends a job whose shim is gone without recording an exit (the shim was killed, or the
    /// host rebooted): kills whatever is left in its cgroup, records `reason` as its error and
    /// releases it. Refused while the shim still runs.
    pub fn abandon(&self, id: &str, reason: &str) -> Result<(), RuntimeError> {
        let (job, dir) = self.existing(id)?;
        if let Some(pid) = self.shim_pid(id)? {
            if shim_alive(pid, &dir) {
                return Err(RuntimeError::Running(job));
            }
        }
        if !matches!(self.state_in(&dir), JobState::Exited(_) | JobState::Failed) {
            kill_cgroup(&self.cgroup_path(&job));
            dir.write(JobDir::ERROR, reason.as_bytes())
                .map_err(io("writing the job error"))?;
        }
        self.release(id)
    }

    /// Why the job failed to start or was abandoned, if it did.
    pub fn error(&self, id: &str) -> Result<Option<String>, RuntimeError> {
        let (_, dir) = self.existing(id)?;
        Ok(fs::read_to_string(dir.file(JobDir::ERROR)).ok())
    }

    /// Removes whatever is left of job `id`, even a job whose setup was interrupted before
    /// its shim ran (no `shim.json`): processes in its cgroup, network, mount, files.
    /// Refused while its shim runs.
    pub fn purge(&self, id: &str) -> Result<(), RuntimeError> {
        let job: JobId = id
            .parse()
            .map_err(|_| RuntimeError::NoSuchJob(id.to_string()))?;
        let dir = self.dir(&job);
        let shim = fs::read_to_string(dir.file(JobDir::SHIM_PID)).ok();
        if shim
            .and_then(|p| p.trim().parse().ok())
            .is_some_and(|pid| shim_alive(pid, &dir))
        {
            return Err(RuntimeError::Running(job));
        }
        self.clear(&job, &dir, &[])
    }

    /// True when the job's shim process runs.
    pub fn shim_running(&self, id: &str) -> Result<bool, RuntimeError> {
        let (_, dir) = self.existing(id)?;
        Ok(self.shim_pid(id)?.is_some_and(|pid| shim_alive(pid, &dir)))
    }
}

/// True when `pid` is a live flynn-shim serving `dir` (not a process that reused the pid): one
/// started with the job's directory as argument, or a standby working in its run directory.
pub fn shim_alive(pid: i32, dir: &JobDir) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // A zombie has exited already.
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    if zombie {
        return false;
    }
    let want = dir.path().as_os_str().as_encoded_bytes();
    if cmdline.split(|&b| b == 0).any(|arg| arg == want) {
        return true;
    }
    // A standby shim (`flynn-shim --standby`, see `standby`) is told its job on a pipe: it
    // works in the job's run directory before it writes its pid there.
    let standby = cmdline.split(|&b| b == 0).nth(1) == Some(b"--standby".as_slice());
    let cwd = fs::read_link(format!("/proc/{pid}/cwd"));
    standby
        && cwd.is_ok_and(|cwd| {
            cwd == dir.run_path() || fs::canonicalize(dir.run_path()).is_ok_and(|run| cwd == run)
        })
}

/// The live shims serving jobs of the runtime at `root` (its `jobs/` and `run/`): started with
/// a job's two directories as arguments, or standbys that took a job and work in its run
/// directory (a standby still waiting serves none). For leak checks and measurements.
pub fn shims_of(root: &Path) -> Vec<i32> {
    use std::os::unix::ffi::OsStrExt;
    let (jobs, run) = (root.join("jobs"), root.join("run"));
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &i32| {
            let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&Path> = cmdline
                .strip_suffix(&[0])
                .unwrap_or(&cmdline)
                .split(|&b| b == 0)
                .map(|a| Path::new(std::ffi::OsStr::from_bytes(a)))
                .collect();
            match args[..] {
                [_, disk, dir] => disk.starts_with(&jobs) && dir.starts_with(&run),
                [_, flag] if flag == Path::new("--standby") => {
                    fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&run))
                }
                _ => false,
            }
        })
        .collect()
}

/// The cgroup directories of `path` in every mounted hierarchy.
fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    let mut dirs: Vec<PathBuf> = vec![Path::new("/sys/fs/cgroup").join(rel)];
    if let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") {
        dirs.extend(hierarchies.filter_map(|h| Some(h.ok()?.path().join(rel))));
    }
    dirs
}

/// `dir` and every cgroup below it, deepest first (the order they can be removed in).
fn cgroup_tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(cgroup_tree(&e.path()));
            }
        }
    }
    if dir.is_dir() {
        out.push(dir.to_path_buf());
    }
    out
}

/// SIGKILLs every process in the cgroup at `path`, sub-cgroups included, and waits (up to 5 s)
/// until none is left.
pub(super) fn kill_cgroup(path: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<i32> = cgroup_dirs(path)
            .iter()
            .flat_map(|d| cgroup_tree(d))
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for p in pids {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes the job's cgroup in every hierarchy, with any cgroup the job made below it, once
/// no process is left in them (the shim deletes the job's own cgroup itself). A cgroup that
/// cannot be removed is an error naming it: left behind, it would keep its limits and count.
pub(super) fn remove_cgroups(path: &str) -> Result<(), RuntimeError> {
    let mut first_error = None;
    for top in cgroup_dirs(path) {
        for d in cgroup_tree(&top) {
            // The kernel refuses while a process is still exiting: retry briefly.
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match fs::remove_dir(&d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => {
                        first_error.get_or_insert(RuntimeError::Io {
                            what: format!(
                                "removing cgroup {} (kill what runs in it, then rmdir it)",
                                d.display()
                            ),
                            source: e,
                        });
                        break;
                    }
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
