//! A `flynn-controller` process for tests: its API on a free loopback port, state in a temp
//! dir (or on an etcd cluster), its log kept for failure messages, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use controller_api::client::Client;

use crate::{free_port, random_key, workspace_bin};

/// A running controller.
#[derive(Debug)]
pub struct ControllerProcess {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The key its API accepts.
    pub key: String,
    port: u16,
    data: tempfile::TempDir,
    etcd: Vec<String>,
    prefix: String,
    domain: Option<String>,
    discoverd: Option<String>,
    child: Option<Child>,
}

impl ControllerProcess {
    /// Starts one with an embedded store in a fresh directory and default routes under
    /// `domain`.
    pub fn start(domain: Option<&str>) -> Self {
        Self::start_with(domain, &[], "/flynn-test/controller")
    }

    /// Starts one on the etcd cluster at `etcd` under `prefix` (embedded when empty).
    pub fn start_with(domain: Option<&str>, etcd: &[String], prefix: &str) -> Self {
        Self::launch(domain, etcd, prefix, None)
    }

    /// Starts one (embedded store) that finds hosts through the discoverd at `discoverd`.
    pub fn start_with_discoverd(domain: Option<&str>, discoverd: &str) -> Self {
        Self::launch(domain, &[], "/flynn-test/controller", Some(discoverd))
    }

    fn launch(
        domain: Option<&str>,
        etcd: &[String],
        prefix: &str,
        discoverd: Option<&str>,
    ) -> Self {
        let port = free_port();
        let mut c = Self {
            url: format!("http://127.0.0.1:{port}"),
            key: random_key(),
            port,
            data: tempfile::tempdir().unwrap(),
            etcd: etcd.to_vec(),
            prefix: prefix.to_string(),
            domain: domain.map(str::to_string),
            discoverd: discoverd.map(str::to_string),
            child: None,
        };
        c.spawn();
        c
    }

    /// A second controller sharing this one's store (etcd) and key, on a port of its own.
    pub fn sibling(&self) -> Self {
        assert!(
            !self.etcd.is_empty(),
            "only etcd-backed controllers share state"
        );
        let port = free_port();
        let mut c = Self {
            url: format!("http://127.0.0.1:{port}"),
            key: self.key.clone(),
            port,
            data: tempfile::tempdir().unwrap(),
            etcd: self.etcd.clone(),
            prefix: self.prefix.clone(),
            domain: self.domain.clone(),
            discoverd: self.discoverd.clone(),
            child: None,
        };
        c.spawn();
        c
    }

    fn log_path(&self) -> PathBuf {
        self.data.path().join("controller.log")
    }

    /// Starts (again, after [`ControllerProcess::kill9`]) on the same port and state.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new(workspace_bin("flynn-controller"));
        if !self.etcd.is_empty() {
            cmd.args(["--etcd", &self.etcd.join(",")])
                .args(["--etcd-prefix", &self.prefix]);
        }
        if let Some(d) = &self.domain {
            cmd.args(["--domain", d]);
        }
        if let Some(d) = &self.discoverd {
            cmd.args(["--discoverd", d]);
        }
        let child = cmd
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data")
            .arg(self.data.path().join("state"))
            .env("AUTH_KEY", &self.key)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting flynn-controller");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("flynn-controller exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "flynn-controller did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client holding the key.
    pub fn client(&self) -> Client {
        Client::new(self.url.parse().expect("an http URL"), &self.key)
    }

    /// A client holding `key`.
    pub fn client_with(&self, key: &str) -> Client {
        Client::new(self.url.parse().expect("an http URL"), key)
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills it with SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
