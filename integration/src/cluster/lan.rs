//! A bare test LAN for tests that make a cluster with the platform's own commands
//! (`flynn-host bootstrap --etcd`, `flynn-host join`): hosts as [`super::Cluster`] has them
//! (namespaces, LAN link, daemon) but each with secrets of its own and nothing running, an
//! etcd and the test registry (with busybox) on the test's LAN address.

use std::process::Command;
use std::time::{Duration, Instant};

use super::{by_digest, lan_bridge, logs, ClusterHost, TEST_IP};
use crate::etcd::EtcdCluster;
use crate::registry::{Auth, Registry};

/// The LAN; dropping it tears everything down.
#[derive(Debug)]
pub struct Lan {
    dir: tempfile::TempDir,
    /// The hosts, in order (host `i` is `100.99.0.{i+1}`).
    pub hosts: Vec<ClusterHost>,
    /// A one-member etcd on the test's LAN address.
    pub etcd: EtcdCluster,
    /// The test registry (hosts pull from it over plain HTTP).
    pub registry: Registry,
    /// A busybox image in the registry, by digest.
    pub image: String,
    rt: tokio::runtime::Runtime,
}

impl Lan {
    /// Starts the LAN, etcd, the registry and `n` hosts' daemons.
    pub fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        lan_bridge();
        let registry = Registry::start_on(&TEST_IP.to_string(), Auth::None);
        let image = by_digest(&crate::image::push_busybox(&registry.addr, dir.path()));
        let etcd = EtcdCluster::start_on(1, &TEST_IP.to_string());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let hosts = (1..=n)
            .map(|i| ClusterHost::create(dir.path(), i, &registry.addr, &[], &rt))
            .collect();
        Self {
            dir,
            hosts,
            etcd,
            registry,
            image,
            rt,
        }
    }

    /// Runs a future on the LAN's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Runs `flynn-host ARGS` on host `i`; returns its exit status, stdout and stderr.
    pub fn flynn_host(&self, i: usize, args: &[&str]) -> (bool, String, String) {
        let out = self.hosts[i]
            .command(crate::workspace_bin("flynn-host"))
            .args(args)
            .output()
            .expect("flynn-host");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Where the workspace binaries are (`--bin-dir` of bootstrap and join).
    pub fn bin_dir(&self) -> String {
        crate::workspace_bin("flynn-host")
            .parent()
            .expect("a directory")
            .display()
            .to_string()
    }

    /// Runs `flynn-host bootstrap --domain DOMAIN EXTRA...` on host `i` (its own state and
    /// bin dir, the stack images' cache, no DNS upstream, each step waited for at most
    /// 300 s); returns as [`Lan::flynn_host`].
    pub fn bootstrap(&self, i: usize, domain: &str, extra: &[&str]) -> (bool, String, String) {
        let state = self.hosts[i].state().display().to_string();
        let bin_dir = self.bin_dir();
        let mut args = vec![
            "bootstrap",
            "--state",
            &state,
            "--bin-dir",
            &bin_dir,
            "--domain",
            domain,
            "--image-cache",
            crate::image::STACK_CACHE,
            "--no-dns-upstream",
            "--wait",
            "300s",
        ];
        args.extend_from_slice(extra);
        self.flynn_host(i, &args)
    }

    /// Runs `flynn-host join URL TOKEN` on host `i` (its own state and bin dir, no DNS
    /// upstream, each step waited for at most 120 s); returns as [`Lan::flynn_host`].
    pub fn join(&self, i: usize, url: &str, token: &str) -> (bool, String, String) {
        let state = self.hosts[i].state().display().to_string();
        let bin_dir = self.bin_dir();
        self.flynn_host(
            i,
            &[
                "join",
                url,
                token,
                "--state",
                &state,
                "--bin-dir",
                &bin_dir,
                "--no-dns-upstream",
                "--wait",
                "120s",
            ],
        )
    }

    /// Waits up to `limit` for `f`, panicking with `what` (the logs follow on drop).
    pub fn wait(&self, what: &str, limit: Duration, mut f: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A scratch directory that lives as long as the LAN.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", logs(&self.hosts));
        }
        for h in &mut self.hosts {
            h.destroy();
        }
        let _ = Command::new("ip").args(["link", "del", "lan0"]).output();
    }
}
