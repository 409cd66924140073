//! A `discoverd` process for tests: HTTP and DNS on free loopback ports, state in a temp dir,
//! killed on drop.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, random_key, workspace_bin};

/// A TCP registration at `addr`, without metadata.
pub fn reg(addr: &str) -> discoverd::Registration {
    discoverd::Registration {
        addr: addr.parse().expect("an IP:PORT"),
        proto: discoverd_api::Proto::Tcp,
        meta: Default::default(),
    }
}

/// A running discoverd.
#[derive(Debug)]
pub struct Discoverd {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The DNS port on 127.0.0.1 (UDP).
    pub dns_port: u16,
    /// The platform key its writes need.
    pub key: String,
    data: tempfile::TempDir,
    child: Option<Child>,
    http_port: u16,
    etcd: Vec<String>,
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Discoverd {
    /// Starts one with a fresh state directory.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts one on the etcd cluster at `endpoints` (the embedded store when empty).
    pub fn start_with(etcd: &[String]) -> Self {
        let http_port = free_port();
        let mut d = Self {
            url: format!("http://127.0.0.1:{http_port}"),
            dns_port: free_udp_port(),
            key: random_key(),
            data: tempfile::tempdir().unwrap(),
            child: None,
            http_port,
            etcd: etcd.to_vec(),
        };
        d.spawn();
        d
    }

    /// Starts (again, after [`Discoverd::kill9`]) on the same ports and state.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(workspace_bin("discoverd"));
        if !self.etcd.is_empty() {
            cmd.args(["--etcd", &self.etcd.join(",")]);
        }
        let child = cmd
            .args(["--http", &format!("127.0.0.1:{}", self.http_port)])
            .args(["--dns", &format!("127.0.0.1:{}", self.dns_port)])
            .args(["--dns-upstream", "127.0.0.1:9"])
            .arg("--data")
            .arg(self.data.path())
            .env("DISCOVERD_KEY", &self.key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting discoverd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.http_port)).is_err() {
            assert!(Instant::now() < deadline, "discoverd did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client holding the platform key.
    pub fn client(&self) -> discoverd::Client {
        let endpoint = self.url.parse().expect("an http://IP:PORT URL");
        discoverd::Client::new(endpoint).with_key(&self.key)
    }

    /// Kills it with SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `dig` against its DNS: the `+short` answer lines and the response status.
    pub fn dig(&self, name: &str, rtype: &str) -> (Vec<String>, String) {
        let out = crate::run_ok(Command::new("dig").args([
            "@127.0.0.1",
            "-p",
            &self.dns_port.to_string(),
            "+tries=1",
            "+time=2",
            name,
            rtype,
        ]));
        let status = out
            .lines()
            .find_map(|l| l.split("status: ").nth(1))
            .map(|s| s.split(',').next().unwrap_or("").to_string())
            .unwrap_or_default();
        let mut answers = Vec::new();
        let mut in_answer = false;
        for l in out.lines() {
            if l.starts_with(";; ANSWER SECTION") {
                in_answer = true;
            } else if in_answer && (l.is_empty() || l.starts_with(";;")) {
                in_answer = false;
            } else if in_answer {
                answers.push(l.split_whitespace().skip(4).collect::<Vec<_>>().join(" "));
            }
        }
        answers.sort();
        (answers, status)
    }
}

impl Drop for Discoverd {
    fn drop(&mut self) {
        self.kill9();
    }
}
