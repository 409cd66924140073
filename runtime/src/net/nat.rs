//! NAT and filter rules through iptables: published ports (DNAT, also for traffic from the
//! host itself and from jobs, i.e. hairpin), outbound masquerade, and the filters that keep
//! jobs apart and away from host services. Rule sets go to the kernel in one
//! `iptables-restore` batch each, not one process per rule.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::NetError;

/// The nat chain holding one DNAT rule per published port.
pub const DNAT_CHAIN: &str = "FLYNN-DNAT";
/// The filter chain deciding what is forwarded from, to and between jobs.
pub const FORWARD_CHAIN: &str = "FLYNN-FORWARD";
/// The filter chain deciding which host services jobs reach on the bridge.
pub const INPUT_CHAIN: &str = "FLYNN-INPUT";

fn iptables(args: &[&str]) -> Result<bool, NetError> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| NetError::Iptables(format!("running iptables: {e} (install iptables)")))?;
    Ok(out.status.success())
}

/// Applies `rules` (iptables-restore syntax, tables and COMMIT included) in one batch that
/// the kernel takes whole or not at all; other rules are left as they are.
fn restore(rules: &str) -> Result<(), NetError> {
    let mut child = Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            NetError::Iptables(format!("running iptables-restore: {e} (install iptables)"))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .map_err(|e| NetError::Iptables(format!("writing to iptables-restore: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::Iptables(format!("waiting for iptables-restore: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Iptables(format!(
            "iptables-restore refused the rules: {}\n{rules}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Puts a jump to `chain` first in `builtin` unless it is there.
fn jump_first(table: &str, builtin: &str, matches: &[&str], chain: &str) -> Result<(), NetError> {
    let rule: Vec<&str> = matches.iter().copied().chain(["-j", chain]).collect();
    let check: Vec<&str> = [&["-t", table, "-C", builtin][..], &rule].concat();
    if iptables(&check)? {
        return Ok(());
    }
    let add: Vec<&str> = [&["-t", table, "-I", builtin, "1"][..], &rule].concat();
    if iptables(&add)? {
        Ok(())
    } else {
        Err(NetError::Iptables(format!("iptables {}", add.join(" "))))
    }
}

fn sysctl(key: &str, value: &str) -> Result<(), NetError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value)
        .map_err(|e| NetError::Iptables(format!("setting {key}={value}: {e}")))
}

/// A host service jobs may reach on the bridge gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPort {
    /// `tcp` or `udp`.
    pub proto: String,
    /// The port.
    pub port: u16,
}

/// Makes frames bridged between job ports pass the iptables FORWARD chain
/// (`br_netfilter`, `net.bridge.bridge-nf-call-iptables=1`, as Docker does for
/// `--icc=false`), so the filter rules see job-to-job traffic. Returns false where the kernel
/// has no `br_netfilter`: then the bridge must isolate job ports itself.
pub fn bridge_filtering() -> bool {
    let knob = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    if !std::path::Path::new(knob).exists() {
        // A missing modprobe or module is an answer, not an error.
        let _ = Command::new("modprobe")
            .arg("br_netfilter")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    std::fs::write(knob, "1").is_ok()
}

/// The rules every job on `bridge` (subnet `net/prefix`) relies on; idempotent, and each
/// call rewrites the project's own chains whole. Jobs reach each other only through
/// published ports (DNATed traffic), reach the host only on `open` ports, and packets from the
/// bridge to 127.0.0.0/8 are dropped (the published-port DNAT for 127.0.0.1 needs
/// `route_localnet`, which would otherwise let a job reach host services bound to loopback).
pub fn ensure_base(
    bridge: &str,
    net: Ipv4Addr,
    prefix: u8,
    open: &[OpenPort],
) -> Result<(), NetError> {
    sysctl("net.ipv4.ip_forward", "1")?;
    sysctl(&format!("net.ipv4.conf.{bridge}.route_localnet"), "1")?;
    let subnet = format!("{net}/{prefix}");
    let mut nat = format!("*nat\n:{DNAT_CHAIN} - [0:0]\nCOMMIT\n");
    // The chain must survive: declaring it in a restore would flush the published ports.
    if iptables(&["-t", "nat", "-L", DNAT_CHAIN, "-n"])? {
        nat.clear();
    }
    if !nat.is_empty() {
        restore(&nat)?;
    }
    for (table, builtin, matches, chain) in &JUMPS[..2] {
        jump_first(table, builtin, matches, chain)?;
    }
    for rule in &masquerade(bridge, &subnet) {
        let check: Vec<&str> = [&["-t", "nat", "-C", "POSTROUTING"][..], rule].concat();
        if !iptables(&check)? {
            let add: Vec<&str> = [&["-t", "nat", "-A", "POSTROUTING"][..], rule].concat();
            if !iptables(&add)? {
                return Err(NetError::Iptables(format!("iptables {}", add.join(" "))));
            }
        }
    }
    let mut filter = format!(
        "*filter\n:{FORWARD_CHAIN} - [0:0]\n:{INPUT_CHAIN} - [0:0]\n\
         -A {FORWARD_CHAIN} -i {bridge} -o {bridge} -m conntrack --ctstate DNAT -j ACCEPT\n\
         -A {FORWARD_CHAIN} -i {bridge} -o {bridge} -j DROP\n\
         -A {FORWARD_CHAIN} -i {bridge} -j ACCEPT\n\
         -A {FORWARD_CHAIN} -o {bridge} -j ACCEPT\n\
         -A {INPUT_CHAIN} -i {bridge} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n\
         -A {INPUT_CHAIN} -i {bridge} -d 127.0.0.0/8 -j DROP\n\
         -A {INPUT_CHAIN} -i {bridge} -p icmp -j ACCEPT\n"
    );
    for p in open {
        filter.push_str(&format!(
            "-A {INPUT_CHAIN} -i {bridge} -p {} --dport {} -j ACCEPT\n",
            p.proto, p.port
        ));
    }
    filter.push_str(&format!(
        "-A {INPUT_CHAIN} -i {bridge} -p tcp -j REJECT --reject-with tcp-reset\n\
         -A {INPUT_CHAIN} -i {bridge} -j REJECT\nCOMMIT\n"
    ));
    restore(&filter)?;
    for (table, builtin, matches, chain) in &JUMPS[2..] {
        jump_first(table, builtin, matches, chain)?;
    }
    Ok(())
}

/// The POSTROUTING rules of the job network: jobs' traffic leaving the bridge, hairpin
/// traffic to published ports, and DNATed traffic from the host's loopback.
fn masquerade<'a>(bridge: &'a str, subnet: &'a str) -> [Vec<&'a str>; 3] {
    [
        vec!["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"],
        vec![
            "-s",
            subnet,
            "-d",
            subnet,
            "-m",
            "conntrack",
            "--ctstate",
            "DNAT",
            "-j",
            "MASQUERADE",
        ],
        vec!["-s", "127.0.0.0/8", "-o", bridge, "-j", "MASQUERADE"],
    ]
}

/// The jumps from the built-in chains into the project's own: (table, built-in chain,
/// matches, chain).
const JUMPS: [(&str, &str, &[&str], &str); 4] = [
    (
        "nat",
        "PREROUTING",
        &["-m", "addrtype", "--dst-type", "LOCAL"],
        DNAT_CHAIN,
    ),
    (
        "nat",
        "OUTPUT",
        &["-m", "addrtype", "--dst-type", "LOCAL"],
        DNAT_CHAIN,
    ),
    ("filter", "FORWARD", &[], FORWARD_CHAIN),
    ("filter", "INPUT", &[], INPUT_CHAIN),
];

/// Undoes [`ensure_base`] for `bridge` (subnet `net/prefix`): the jumps into the project's
/// chains, the chains, and the masquerade rules; what is already gone is fine. Refused while
/// a published port remains (a job still holds it). `ip_forward` is left on: other
/// software may rely on it.
pub fn remove_base(bridge: &str, net: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
    let published = port_rules()?;
    if let Some(r) = published.first() {
        return Err(NetError::InUse(format!(
            "{} host ports are still published (host port {}/{} to {}:{}): delete the jobs \
             that publish them first",
            published.len(),
            r.host,
            r.proto,
            r.ip,
            r.port
        )));
    }
    let delete_all = |table: &str, builtin: &str, rule: &[&str]| -> Result<(), NetError> {
        let check: Vec<&str> = [&["-t", table, "-C", builtin][..], rule].concat();
        while iptables(&check)? {
            let del: Vec<&str> = [&["-t", table, "-D", builtin][..], rule].concat();
            if !iptables(&del)? {
                return Err(NetError::Iptables(format!("iptables {}", del.join(" "))));
            }
        }
        Ok(())
    };
    for (table, builtin, matches, chain) in JUMPS {
        let rule: Vec<&str> = matches.iter().copied().chain(["-j", chain]).collect();
        delete_all(table, builtin, &rule)?;
    }
    for (table, chain) in [
        ("nat", DNAT_CHAIN),
        ("filter", FORWARD_CHAIN),
        ("filter", INPUT_CHAIN),
    ] {
        if iptables(&["-t", table, "-L", chain, "-n"])?
            && !(iptables(&["-t", table, "-F", chain])? && iptables(&["-t", table, "-X", chain])?)
        {
            return Err(NetError::Iptables(format!(
                "iptables -t {table} -X {chain} failed: is a rule outside the project jumping to it?"
            )));
        }
    }
    let subnet = format!("{net}/{prefix}");
    for rule in &masquerade(bridge, &subnet) {
        delete_all("nat", "POSTROUTING", rule)?;
    }
    Ok(())
}

/// One published port: host port `host` (protocol `proto`) to `ip:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    /// `tcp` or `udp`.
    pub proto: String,
    /// The host port.
    pub host: u16,
    /// The job's address.
    pub ip: Ipv4Addr,
    /// The job's port.
    pub port: u16,
}

impl PortRule {
    fn spec(&self) -> String {
        format!(
            "-p {proto} -m {proto} --dport {host} -j DNAT --to-destination {ip}:{port}",
            proto = self.proto,
            host = self.host,
            ip = self.ip,
            port = self.port
        )
    }

    /// Parses a rule as `iptables -S` prints it.
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix(&format!("-A {DNAT_CHAIN} "))?;
        let words: Vec<&str> = rest.split_whitespace().collect();
        let after = |flag: &str| {
            words
                .iter()
                .position(|w| *w == flag)
                .and_then(|i| words.get(i + 1))
        };
        let (ip, port) = after("--to-destination")?.split_once(':')?;
        Some(Self {
            proto: after("-p")?.to_string(),
            host: after("--dport")?.parse().ok()?,
            ip: ip.parse().ok()?,
            port: port.parse().ok()?,
        })
    }
}

/// Publishes every rule of `rules` in one batch.
pub fn add_ports(rules: &[PortRule]) -> Result<(), NetError> {
    if rules.is_empty() {
        return Ok(());
    }
    let mut batch = String::from("*nat\n");
    for r in rules {
        batch.push_str(&format!("-A {DNAT_CHAIN} {}\n", r.spec()));
    }
    batch.push_str("COMMIT\n");
    restore(&batch)
}

/// The published-port rules in the kernel now.
pub fn port_rules() -> Result<Vec<PortRule>, NetError> {
    let out = Command::new("iptables")
        .args(["-w", "-t", "nat", "-S", DNAT_CHAIN])
        .output()
        .map_err(|e| NetError::Iptables(format!("running iptables: {e}")))?;
    if !out.status.success() {
        return Ok(Vec::new());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(PortRule::parse)
        .collect())
}

/// Removes, in one batch, every published-port rule for which `gone` is true; returns how
/// many there were.
pub fn remove_ports_where(gone: impl Fn(&PortRule) -> bool) -> Result<usize, NetError> {
    let doomed: Vec<PortRule> = port_rules()?.into_iter().filter(|r| gone(r)).collect();
    if doomed.is_empty() {
        return Ok(0);
    }
    let mut batch = String::from("*nat\n");
    for r in &doomed {
        batch.push_str(&format!("-D {DNAT_CHAIN} {}\n", r.spec()));
    }
    batch.push_str("COMMIT\n");
    restore(&batch)?;
    Ok(doomed.len())
}

/// Lines of `iptables -S` for a table, to count rules in tests and diagnostics.
pub fn rules(table: &str) -> Result<Vec<String>, NetError> {
    let out = Command::new("iptables")
        .args(["-w", "-t", table, "-S"])
        .output()
        .map_err(|e| NetError::Iptables(format!("running iptables: {e}")))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_rules_read_back_as_iptables_prints_them() {
        let r = PortRule {
            proto: "udp".into(),
            host: 30002,
            ip: Ipv4Addr::new(100, 100, 0, 63),
            port: 8080,
        };
        let printed = format!("-A {DNAT_CHAIN} {}", r.spec());
        assert_eq!(PortRule::parse(&printed), Some(r));
        assert_eq!(PortRule::parse("-N FLYNN-DNAT"), None);
    }
}
