//! The router's coarse clock for idle timeouts, parking and ejections: read on every read and
//! write of every connection, so it must cost next to nothing. `CLOCK_MONOTONIC_COARSE` is
//! answered from the vDSO without reading the time stamp counter; its resolution (one
//! scheduler tick, 1-10 ms) is far finer than the seconds these deadlines are set in.

use nix::time::{clock_gettime, ClockId};

/// Milliseconds on the router's clock (monotonic, since boot, never 0).
pub(crate) fn now_ms() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE)
        .expect("CLOCK_MONOTONIC_COARSE is available on every Linux since 2.6.32");
    t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000 + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn it_moves_with_the_monotonic_clock() {
        let (a, start) = (now_ms(), Instant::now());
        std::thread::sleep(Duration::from_millis(60));
        let moved = now_ms() - a;
        let real = start.elapsed().as_millis() as u64;
        // One tick of coarseness (at most 10 ms at HZ=100) either side.
        assert!(
            moved + 12 >= real && moved <= real + 12,
            "coarse clock moved {moved} ms while {real} ms passed"
        );
    }
}
