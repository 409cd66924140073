//! A shim started ahead of the job it will serve. Starting `flynn-shim` (exec, dynamic
//! loading, its first fork) is about a millisecond and a half of every job start; a standby
//! shim has done all of that already and waits, detached, for a job's directories on a pipe.
//! A start hands its job to the standby when one is ready (and was started in the caller's
//! mount and network namespaces, which the shim works in), then starts the next standby on a
//! thread of its own, off the start's path; with none ready it starts the job's shim itself.
//! A runtime keeps one when asked (`Runtime::with_standby_shim`, the host daemon does).
//! One standby is kept: jobs started in a burst mostly start their own shims. Closing the
//! pipe (the runtime dropped, the daemon gone, even by `kill -9`) ends a waiting standby.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::JobDir;

/// The standby shim of a runtime (shared by its clones).
#[derive(Debug)]
pub(crate) struct Standby {
    shim: PathBuf,
    ready: Mutex<Option<Ready>>,
    starting: AtomicBool,
}

/// A waiting shim: its pid, its stdin, and the namespaces it was started in.
#[derive(Debug)]
struct Ready {
    pid: i32,
    input: ChildStdin,
    namespaces: Namespaces,
}

/// The mount and network namespaces of the calling thread (their inode numbers).
type Namespaces = (u64, u64);

fn namespaces() -> Option<Namespaces> {
    let ino = |ns: &str| {
        std::fs::metadata(format!("/proc/thread-self/ns/{ns}"))
            .ok()
            .map(|m| m.ino())
    };
    Some((ino("mnt")?, ino("net")?))
}

impl Standby {
    /// Standbys of `shim`; none is started yet.
    pub(crate) fn new(shim: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            shim,
            ready: Mutex::new(None),
            starting: AtomicBool::new(false),
        })
    }

    /// The pid of the shim waiting for a job, if one is ready.
    pub(crate) fn waiting(&self) -> Option<i32> {
        let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        ready.as_ref().map(|r| r.pid)
    }

    /// Hands the job in `dir` (its files written) to the waiting shim and starts the next
    /// standby; false when no usable one waited, and the caller starts the job's shim.
    pub(crate) fn hand_over(self: &Arc<Self>, dir: &JobDir) -> bool {
        let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner()).take();
        let handed = ready.is_some_and(|mut r| {
            // A shim that ended since (killed by hand) has no reader left: the write fails.
            Some(r.namespaces) == namespaces() && r.input.write_all(&encode(dir)).is_ok()
        });
        self.start_next();
        handed
    }

    /// Starts a standby on a thread of its own, unless one is being started.
    pub(crate) fn start_next(self: &Arc<Self>) {
        if self.starting.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("shim-standby".into())
            .spawn(move || {
                match me.start() {
                    Ok(r) => *me.ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(r),
                    Err(e) => tracing::warn!(
                        shim = %me.shim.display(),
                        error = %e,
                        "starting a standby shim; jobs start their own shims"
                    ),
                }
                me.starting.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.starting.store(false, Ordering::Release);
        }
    }

    fn start(&self) -> std::io::Result<Ready> {
        let namespaces = namespaces().ok_or_else(|| std::io::Error::other("no /proc"))?;
        let mut child = Command::new(&self.shim)
            .arg("--standby")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let input = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        // The waiting process writes its pid and closes stdout; the first one exits once it
        // has forked it.
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            stdout.read_to_string(&mut out)?;
        }
        let status = child.wait()?;
        let pid = out.trim().parse().ok().filter(|_| status.success());
        let pid = pid.ok_or_else(|| {
            std::io::Error::other(format!(
                "{} --standby: {status}, said {out:?}",
                self.shim.display()
            ))
        })?;
        Ok(Ready {
            pid,
            input,
            namespaces,
        })
    }
}

/// What a standby reads: the job's two directories, each path ended by a NUL byte.
fn encode(dir: &JobDir) -> Vec<u8> {
    let mut msg = Vec::new();
    for p in [dir.path(), dir.run_path()] {
        msg.extend_from_slice(p.as_os_str().as_bytes());
        msg.push(0);
    }
    msg
}

/// The job in a standby's message; `None` for an empty one (no job: its runtime went away)
/// or one that is not two NUL-ended paths.
pub(crate) fn decode(msg: &[u8]) -> Option<JobDir> {
    let mut parts = msg.split(|&b| b == 0);
    let (disk, run, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if disk.is_empty() || run.is_empty() || !rest.is_empty() || parts.next().is_some() {
        return None;
    }
    let path = |b: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(b));
    Some(JobDir::new(path(disk), path(run)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_handed_over_reads_back_as_its_two_directories() {
        let dir = JobDir::new(
            "/var/lib/flynn/runtime/jobs/web-1",
            "/var/lib/flynn/runtime/run/web-1",
        );
        let back = decode(&encode(&dir)).expect("decodes");
        assert_eq!(back.path(), dir.path());
        assert_eq!(back.run_path(), dir.run_path());
    }

    #[test]
    fn no_job_or_a_malformed_message_is_none() {
        assert!(decode(b"").is_none(), "the runtime went away");
        assert!(decode(b"/a\0").is_none(), "one path");
        assert!(decode(b"/a\0/b").is_none(), "the second path not ended");
        assert!(decode(b"/a\0/b\0/c\0").is_none(), "three paths");
        assert!(decode(b"\0/b\0").is_none(), "an empty path");
    }
}
