//! A real Docker registry (Debian's `docker-registry`) on a free loopback port.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::{free_port, run_ok};

/// How the registry authenticates clients.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Anonymous access.
    None,
    /// HTTP basic auth against an htpasswd file with one user.
    Htpasswd {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// Bearer tokens from a token server, verified with `cert_pem`.
    Token {
        /// Token endpoint URL.
        realm: String,
        /// Service name the tokens are issued for.
        service: String,
        /// Issuer name in the tokens.
        issuer: String,
        /// PEM certificate the tokens are signed with.
        cert_pem: PathBuf,
    },
}

/// A running registry; stopped and deleted on drop.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    /// `IP:PORT` (`127.0.0.1:PORT` unless started elsewhere).
    pub addr: String,
}

impl Registry {
    /// Starts an anonymous registry.
    pub fn start() -> Self {
        Self::start_with(Auth::None)
    }

    /// Starts a registry with the given authentication.
    pub fn start_with(auth: Auth) -> Self {
        Self::start_on("127.0.0.1", auth)
    }

    /// Starts a registry listening on `ip` (an address of this namespace) and a free port.
    pub fn start_on(ip: &str, auth: Auth) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let addr = format!("{ip}:{port}");
        let auth_yaml = match &auth {
            Auth::None => String::new(),
            Auth::Htpasswd { user, password } => {
                let line = run_ok(Command::new("htpasswd").args(["-Bbn", user, password]));
                let path = dir.path().join("htpasswd");
                fs::write(&path, line.trim()).unwrap();
                format!("auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n", path.display())
            }
            Auth::Token { realm, service, issuer, cert_pem } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                cert_pem.display()
            ),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth_yaml}",
            dir.path().join("data").display()
        );
        let cfg_path = dir.path().join("config.yml");
        fs::write(&cfg_path, config).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry is installed (Debian package docker-registry)");
        let reg = Self { child, dir, addr };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("registry on {} did not start:\n{}", self.addr, self.log());
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many blob downloads (`GET /v2/.../blobs/...`) the registry served to pinkerton,
    /// counted from its access log.
    pub fn blob_gets(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| {
                l.contains("\"GET /v2/") && l.contains("/blobs/") && l.contains("pinkerton/")
            })
            .count()
    }

    /// Where the registry stores a blob's bytes (to corrupt it on purpose).
    pub fn blob_data_path(&self, digest_hex: &str) -> PathBuf {
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&digest_hex[..2])
            .join(digest_hex)
            .join("data")
    }

    /// The registry's storage root.
    pub fn storage(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
