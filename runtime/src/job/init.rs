//! The start of a job that runs under an init (`init: true`) returns once the init runs with
//! SIGTERM blocked: a namespace's PID 1 drops signals it neither handles nor blocks, so a
//! stop sent between the start and that moment would be lost; once blocked, it waits for
//! the init, which forwards it.

use std::fs;
use std::time::{Duration, Instant};

/// How long a start waits for the init to block signals.
const READY_WITHIN: Duration = Duration::from_secs(5);

/// True when `/proc/PID/status` text shows SIGTERM blocked.
fn blocks_sigterm(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (libc::SIGTERM - 1)) != 0)
}

/// Waits (at most [`READY_WITHIN`]) until process `pid` is the init (`comm` `init`) with
/// SIGTERM blocked, or is gone, or `exited` says the job ended.
pub(super) fn wait_ready(pid: i32, exited: impl Fn() -> bool) {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            return;
        };
        if comm.trim() == "init" && blocks_sigterm(&status) {
            return;
        }
        if Instant::now() > deadline || exited() {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}
