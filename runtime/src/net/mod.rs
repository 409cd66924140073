//! Bridge networking: each job gets a network namespace of its own, a veth pair with the host
//! end on the bridge (hairpin on), an address leased from the subnet, a default route through
//! the bridge, published ports (DNAT from the host's addresses, loopback included, and from
//! jobs), outbound NAT, and `resolv.conf`/`hosts` files.

pub mod ipam;
mod link;
pub mod listeners;
pub mod nat;
mod netns;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use ipam::Ipam;

/// A network operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The lease file cannot be read or written.
    #[error("lease database {0}: {1}")]
    Leases(PathBuf, String),
    /// No address or port is free.
    #[error(
        "no free address or port left in the job network; delete stopped jobs or widen the subnet"
    )]
    Exhausted,
    /// The host port is published by another job.
    #[error("host port {0} is already published by another job")]
    PortTaken(u16),
    /// A host process uses the host port.
    #[error(
        "host port {0}/{1} is used by a process on the host; choose another port or 0 for any"
    )]
    HostPortInUse(u16, String),
    /// A network namespace operation failed.
    #[error("network namespace {0}: {1}")]
    Netns(PathBuf, String),
    /// A netlink request failed.
    #[error("netlink: {0}")]
    Netlink(String),
    /// An iptables or sysctl change failed.
    #[error("{0}")]
    Iptables(String),
    /// Jobs still use the network (addresses, published ports).
    #[error("{0}")]
    InUse(String),
    /// A file of the job could not be written.
    #[error("writing {0}: {1}")]
    File(PathBuf, std::io::Error),
}

pub use runtime_api::{PortMap, Proto};

/// The base setup this process made or found recorded (see `Network::setup`).
static SETUP: Mutex<Option<BaseSetup>> = Mutex::new(None);

/// The job network's settings.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The bridge's name.
    pub bridge: String,
    /// The subnet jobs get addresses from.
    pub subnet: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// Name servers written to jobs' resolv.conf.
    pub nameservers: Vec<String>,
    /// Host services jobs may reach on the bridge gateway (discoverd's DNS and HTTP); every
    /// other connection from a job to the host is refused.
    pub open_ports: Vec<nat::OpenPort>,
}

impl Default for NetConfig {
    fn default() -> Self {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let nameservers: Vec<String> = host
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver"))
            .map(|s| s.trim().to_string())
            .filter(|s| s.parse::<Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
            .collect();
        Self {
            bridge: "flynnbr0".into(),
            subnet: Ipv4Addr::new(100, 100, 0, 0),
            prefix: 16,
            nameservers,
            open_ports: Vec::new(),
        }
    }
}

/// A job's place on the network, kept in the job directory as `net.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The job's address.
    pub ip: Ipv4Addr,
    /// The bridge's address.
    pub gateway: Ipv4Addr,
    /// The host end of the veth pair.
    pub host_veth: String,
    /// The pinned network namespace.
    pub netns: PathBuf,
    /// Published ports with the host port actually leased.
    pub ports: Vec<PortMap>,
}

/// What the shared rules were set up for: a boot, a network namespace and a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BaseSetup {
    boot_id: String,
    netns: u64,
    config: String,
    filtered: bool,
}

impl BaseSetup {
    fn now(cfg: &NetConfig, filtered: bool) -> Self {
        use std::os::unix::fs::MetadataExt;
        let open: Vec<String> = cfg
            .open_ports
            .iter()
            .map(|p| format!("{}/{}", p.proto, p.port))
            .collect();
        Self {
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .unwrap_or_default()
                .trim()
                .to_string(),
            netns: std::fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino()),
            config: format!(
                "{} {}/{} {}",
                cfg.bridge,
                cfg.subnet,
                cfg.prefix,
                open.join(",")
            ),
            filtered,
        }
    }

    /// The same boot, namespace and configuration (whatever was found about filtering).
    fn same(&self, other: &Self) -> bool {
        (&self.boot_id, self.netns, &self.config) == (&other.boot_id, other.netns, &other.config)
    }
}

