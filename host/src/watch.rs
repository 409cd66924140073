//! Waiting for a job's shim to exit without polling: a pidfd (Linux 5.3+) becomes readable when
//! the process ends, whoever its parent is, so the same wait works for jobs this daemon started
//! and for jobs it re-adopted after a restart.

use std::os::fd::{FromRawFd, OwnedFd};

use runtime::Runtime;
use tokio::io::unix::AsyncFd;

/// Returns once the shim of job `id` has exited (at once if it is not running).
pub async fn shim_exit(rt: &Runtime, id: &str) {
    let (Ok(Some(pid)), Ok(dir)) = (rt.shim_pid(id), rt.job_dir(id)) else {
        return;
    };
    let Some(fd) = pidfd_open(pid) else { return };
    // Checked after opening: the pidfd now pins this process, so a reused pid cannot fool us.
    if !runtime::job::shim_alive(pid, &dir) {
        return;
    }
    // SAFETY: the OwnedFd moves into the AsyncFd, which keeps it open (and the same
    // descriptor) until it is dropped.
    match unsafe { AsyncFd::register(fd) } {
        Ok(fd) => {
            let _ = fd.readable().await;
        }
        Err(e) => tracing::warn!(job = %id, error = %e, "cannot watch the shim"),
    }
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
