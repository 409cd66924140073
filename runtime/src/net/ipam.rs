//! Address and host-port leases, persisted in one JSON file under an exclusive flock so that
//! no address or port is ever handed out twice, even across processes.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::NetError;

/// First host port handed out when a job asks for any port.
pub const AUTO_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// One job's leases.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The job's address.
    pub ip: Option<Ipv4Addr>,
    /// Host ports (protocol, port) it publishes.
    #[serde(default)]
    pub ports: Vec<(String, u16)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LeaseFile {
    /// The last address handed out, so addresses are not reused at once.
    last: Option<Ipv4Addr>,
    /// The last automatic host port handed out per protocol, for the same reason: a port
    /// given back and handed out again at once can still have connection-tracking entries
    /// (and any rule a failed cleanup left) that lead to the job that had it.
    #[serde(default)]
    last_ports: BTreeMap<String, u16>,
    leases: BTreeMap<String, Lease>,
}

/// The lease database of one subnet.
#[derive(Debug, Clone)]
pub struct Ipam {
    path: PathBuf,
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipam {
    /// Leases of `network/prefix` kept in `dir/leases.json`.
    pub fn new(dir: &Path, network: Ipv4Addr, prefix: u8) -> Self {
        Self {
            path: dir.join("leases.json"),
            network,
            prefix,
        }
    }

    /// The gateway (the bridge's address): the first address of the subnet.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut LeaseFile) -> Result<T, NetError>,
    ) -> Result<T, NetError> {
        let io = |e: std::io::Error| NetError::Leases(self.path.clone(), e.to_string());
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.with_extension("lock"))
            .map_err(io)?;
        let _lock =
            Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, e)| io(e.into()))?;
        let raw = match fs::read(&self.path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        let mut db: LeaseFile = match &raw {
            // Written by rename and not synced: only a power loss can tear it, and then no
            // job that held a lease survived either.
            Some(b) => serde_json::from_slice(b).unwrap_or_else(|e| {
                tracing::warn!(path = %self.path.display(), error = %e, "unreadable lease file; starting from no leases");
                LeaseFile::default()
            }),
            None => LeaseFile::default(),
        };
        let out = f(&mut db)?;
        let json = serde_json::to_vec_pretty(&db).expect("leases serialise");
        // Unchanged (a read, a release of nothing): no new file.
        if raw.as_deref() == Some(json.as_slice()) {
            return Ok(out);
        }
        let tmp = self.path.with_extension("tmp");
        (|| {
            let mut f = File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &json)?;
            fs::rename(&tmp, &self.path)
        })()
        .map_err(io)?;
        Ok(out)
    }

    /// Leases an address for `job` (the same one again if it has one).
    pub fn allocate_ip(&self, job: &str) -> Result<Ipv4Addr, NetError> {
        let (net, prefix, gateway) = (
            u32::from(self.network),
            self.prefix,
            u32::from(self.gateway()),
        );
        self.with(|db| {
            if let Some(ip) = db.leases.get(job).and_then(|l| l.ip) {
                return Ok(ip);
            }
            let size = 1u64 << (32 - prefix);
            let used: std::collections::HashSet<Ipv4Addr> =
                db.leases.values().filter_map(|l| l.ip).collect();
            let start = db.last.map_or(gateway + 1, |l| u32::from(l) + 1);
            for i in 0..size {
                let candidate = net + ((u64::from(start - net) + i) % size) as u32;
                let host = candidate - net;
                if candidate <= gateway || u64::from(host) == size - 1 {
                    continue; // network, gateway and broadcast addresses
                }
                let ip = Ipv4Addr::from(candidate);
                if !used.contains(&ip) {
                    db.last = Some(ip);
                    db.leases.entry(job.to_string()).or_default().ip = Some(ip);
                    return Ok(ip);
                }
            }
            Err(NetError::Exhausted)
        })
    }

    /// Leases a host port for each of `wanted` (protocol, port; 0 for any free one from
    /// [`AUTO_PORTS`]) for `job`, all or none. `busy(proto)` gives the ports host processes
    /// use: those are never leased, asked for or not.
    pub fn allocate_ports(
        &self,
        job: &str,
        wanted: &[(String, u16)],
        busy: impl Fn(&str) -> HashSet<u16>,
    ) -> Result<Vec<u16>, NetError> {
        let busy: BTreeMap<&str, HashSet<u16>> =
            ["tcp", "udp"].into_iter().map(|p| (p, busy(p))).collect();
        self.with(|db| {
            let mut taken: HashSet<(String, u16)> = db
                .leases
                .values()
                .flat_map(|l| l.ports.iter().cloned())
                .collect();
            let mut got = Vec::new();
            for (proto, want) in wanted {
                let host_busy = |p: u16| busy.get(proto.as_str()).is_some_and(|b| b.contains(&p));
                let port = if *want != 0 {
                    if host_busy(*want) {
                        return Err(NetError::HostPortInUse(*want, proto.clone()));
                    }
                    if taken.contains(&(proto.clone(), *want)) {
                        return Err(NetError::PortTaken(*want));
                    }
                    *want
                } else {
                    let (lo, hi) = (*AUTO_PORTS.start(), *AUTO_PORTS.end());
                    let start =
                        db.last_ports
                            .get(proto)
                            .map_or(lo, |l| if *l >= hi { lo } else { l + 1 });
                    let size = u32::from(hi - lo) + 1;
                    let p = (0..size)
                        .map(|i| lo + ((u32::from(start - lo) + i) % size) as u16)
                        .find(|p| !host_busy(*p) && !taken.contains(&(proto.clone(), *p)))
                        .ok_or(NetError::Exhausted)?;
                    db.last_ports.insert(proto.clone(), p);
                    p
                };
                taken.insert((proto.clone(), port));
                got.push(port);
            }
            let lease = db.leases.entry(job.to_string()).or_default();
            lease.ports.extend(
                wanted
                    .iter()
                    .zip(&got)
                    .map(|((proto, _), p)| (proto.clone(), *p)),
            );
            Ok(got)
        })
    }

    /// Drops every lease of `job`.
    pub fn release(&self, job: &str) -> Result<(), NetError> {
        self.with(|db| {
            db.leases.remove(job);
            Ok(())
        })
    }

    /// All current leases.
    pub fn leases(&self) -> Result<BTreeMap<String, Lease>, NetError> {
        self.with(|db| Ok(db.leases.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_ports_are_never_shared() {
        let t = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(t.path(), Ipv4Addr::new(100, 100, 0, 0), 29);
        assert_eq!(ipam.gateway(), Ipv4Addr::new(100, 100, 0, 1));
        let a = ipam.allocate_ip("a").unwrap();
        assert_eq!(a, Ipv4Addr::new(100, 100, 0, 2));
        assert_eq!(ipam.allocate_ip("a").unwrap(), a, "stable per job");
        let ips: Vec<_> = ["b", "c", "d", "e"]
            .iter()
            .map(|j| ipam.allocate_ip(j).unwrap())
            .collect();
        assert_eq!(ips.last(), Some(&Ipv4Addr::new(100, 100, 0, 6)));
        assert!(
            matches!(ipam.allocate_ip("f"), Err(NetError::Exhausted)),
            "/29 has 5 usable"
        );
        ipam.release("b").unwrap();
        assert_eq!(
            ipam.allocate_ip("f").unwrap(),
            Ipv4Addr::new(100, 100, 0, 3)
        );
        let none = |_: &str| HashSet::new();
        let one = |proto: &str, port| vec![(proto.to_string(), port)];
        assert_eq!(
            ipam.allocate_ports("a", &one("tcp", 8080), none).unwrap(),
            [8080]
        );
        assert!(matches!(
            ipam.allocate_ports("c", &one("tcp", 8080), none),
            Err(NetError::PortTaken(8080))
        ));
        assert_eq!(
            ipam.allocate_ports("c", &one("udp", 8080), none).unwrap(),
            [8080]
        );
        assert_eq!(
            ipam.allocate_ports("c", &one("tcp", 0), none).unwrap(),
            [30000]
        );
        ipam.release("a").unwrap();
        assert_eq!(
            ipam.allocate_ports("d", &one("tcp", 8080), none).unwrap(),
            [8080]
        );
        // Ports host processes use are never leased: asked for, refused; auto, skipped.
        let busy = |p: &str| {
            if p == "tcp" {
                HashSet::from([30001, 22])
            } else {
                HashSet::new()
            }
        };
        assert!(matches!(
            ipam.allocate_ports("e", &one("tcp", 22), busy),
            Err(NetError::HostPortInUse(22, _))
        ));
        let two = [("tcp".to_string(), 0), ("tcp".to_string(), 0)];
        assert_eq!(
            ipam.allocate_ports("e", &two, busy).unwrap(),
            [30002, 30003]
        );
        // All or none.
        let bad = [("tcp".to_string(), 0), ("tcp".to_string(), 8080)];
        assert!(ipam.allocate_ports("f", &bad, busy).is_err());
        // Given back, an automatic port is not handed out again at once.
        ipam.release("c").unwrap();
        assert_eq!(
            ipam.allocate_ports("g", &one("tcp", 0), none).unwrap(),
            [30004]
        );
        assert!(ipam
            .leases()
            .unwrap()
            .get("f")
            .is_none_or(|l| l.ports.is_empty()));
    }

    #[test]
    fn reads_and_releases_of_nothing_leave_the_file_alone() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(t.path(), Ipv4Addr::new(100, 100, 0, 0), 29);
        ipam.allocate_ip("a").unwrap();
        let file = t.path().join("leases.json");
        let inode = || std::fs::metadata(&file).unwrap().ino();
        let before = inode();
        assert_eq!(ipam.leases().unwrap().len(), 1);
        ipam.release("never-leased").unwrap();
        assert_eq!(inode(), before, "rewritten without a change");
        ipam.release("a").unwrap();
        assert_ne!(inode(), before);
        assert!(ipam.leases().unwrap().is_empty());
    }
}
