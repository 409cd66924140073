//! The test cluster's etcd: one member on each of the first hosts (at most three), each a
//! host-network job of the `images/` etcd recipe (Debian's etcd-server) with its data on a
//! volume, listening on its host's LAN address.

use std::process::Command;
use std::time::Duration;

use host_api::{CreateJob, NetworkMode, VolumeMount};

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
            let client = format!("http://{}:{CLIENT_PORT}", h.ip);
            let peer = format!("http://{}:{PEER_PORT}", h.ip);
            let args = [
                "--name",
                &format!("m{}", h.index),
                "--data-dir",
                "/data/etcd",
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &initial.join(","),
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "flynn-test",
                // Elections for a busy machine: the defaults (100 ms, 1 s) call one when a
                // member's fsync or CPU share stalls for a second under a loaded test run.
                "--heartbeat-interval",
                "250",
                "--election-timeout",
                "2500",
            ];
            let mut req = CreateJob::new(
                "flynn/etcd:test",
                args.iter().map(|a| a.to_string()).collect(),
            );
            req.id = Some(crate::jid("etcd"));
            req.config.network = NetworkMode::Host;
            req.config.volumes = vec![VolumeMount {
                name: "etcd-data".into(),
                target: "/data".into(),
                readonly: false,
            }];
            let c = h.client();
            self.block_on(c.create_volume("etcd-data"))
                .unwrap_or_else(|e| panic!("etcd's volume on host {}: {e}", h.index));
            self.block_on(c.create_job(&req))
                .unwrap_or_else(|e| panic!("starting etcd on host {}: {e}", h.index));
            endpoints.push(client);
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
