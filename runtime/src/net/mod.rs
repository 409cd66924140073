//! Bridge networking: each job gets a network namespace of its own, a veth pair with the host
//! end on the bridge (hairpin on), an address leased from the subnet, a default route through
//! the bridge, published ports (DNAT from the host's addresses, loopback included, and from
//! jobs), outbound NAT, and `resolv.conf`/`hosts` files.

pub mod ipam;
mod link;
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
    /// A network namespace operation failed.
    #[error("network namespace {0}: {1}")]
    Netns(PathBuf, String),
    /// A netlink request failed.
    #[error("netlink: {0}")]
    Netlink(String),
    /// An iptables or sysctl change failed.
    #[error("{0}")]
    Iptables(String),
    /// A file of the job could not be written.
    #[error("writing {0}: {1}")]
    File(PathBuf, std::io::Error),
}

/// A port to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMap {
    /// Port on the host; 0 (or absent) picks a free one from 30000-32767.
    #[serde(default)]
    pub host: u16,
    /// Port in the job.
    pub job: u16,
    /// `tcp` or `udp`.
    #[serde(default = "tcp")]
    pub proto: String,
}

fn tcp() -> String {
    "tcp".into()
}

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

    /// Creates the bridge (with the gateway address) and the shared NAT rules unless they
    /// exist; returns the bridge's link index. Done one caller at a time, so concurrent first
    /// jobs neither race to create the bridge nor add the rules twice.
    pub fn ensure(&self) -> Result<u32, NetError> {
        static SETUP: Mutex<bool> = Mutex::new(false);
        let mut done = SETUP.lock().unwrap_or_else(|p| p.into_inner());
        let (bridge, gateway, prefix) = (
            self.cfg.bridge.clone(),
            self.ipam.gateway(),
            self.cfg.prefix,
        );
        let br =
            link::with_handle(async |h| link::ensure_bridge(&h, &bridge, gateway, prefix).await)?;
        if !*done {
            nat::ensure_base(&self.cfg.bridge, self.cfg.subnet, self.cfg.prefix)?;
            *done = true;
        }
        Ok(br)
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
        let result = self.attach_steps(id, hostname, ports, files, &tag, &mut att);
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
        tag: &str,
        att: &mut Attachment,
    ) -> Result<(), NetError> {
        att.ip = self.ipam.allocate_ip(id)?;
        let ns_dir = self.dir.join("ns");
        std::fs::create_dir_all(&ns_dir).map_err(|e| NetError::File(ns_dir.clone(), e))?;
        netns::create(&att.netns)?;
        let ns_file = std::fs::File::open(&att.netns)
            .map_err(|e| NetError::Netns(att.netns.clone(), e.to_string()))?;
        let (gateway, prefix, peer) = (att.gateway, self.cfg.prefix, format!("fp{tag}"));
        let host = att.host_veth.clone();
        let br = self.ensure()?;
        link::with_handle(async |h| link::create_veth(&h, &host, &peer, br, &ns_file).await)?;
        let ip = att.ip;
        netns::run_in(&att.netns, move || {
            link::with_handle(async |h| {
                link::configure_inside(&h, &peer, ip, prefix, gateway).await
            })
        })?;
        for p in ports {
            let host_port = self.ipam.allocate_port(id, &p.proto, p.host)?;
            let published = PortMap {
                host: host_port,
                job: p.job,
                proto: p.proto.clone(),
            };
            nat::add_port(&published.proto, host_port, att.ip, p.job)?;
            att.ports.push(published);
        }
        self.write_files(files, hostname, att.ip)
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
    /// that are already gone.
    pub fn detach(&self, id: &str, att: Option<&Attachment>) -> Result<(), NetError> {
        let mut first_error = None;
        if let Some(att) = att {
            for p in &att.ports {
                if let Err(e) = nat::remove_port(&p.proto, p.host, att.ip, p.job) {
                    first_error.get_or_insert(e);
                }
            }
            let host = att.host_veth.clone();
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
