//! `GET /status`: what the host has and uses, read from /proc and statvfs.

use std::collections::BTreeMap;

use crate::host::Host;
use host_api::{Capacity, HostStatus};

impl Host {
    /// The host's identity, capacity and use.
    pub fn status(&self) -> HostStatus {
        let mut jobs = BTreeMap::new();
        for j in self.jobs() {
            *jobs.entry(j.state).or_default() += 1;
        }
        let disk = nix::sys::statvfs::statvfs(&self.inner.config.state)
            .map(|s| Capacity {
                total: s.blocks() * s.fragment_size(),
                available: s.blocks_available() * s.fragment_size(),
            })
            .unwrap_or(Capacity {
                total: 0,
                available: 0,
            });
        HostStatus {
            id: self.inner.id.clone(),
            tags: self.inner.config.tags.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime: self.inner.started.elapsed().as_secs(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load: loadavg(),
            memory: meminfo(),
            disk,
            jobs,
            gateway: self.runtime().network().gateway(),
            draining: self.draining(),
            pid: std::process::id(),
            started: self.inner.started_at,
            discoverd: self.inner.config.discoverd.as_ref().map(|e| e.to_string()),
            api: self.advertised_api(),
        }
    }
}

fn loadavg() -> [f64; 3] {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut v = s.split_whitespace().map(|x| x.parse().unwrap_or(0.0));
    [
        v.next().unwrap_or(0.0),
        v.next().unwrap_or(0.0),
        v.next().unwrap_or(0.0),
    ]
}

fn meminfo() -> Capacity {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    Capacity {
        total: field("MemTotal:"),
        available: field("MemAvailable:"),
    }
}
