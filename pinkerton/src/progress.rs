//! Showing pull progress: one bar per layer on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::digest::Digest;
use crate::pull::{Progress, PullEvent};

/// A [`Progress`] that draws to stderr: bars when it is a terminal, one line per event when not.
pub fn stderr_progress() -> Progress {
    if std::io::stderr().is_terminal() {
        let bars = Bars {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        };
        let bars = Arc::new(bars);
        Arc::new(move |e| bars.event(e))
    } else {
        Arc::new(line_event)
    }
}

fn line_event(e: PullEvent) {
    match e {
        PullEvent::Resolved { digest, layers } => eprintln!("resolved {digest} ({layers} layers)"),
        PullEvent::LayerExists { digest } => eprintln!("{}: already exists", digest.short()),
        PullEvent::LayerStarted { digest, size } => {
            eprintln!("{}: downloading {}", digest.short(), human_size(size))
        }
        PullEvent::LayerProgress { .. } => {}
        PullEvent::LayerDone { digest } => eprintln!("{}: pull complete", digest.short()),
    }
}

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Bars {
    fn event(&self, e: PullEvent) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            PullEvent::Resolved { digest, layers } => {
                let _ = self
                    .multi
                    .println(format!("resolved {digest} ({layers} layers)"));
            }
            PullEvent::LayerExists { digest } => {
                let _ = self
                    .multi
                    .println(format!("{}: already exists", digest.short()));
            }
            PullEvent::LayerStarted { digest, size } => {
                let bar = self.multi.add(ProgressBar::new(size));
                bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix}: {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec}",
                    )
                    .expect("valid template"),
                );
                bar.set_prefix(digest.short().to_string());
                bars.insert(digest, bar);
            }
            PullEvent::LayerProgress { digest, received } => {
                if let Some(b) = bars.get(&digest) {
                    b.set_position(received);
                }
            }
            PullEvent::LayerDone { digest } => {
                if let Some(b) = bars.remove(&digest) {
                    b.finish_with_message("pull complete");
                }
            }
        }
    }
}

/// `1.5 MB`-style sizes (powers of 1000, as Docker prints them).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parses `512`, `64k`, `64M`, `32G`, `1T` (powers of 1024) into bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.to_ascii_lowercase().trim_end_matches(['b', 'i']) {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("10"), Some(10));
        assert_eq!(parse_size("1x"), None);
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_500_000), "1.5 MB");
    }
}
