//! NAT and forwarding rules through iptables: published ports (DNAT, also for traffic from the
//! host itself and from jobs, i.e. hairpin), outbound masquerade, forwarding on the bridge.

use std::net::Ipv4Addr;
use std::process::Command;

use super::NetError;

/// The nat chain holding one DNAT rule per published port.
pub const DNAT_CHAIN: &str = "FLYNN-DNAT";

fn iptables(args: &[&str]) -> Result<bool, NetError> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| NetError::Iptables(format!("running iptables: {e} (install iptables)")))?;
    Ok(out.status.success())
}

/// Adds a rule unless it is there (`-C` first).
fn ensure(table: &str, chain: &str, rule: &[&str]) -> Result<(), NetError> {
    let check: Vec<&str> = [&["-t", table, "-C", chain][..], rule].concat();
    if iptables(&check)? {
        return Ok(());
    }
    let add: Vec<&str> = [&["-t", table, "-A", chain][..], rule].concat();
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

/// The rules every job on `bridge` (subnet `net/prefix`) relies on; idempotent.
pub fn ensure_base(bridge: &str, net: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
    sysctl("net.ipv4.ip_forward", "1")?;
    sysctl(&format!("net.ipv4.conf.{bridge}.route_localnet"), "1")?;
    let subnet = format!("{net}/{prefix}");
    if !iptables(&["-t", "nat", "-L", DNAT_CHAIN, "-n"])?
        && !iptables(&["-t", "nat", "-N", DNAT_CHAIN])?
    {
        return Err(NetError::Iptables(format!("creating chain {DNAT_CHAIN}")));
    }
    let local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", DNAT_CHAIN];
    ensure("nat", "PREROUTING", &local)?;
    ensure("nat", "OUTPUT", &local)?;
    ensure(
        "nat",
        "POSTROUTING",
        &["-s", &subnet, "!", "-o", bridge, "-j", "MASQUERADE"],
    )?;
    ensure(
        "nat",
        "POSTROUTING",
        &[
            "-s",
            &subnet,
            "-d",
            &subnet,
            "-m",
            "conntrack",
            "--ctstate",
            "DNAT",
            "-j",
            "MASQUERADE",
        ],
    )?;
    ensure(
        "nat",
        "POSTROUTING",
        &["-s", "127.0.0.0/8", "-o", bridge, "-j", "MASQUERADE"],
    )?;
    ensure("filter", "FORWARD", &["-i", bridge, "-j", "ACCEPT"])?;
    ensure("filter", "FORWARD", &["-o", bridge, "-j", "ACCEPT"])
}

fn port_rule(proto: &str, host: u16, ip: Ipv4Addr, port: u16) -> Vec<String> {
    vec![
        "-p".into(),
        proto.into(),
        "--dport".into(),
        host.to_string(),
        "-j".into(),
        "DNAT".into(),
        "--to-destination".into(),
        format!("{ip}:{port}"),
    ]
}

/// Publishes host port `host` to `ip:port`.
pub fn add_port(proto: &str, host: u16, ip: Ipv4Addr, port: u16) -> Result<(), NetError> {
    let rule = port_rule(proto, host, ip, port);
    let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
    ensure("nat", DNAT_CHAIN, &rule)
}

/// Removes what [`add_port`] added; missing is fine.
pub fn remove_port(proto: &str, host: u16, ip: Ipv4Addr, port: u16) -> Result<(), NetError> {
    let rule = port_rule(proto, host, ip, port);
    let args: Vec<&str> = ["-t", "nat", "-D", DNAT_CHAIN]
        .into_iter()
        .chain(rule.iter().map(String::as_str))
        .collect();
    while iptables(&args)? {}
    Ok(())
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
