//! The start of a job that runs under an init (`init: true`) returns once the init runs with
//! SIGTERM blocked: a namespace's PID 1 drops signals it neither handles nor blocks, so a
//! stop sent between the start and that moment would be lost; once blocked, it waits for
//! the init, which forwards it.

use std::fs;
use std::time::{Duration, Instant};

/// How long a start waits for the init to block signals.
const READY_WITHIN: Duration = Duration::from_secs(5);

/// The signal mask in `/proc/PID/status` line `field` (`SigBlk:`, `SigIgn:`).
fn mask(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap_or(0)
}

/// True when `/proc/PID/status` text shows the init ready for SIGTERM: blocked, or SIGTTIN
/// ignored. tini blocks the signals it collects and then ignores SIGTTIN; while it sleeps in
/// `sigtimedwait` the kernel shows the collected signals unblocked, so SigBlk alone is seen
/// only in the moments between two waits (a start waited its whole bound when it missed them).
fn ready_for_sigterm(status: &str) -> bool {
    let bit = |sig: i32| 1u64 << (sig - 1);
    mask(status, "SigBlk:") & bit(libc::SIGTERM) != 0
        || mask(status, "SigIgn:") & bit(libc::SIGTTIN) != 0
}

/// Waits (at most [`READY_WITHIN`]) until process `pid` is the init (`comm` `init`) ready for
/// SIGTERM, or is gone, or `exited` says the job ended.
pub(super) fn wait_ready(pid: i32, exited: impl Fn() -> bool) {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            return;
        };
        if comm.trim() == "init" && ready_for_sigterm(&status) {
            return;
        }
        if Instant::now() > deadline || exited() {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_when_sigterm_is_blocked_or_sigttin_ignored() {
        // tini between two waits, and asleep in sigtimedwait (as /proc showed it).
        assert!(ready_for_sigterm(
            "SigBlk:\tfffffffe7ffbfeff\nSigIgn:\t0000000180300000\n"
        ));
        assert!(ready_for_sigterm(
            "SigBlk:\t0000000000000000\nSigIgn:\t0000000180300000\n"
        ));
        // Not yet configured: nothing blocked or ignored.
        assert!(!ready_for_sigterm(
            "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
        ));
        assert!(!ready_for_sigterm(""));
    }
}
