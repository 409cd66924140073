//! A real etcd cluster for tests (Debian's `etcd-server`): N members on free loopback ports,
//! data in a temp dir, killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// A running etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    _dir: tempfile::TempDir,
    members: Vec<Option<Child>>,
    clients: Vec<String>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until the cluster has a leader.
    pub fn start(n: usize) -> Self {
        Self::start_on(n, "127.0.0.1")
    }

    /// As [`EtcdCluster::start`], listening on `ip` (an address of this namespace).
    pub fn start_on(n: usize, ip: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("m{i}=http://{ip}:{p}"))
            .collect();
        let mut members = Vec::new();
        let mut clients = Vec::new();
        for (i, (c, p)) in ports.iter().enumerate() {
            let client = format!("http://{ip}:{c}");
            let peer = format!("http://{ip}:{p}");
            let child = Command::new("etcd")
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(dir.path().join(format!("m{i}")))
                .args([
                    "--listen-client-urls",
                    &client,
                    "--advertise-client-urls",
                    &client,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                ])
                .args(["--initial-cluster", &initial.join(",")])
                .args([
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    "flynn-test",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting etcd (Debian package etcd-server)");
            members.push(Some(child));
            clients.push(client);
        }
        let cluster = Self {
            _dir: dir,
            members,
            clients,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster.leader().is_none() {
            assert!(
                Instant::now() < deadline,
                "the etcd cluster elected no leader"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// Client URLs of every member.
    pub fn endpoints(&self) -> &[String] {
        &self.clients
    }

    /// The index of the member that leads, if any.
    pub fn leader(&self) -> Option<usize> {
        let live: Vec<String> = self
            .clients
            .iter()
            .enumerate()
            .filter(|(i, _)| self.members[*i].is_some())
            .map(|(_, c)| c.clone())
            .collect();
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &live.join(","),
                "endpoint",
                "status",
                "-w",
                "json",
            ])
            .args(["--command-timeout=2s"])
            .output()
            .ok()?;
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let leader = status.as_array()?.iter().find_map(|s| {
            let st = &s["Status"];
            (st["header"]["member_id"] == st["leader"])
                .then(|| s["Endpoint"].as_str().map(str::to_string))?
        })?;
        self.clients.iter().position(|c| *c == leader)
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