/// The bridge network of one host.
#[derive(Debug, Clone)]
pub struct Network {
    cfg: NetConfig,
    dir: PathBuf,
    ipam: Ipam,
}

fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

impl Network {
    /// The network described by `cfg`, keeping its state in `dir`.
    pub fn new(cfg: NetConfig, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let ipam = Ipam::new(&dir, cfg.subnet, cfg.prefix);
        Self { cfg, dir, ipam }
    }

    /// The lease database.
    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    /// The bridge's address: what jobs reach the host at.
    pub fn gateway(&self) -> Ipv4Addr {
        self.ipam.gateway()
    }

    /// Creates the bridge (with the gateway address) unless it exists and (re)writes the shared
    /// NAT and filter rules; returns the bridge's link index. A daemon calls this when it
    /// starts, so rules an operator flushed come back. Done one caller at a time, so concurrent
    /// first jobs neither race to create the bridge nor add the rules twice.
    pub fn ensure(&self) -> Result<u32, NetError> {
        self.setup(true).map(|(br, _)| br)
    }

    /// Removes what [`Network::ensure`] set up: the bridge, the project's iptables chains and
    /// the jumps to them, the masquerade rules and the record of the setup; what is already
    /// gone is fine. Refused while a job holds an address or a published port: delete the
    /// jobs first (with the daemon stopped, or it sets the network up again when it starts).
    pub fn remove(&self) -> Result<(), NetError> {
        let mut done = SETUP.lock().unwrap_or_else(|p| p.into_inner());
        let leases = self.ipam.leases()?;
        if let Some(job) = leases.keys().next() {
            return Err(NetError::InUse(format!(
                "{} jobs still hold addresses on {} (job {job} among them): delete them first",
                leases.len(),
                self.cfg.bridge
            )));
        }
        nat::remove_base(&self.cfg.bridge, self.cfg.subnet, self.cfg.prefix)?;
        let bridge = self.cfg.bridge.clone();
        link::with_handle(async |h| link::delete(&h, &bridge).await)?;
        let marker = self.dir.join("base.json");
        match std::fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NetError::File(marker, e)),
        }
        *done = None;
        Ok(())
    }

    /// The bridge and rules for a job: set up once per network namespace and boot (recorded in
    /// `base.json` beside the leases, so that a process starting one job does not rewrite the
    /// rules each time); also tells whether iptables sees bridged frames (otherwise job ports
    /// must be isolated on the bridge).
    fn ensure_filtering(&self) -> Result<(u32, bool), NetError> {
        self.setup(false)
    }

    fn setup(&self, force: bool) -> Result<(u32, bool), NetError> {
        let mut done = SETUP.lock().unwrap_or_else(|p| p.into_inner());
        let (bridge, gateway, prefix) = (
            self.cfg.bridge.clone(),
            self.ipam.gateway(),
            self.cfg.prefix,
        );
        // The MAC of an existing bridge is fixed once, when the daemon starts (`force`).
        let br = link::with_handle(async |h| {
            link::ensure_bridge(&h, &bridge, gateway, prefix, force).await
        })?;
        let want = BaseSetup::now(&self.cfg, false);
        let marker = self.dir.join("base.json");
        if !force {
            if let Some(d) = done.as_ref().filter(|d| d.same(&want)) {
                return Ok((br, d.filtered));
            }
            let recorded: Option<BaseSetup> = std::fs::read(&marker)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(d) = recorded.filter(|d| d.same(&want)) {
                let filtered = d.filtered;
                *done = Some(d);
                return Ok((br, filtered));
            }
        }
        let filtered = nat::bridge_filtering();
        listener_handover();
        nat::ensure_base(
            &self.cfg.bridge,
            self.cfg.subnet,
            self.cfg.prefix,
            &self.cfg.open_ports,
        )?;
        let setup = BaseSetup { filtered, ..want };
        let _ = std::fs::create_dir_all(&self.dir);
        let tmp = self.dir.join(".base.json.tmp");
        if std::fs::write(&tmp, serde_json::to_vec(&setup).expect("serialises")).is_ok() {
            let _ = std::fs::rename(&tmp, &marker);
        }
        *done = Some(setup);
        Ok((br, filtered))
    }

    /// Puts job `id` on the network and writes its `resolv.conf`, `hosts` and `hostname` into
    /// `files`. On error, whatever was set up is removed again.
    pub fn attach(
        &self,
        id: &str,
        hostname: &str,
        ports: &[PortMap],
        files: &Path,
    ) -> Result<Attachment, NetError> {
        let tag = short_hash(id);
        let mut att = Attachment {
            ip: Ipv4Addr::UNSPECIFIED,
            gateway: self.ipam.gateway(),
            host_veth: format!("fl{tag}"),
            netns: self.dir.join("ns").join(id),
            ports: Vec::new(),
        };
        let result = self.attach_steps(id, hostname, ports, files, &mut att);
        match result {
            Ok(()) => Ok(att),
            Err(e) => {
                let _ = self.detach(id, Some(&att));
                Err(e)
            }
        }
    }

    fn attach_steps(
        &self,
        id: &str,
        hostname: &str,
        ports: &[PortMap],
        files: &Path,
        att: &mut Attachment,
    ) -> Result<(), NetError> {
        att.ip = self.ipam.allocate_ip(id)?;
        let ns_dir = self.dir.join("ns");
        std::fs::create_dir_all(&ns_dir).map_err(|e| NetError::File(ns_dir.clone(), e))?;
        netns::create(&att.netns)?;
        let ns_file = std::fs::File::open(&att.netns)
            .map_err(|e| NetError::Netns(att.netns.clone(), e.to_string()))?;
        let (gateway, prefix) = (att.gateway, self.cfg.prefix);
        let host = att.host_veth.clone();
        let (br, filtered) = self.ensure_filtering()?;
        link::with_handle(async |h| link::create_veth(&h, &host, br, &ns_file, !filtered).await)?;
        let ip = att.ip;
        netns::run_in(&att.netns, move || {
            link::with_handle(async |h| link::configure_inside(&h, ip, prefix, gateway).await)
        })?;
        let wanted: Vec<(String, u16)> = ports
            .iter()
            .map(|p| (p.proto.to_string(), p.host))
            .collect();
        let leased = if wanted.is_empty() {
            Vec::new()
        } else {
            self.ipam
                .allocate_ports(id, &wanted, listeners::host_ports)?
        };
        let mut rules = Vec::new();
        for (p, host) in ports.iter().zip(leased) {
            rules.push(nat::PortRule {
                proto: p.proto.to_string(),
                host,
                ip: att.ip,
                port: p.job,
            });
            att.ports.push(PortMap {
                host,
                job: p.job,
                proto: p.proto,
            });
        }
        nat::add_ports(&rules)?;
        self.write_files(files, hostname, att.ip)
    }

    /// Drops the host's pin of a started job's network namespace. The job's processes hold
    /// the namespace from then on; when the last one ends the kernel destroys it with the
    /// job's end of the veth. Until then the pin is one mount in the host's table, which
    /// every job start reads, so the table would grow with the jobs a host runs.
    pub fn unpin(&self, id: &str) -> Result<(), NetError> {
        netns::remove(&self.dir.join("ns").join(id))
    }

    /// Removes what no job owns any more, as a crash in the middle of a setup or teardown
    /// leaves it: published-port rules to addresses not leased to a job in `live`, veths on
    /// the bridge of jobs not in `live`, and leases of jobs not in `live`. Returns what it
    /// removed, for the log.
    pub fn prune(&self, live: &[String]) -> Result<Vec<String>, NetError> {
        let mut removed = Vec::new();
        for (id, _) in self.ipam.leases()? {
            if !live.contains(&id) {
                self.detach(&id, None)?;
                removed.push(format!("leases of {id}"));
            }
        }
        let leased: Vec<Ipv4Addr> = self.ipam.leases()?.values().filter_map(|l| l.ip).collect();
        let shift = 32 - u32::from(self.cfg.prefix.min(32));
        let net = u32::from(self.cfg.subnet).checked_shr(shift).unwrap_or(0);
        let in_subnet = |ip: Ipv4Addr| u32::from(ip).checked_shr(shift).unwrap_or(0) == net;
        let rules = nat::remove_ports_where(|r| in_subnet(r.ip) && !leased.contains(&r.ip))?;
        if rules > 0 {
            removed.push(format!("{rules} port rules"));
        }
        let keep: Vec<String> = live
            .iter()
            .map(|id| format!("fl{}", short_hash(id)))
            .collect();
        let bridge = self.cfg.bridge.clone();
        let stale = link::with_handle(async |h| link::job_veths(&h, &bridge).await)?
            .into_iter()
            .filter(|n| n.starts_with("fl") && !keep.contains(n))
            .collect::<Vec<_>>();
        for name in stale {
            let n = name.clone();
            link::with_handle(async |h| link::delete(&h, &n).await)?;
            removed.push(format!("veth {name}"));
        }
        Ok(removed)
    }

    fn write_files(&self, dir: &Path, hostname: &str, ip: Ipv4Addr) -> Result<(), NetError> {
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| NetError::File(p, e))
        };
        let resolv: String = self
            .cfg
            .nameservers
            .iter()
            .map(|n| format!("nameserver {n}\n"))
            .collect();
        write("resolv.conf", resolv)?;
        write("hosts", format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{hostname}\n"))?;
        write("hostname", format!("{hostname}\n"))
    }

    /// Takes job `id` off the network: port rules, veth, namespace, leases. Tolerates parts
    /// that are already gone, and works without `att` too (a setup interrupted before the
    /// attachment was written): the veth's name follows from the id and the port rules are
    /// found by the job's leased address.
    pub fn detach(&self, id: &str, att: Option<&Attachment>) -> Result<(), NetError> {
        let mut first_error = None;
        // With an attachment that published nothing there are no rules to look for (listing
        // them costs a process); without one, any rule to the job's leased address goes.
        let ips: Vec<Ipv4Addr> = match att {
            Some(a) if a.ports.is_empty() => Vec::new(),
            Some(a) => vec![a.ip],
            None => self
                .ipam
                .leases()?
                .get(id)
                .and_then(|l| l.ip)
                .into_iter()
                .collect(),
        };
        if !ips.is_empty() {
            if let Err(e) = nat::remove_ports_where(|r| ips.contains(&r.ip)) {
                first_error.get_or_insert(e);
            }
        }
        // With an attachment the job's namespace held the other end: once the start's unpin
        // (or the one below) and the job's last process are gone, the kernel destroys the
        // pair with the namespace, off the caller's path (an explicit delete waits for RCU
        // grace periods, about 30 ms). Without one, a setup was cut short and the pair may
        // sit in the host's namespace.
        let host = format!("fl{}", short_hash(id));
        if att.is_none() {
            if let Err(e) = link::with_handle(async |h| link::delete(&h, &host).await) {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = netns::remove(&self.dir.join("ns").join(id)) {
            first_error.get_or_insert(e);
        }
        if let Err(e) = self.ipam.release(id) {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Lets host-network jobs that share a port with `SO_REUSEPORT` (a router and its next
/// release) hand over: connections a closing listener had not accepted yet move to another
/// listener of the port (`net.ipv4.tcp_migrate_req`, Linux 5.14) instead of being reset.
fn listener_handover() {
    let knob = "/proc/sys/net/ipv4/tcp_migrate_req";
    if let Err(e) = std::fs::write(knob, "1") {
        tracing::warn!(error = %e, "cannot set net.ipv4.tcp_migrate_req=1 (Linux 5.14 or later): connections queued on a host-network job's listener are reset when it stops");
    }
}
