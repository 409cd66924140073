//! The test cluster's etcd: one member on each of the first hosts (at most three), each a
//! host-network job of the `images/` etcd recipe (Debian's etcd-server) with its data on a
//! volume, listening on its host's LAN address.

use std::process::Command;
use std::time::Duration;

use super::Cluster;

/// etcd's client port on each member's host.
pub const CLIENT_PORT: u16 = 2379;
/// etcd's peer port on each member's host.
pub const PEER_PORT: u16 = 2380;

/// The cluster's etcd members.
#[derive(Debug, Default)]
pub struct EtcdJobs {
    endpoints: Vec<String>,
}

impl EtcdJobs {
    /// Client URLs of every member.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }
}

impl Cluster {
    /// Starts an etcd member as a job on each of the first `members` hosts; returns once
    /// every member answers healthy.
    pub(super) fn start_etcd(&self, members: usize) -> EtcdJobs {
        self.import_image("etcd", members);
        let hosts = &self.hosts[..members];
        let initial: Vec<String> = hosts
            .iter()
            .map(|h| format!("m{}=http://{}:{PEER_PORT}", h.index, h.ip))
            .collect();
        let mut endpoints = Vec::new();
        for h in hosts {
            let mut req = flynn_host::bootstrap::etcd_member_job(
                &format!("m{}", h.index),
                h.ip.into(),
                &initial.join(","),
                "new",
            );
            req.config.image = "flynn/etcd:test".into();
            req.id = Some(crate::jid("etcd"));
            let c = h.client();
            self.block_on(c.create_volume("etcd-data"))
                .unwrap_or_else(|e| panic!("etcd's volume on host {}: {e}", h.index));
            self.block_on(c.create_job(&req))
                .unwrap_or_else(|e| panic!("starting etcd on host {}: {e}", h.index));
            endpoints.push(format!("http://{}:{CLIENT_PORT}", h.ip));
        }
        self.wait("every etcd member healthy", Duration::from_secs(60), |_| {
            Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &endpoints.join(","), "endpoint", "health"])
                .args(["--command-timeout=2s"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        EtcdJobs { endpoints }
    }
}
