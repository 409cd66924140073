//! Persistent network namespaces: created on a short-lived thread and kept alive by a bind
//! mount of its namespace file, as `ip netns add` does.

use std::fs::File;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use super::NetError;

/// Creates a new network namespace pinned at `path` (a new file), where links created later
/// (a job's `eth0`) have IPv6 turned off.
///
/// Job networking is IPv4. With IPv6 on, every job's `eth0` sent neighbour discovery and
/// multicast listener reports when it came up, which the bridge floods to every port: each
/// reached every running job, and job setups slowed with the number of jobs running (with
/// 500 running, a tenth of the machine's CPU went to it). `lo`, made with the namespace,
/// keeps `::1`, so sockets bound to `::` still work.
pub fn create(path: &Path) -> Result<(), NetError> {
    let err = |what: &str, e: String| NetError::Netns(path.to_path_buf(), format!("{what}: {e}"));
    File::create(path).map_err(|e| err("creating the mount point", e.to_string()))?;
    let target = path.to_path_buf();
    // unshare(CLONE_NEWNET) moves only the calling thread, so a thread of its own does it.
    let result = std::thread::spawn(move || -> Result<(), String> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare: {e}"))?;
        // /proc/sys/net is the calling thread's namespace's. The default, unlike a link's
        // own setting, is written without the kernel's network configuration lock. A kernel
        // without IPv6 has nothing to turn off.
        match std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1") {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("turning IPv6 off for new links: {e}"))
            }
            _ => {}
        }
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind mount: {e}"))
    })
    .join()
    .map_err(|_| err("thread", "panicked".into()))?;
    result.map_err(|e| {
        let _ = std::fs::remove_file(path);
        err("creating", e)
    })
}

/// Runs `f` on a thread that has entered the namespace at `path`.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T, NetError> + Send + 'static,
) -> Result<T, NetError> {
    let ns = File::open(path).map_err(|e| NetError::Netns(path.to_path_buf(), e.to_string()))?;
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        setns(&ns, CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetError::Netns(p, format!("setns: {e}")))?;
        f()
    })
    .join()
    .map_err(|_| NetError::Netns(path.to_path_buf(), "thread panicked".into()))?
}

/// Unpins and removes the namespace at `path` (missing is fine).
pub fn remove(path: &Path) -> Result<(), NetError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(NetError::Netns(path.to_path_buf(), format!("unmount: {e}"))),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::Netns(path.to_path_buf(), e.to_string())),
    }
}
