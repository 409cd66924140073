//! Restart backoff of crashed jobs: at once for the first few restarts, then 10 s, then
//! 30 s; a job that stayed up for five minutes starts its count again.

use std::time::Duration;

/// Uptime after which a crash counts as the first again.
pub const RESET_AFTER: Duration = Duration::from_secs(300);

/// How long to wait before restart number `restarts` (1 for the first).
pub fn delay(restarts: u32) -> Duration {
    match restarts {
        0..=5 => Duration::ZERO,
        6..=15 => Duration::from_secs(10),
        _ => Duration::from_secs(30),
    }
}

/// The restart count of the next replacement of a job restarted `restarts` times that ran
/// for `uptime`.
pub fn next(restarts: u32, uptime: Duration) -> u32 {
    if uptime >= RESET_AFTER {
        1
    } else {
        restarts.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_then_resets_after_five_minutes_up() {
        let mut r = 0;
        let mut delays = Vec::new();
        for _ in 0..20 {
            r = next(r, Duration::from_secs(1));
            delays.push(delay(r).as_secs());
        }
        assert_eq!(&delays[..5], &[0; 5]);
        assert_eq!(&delays[5..15], &[10; 10]);
        assert_eq!(&delays[15..], &[30; 5]);
        assert_eq!(next(r, RESET_AFTER), 1);
        assert_eq!(delay(1), Duration::ZERO);
    }
}
