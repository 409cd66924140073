//! A `flynn-host daemon` for tests: its own state directory, unix socket and TCP port, a test
//! registry holding a busybox image (pushed, not yet pulled), and cleanup of every job it
//! started, even when the test fails or the daemon was killed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use flynn_host::Endpoint;
use host_api::client::Client;

use crate::registry::Registry;
use crate::{free_port, workspace_bin};

/// A running daemon and the registry it pulls from.
#[derive(Debug)]
pub struct HostDaemon {
    dir: tempfile::TempDir,
    /// The unix socket.
    pub socket: PathBuf,
    /// The TCP address (token required).
    pub tcp: SocketAddr,
    /// The busybox image in the registry (`/bin/sh`, `httpd`, ...).
    pub image: String,
    child: Option<Child>,
    extra: Vec<String>,
    /// The cgroup this daemon's jobs go under (its own, so tests never share cgroups).
    pub cgroup_parent: String,
    _registry: Registry,
    rt: tokio::runtime::Runtime,
}

impl HostDaemon {
    /// Starts a registry with a busybox image and a daemon.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// As [`HostDaemon::start`], with extra `flynn-host daemon` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let registry = Registry::start();
        let dir = tempfile::tempdir().unwrap();
        let image = crate::image::push_busybox(&registry.addr, dir.path());
        let socket = dir.path().join("host.sock");
        let tcp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut d = Self {
            dir,
            socket,
            tcp,
            image,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            cgroup_parent: format!("flynn-test-{}", std::process::id()),
            _registry: registry,
            rt: tokio::runtime::Runtime::new().unwrap(),
        };
        d.spawn();
        d
    }

    /// The test registry's address (`127.0.0.1:PORT`).
    pub fn registry(&self) -> &str {
        &self._registry.addr
    }

    /// The daemon's state directory.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts the daemon (again) and waits until it answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        let child = Command::new(workspace_bin("flynn-host"))
            .arg("daemon")
            .arg("--state")
            .arg(self.state())
            .arg("--listen")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("--listen")
            .arg(format!("http://{}", self.tcp))
            .args(["--cgroup-parent", &self.cgroup_parent])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting flynn-host daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.block_on(self.client().status()).is_err() {
            assert!(
                Instant::now() < deadline,
                "daemon did not answer:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// A client on the unix socket.
    pub fn client(&self) -> Client {
        Client::new(Endpoint::Unix(self.socket.clone()), None)
    }

    /// The TCP API token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.state().join("token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Runs a future on this daemon's test runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A `flynn-host` CLI command talking to this daemon.
    pub fn cli(&self) -> Command {
        let mut c = Command::new(workspace_bin("flynn-host"));
        c.env("FLYNN_HOST", format!("unix://{}", self.socket.display()))
            .env_remove("FLYNN_HOST_TOKEN")
            .stdin(Stdio::null());
        c
    }

    /// Runs the CLI with `args`; returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        crate::run(self.cli().args(args))
    }

    /// Runs the CLI with `args`, which must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        crate::run_ok(self.cli().args(args))
    }

    /// Kills and removes every job left in the state directory, without the daemon.
    fn purge_jobs(&self) {
        let Ok(store) = pinkerton::store::Store::open(self.state().join("pinkerton")) else {
            return;
        };
        let Ok(rt) = runtime::Runtime::new(
            self.state().join("runtime"),
            store,
            workspace_bin("flynn-shim"),
        )
        .and_then(|rt| rt.with_cgroup_parent(&self.cgroup_parent)) else {
            return;
        };
        for id in rt.list().unwrap_or_default() {
            let _ = rt.signal(id.as_str(), nix::sys::signal::Signal::SIGKILL);
            let _ = rt.wait(id.as_str(), Duration::from_secs(10));
            // The shim writes exit.json just before it exits; purge refuses while it runs.
            let deadline = Instant::now() + Duration::from_secs(5);
            while rt.shim_running(id.as_str()).unwrap_or(false) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = rt.purge(id.as_str());
        }
    }
}

impl Drop for HostDaemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- flynn-host daemon log ---\n{}", self.log());
        }
        self.kill9();
        self.purge_jobs();
        // The daemon's tmpfs for its jobs' run files, so that the state directory can go.
        let _ = nix::mount::umount2(
            &self.state().join("runtime/run"),
            nix::mount::MntFlags::MNT_DETACH,
        );
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(h.path().join(&self.cgroup_parent));
        }
        let _ =
            std::fs::remove_dir(std::path::Path::new("/sys/fs/cgroup").join(&self.cgroup_parent));
    }
}
