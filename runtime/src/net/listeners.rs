//! Which host ports host processes use, read from `/proc/net/{tcp,tcp6,udp,udp6}` of the
//! caller's network namespace: a job must never publish one of them, since its DNAT rule
//! would take the port's traffic (and any token sent to it) away from the host service.

use std::collections::HashSet;

/// TCP state `LISTEN` in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// The local ports in a `/proc/net/{tcp,udp}` table: listening sockets for TCP, every bound
/// socket for UDP.
fn ports_in(table: &str, tcp: bool) -> impl Iterator<Item = u16> + '_ {
    table.lines().skip(1).filter_map(move |l| {
        let mut f = l.split_whitespace();
        let local = f.nth(1)?;
        let state = f.nth(1)?;
        if tcp && state != TCP_LISTEN {
            return None;
        }
        let (_, port) = local.rsplit_once(':')?;
        u16::from_str_radix(port, 16).ok().filter(|p| *p != 0)
    })
}

/// The ports of `proto` (`tcp` or `udp`) that host processes listen on or have bound.
pub fn host_ports(proto: &str) -> HashSet<u16> {
    let tcp = proto == "tcp";
    ["", "6"]
        .iter()
        .filter_map(|v| std::fs::read_to_string(format!("/proc/net/{proto}{v}")).ok())
        .flat_map(|t| ports_in(&t, tcp).collect::<Vec<_>>())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_and_bound_ports_are_found() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:9C40 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 2 1";
        assert_eq!(ports_in(tcp, true).collect::<Vec<_>>(), [5432]);
        let udp = "  sl  local_address rem_address   st
  10: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 3 2";
        assert_eq!(ports_in(udp, false).collect::<Vec<_>>(), [53]);
        let me = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = me.local_addr().unwrap().port();
        assert!(host_ports("tcp").contains(&port));
    }
}
