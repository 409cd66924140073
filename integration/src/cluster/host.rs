//! One host of the test cluster: its namespaces (held by a `sleep`), its daemon, and how a
//! test kills, freezes or destroys it.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use host_api::client::Client as HostClient;
use host_api::Endpoint;

use super::HOST_PORT;
use crate::{run_ok, workspace_bin};

/// One host of the cluster.
#[derive(Debug)]
pub struct ClusterHost {
    /// 1-based.
    pub index: usize,
    /// Its LAN address.
    pub ip: Ipv4Addr,
    /// Its host id (as registered in discoverd).
    pub id: String,
    pub(super) dir: PathBuf,
    pub(super) holder: Option<Child>,
    pub(super) daemon: Option<Child>,
    pub(super) cgroup_parent: String,
    pub(super) registry: String,
}

impl ClusterHost {
    /// Host `index` (1-based) under `root`: its namespaces, its LAN link (`100.99.0.INDEX`)
    /// and its daemon, started with `secrets` (state file, content) in its state directory
    /// and pulling from the test `registry` over plain HTTP.
    pub(super) fn create(
        root: &Path,
        index: usize,
        registry: &str,
        secrets: &[(&str, &str)],
        rt: &tokio::runtime::Runtime,
    ) -> ClusterHost {
        let dir = root.join(format!("host{index}"));
        std::fs::create_dir_all(dir.join("state")).unwrap();
        for (file, secret) in secrets {
            let path = dir.join("state").join(file);
            std::fs::write(&path, format!("{secret}\n")).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
        let holder = Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sleep",
                "infinity",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare (util-linux)");
        let pid = holder.id();
        // unshare execs sleep only after unsharing: wait for the new namespace.
        let mine = std::fs::read_link("/proc/self/ns/net").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{pid}/ns/net")).ok() == Some(mine.clone())
            || std::fs::read_link(format!("/proc/{pid}/exe"))
                .map(|e| !e.to_string_lossy().contains("sleep"))
                .unwrap_or(true)
        {
            assert!(
                Instant::now() < deadline,
                "host {index}'s namespaces did not appear"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let ip = Ipv4Addr::new(100, 99, 0, index as u8);
        super::sh(&format!(
            "ip link add lan{index} type veth peer name eth0 netns {pid} && ip link set lan{index} master lan0 up"
        ));
        super::sh(&format!(
            "nsenter -t {pid} --net -- sh -c 'ip link set lo up && ip addr add {ip}/24 dev eth0 && ip link set eth0 up'"
        ));
        let mut h = ClusterHost {
            index,
            ip,
            id: String::new(),
            dir,
            holder: Some(holder),
            daemon: None,
            cgroup_parent: format!("flynn-test-{}-h{index}", std::process::id()),
            registry: registry.to_string(),
        };
        h.spawn(rt);
        h
    }

    /// The daemon's state directory (its image store and job state).
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub(super) fn socket(&self) -> PathBuf {
        self.dir.join("host.sock")
    }

    pub(super) fn holder_pid(&self) -> u32 {
        self.holder.as_ref().expect("the host's namespaces").id()
    }

    /// A command run inside this host's network and mount namespaces.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.holder_pid().to_string())
            .args(["--net", "--mount", "--"])
            .arg(program)
            .env("FLYNN_HOST", format!("unix://{}", self.socket().display()))
            .env_remove("FLYNN_HOST_TOKEN")
            .stdin(Stdio::null());
        c
    }

    /// Runs the `flynn-host` CLI against this host; returns its stdout (it must succeed).
    pub fn cli(&self, args: &[&str]) -> String {
        run_ok(self.command(workspace_bin("flynn-host")).args(args))
    }

    /// A client of this host's API (over the unix socket).
    pub fn client(&self) -> HostClient {
        HostClient::new(Endpoint::Unix(self.socket()), None)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Whether the daemon process runs.
    pub fn running(&self) -> bool {
        self.daemon.is_some()
    }

    /// Starts the daemon (again) in the host's namespaces and waits until it answers.
    pub fn spawn(&mut self, rt: &tokio::runtime::Runtime) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .unwrap();
        let child = self
            .command(workspace_bin("flynn-host"))
            .arg("daemon")
            .arg("--state")
            .arg(self.state())
            .arg("--listen")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--listen")
            .arg(format!("http://{}:{HOST_PORT}", self.ip))
            .args(["--discoverd", "http://127.0.0.1:1111"])
            .args(["--cgroup-parent", &self.cgroup_parent])
            .args(["--insecure-registry", &self.registry])
            .args(["--default-memory", "256M"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting flynn-host daemon in the host's namespaces");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(s) = rt.block_on(self.client().status()) {
                self.id = s.id;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "host {} did not answer:\n{}",
                self.index,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the daemon with SIGKILL; its jobs keep running.
    pub fn kill_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) the daemon: a host that hangs, then returns.
    pub fn freeze(&self, frozen: bool) {
        let Some(c) = &self.daemon else { return };
        let sig = if frozen {
            nix::sys::signal::Signal::SIGSTOP
        } else {
            nix::sys::signal::Signal::SIGCONT
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig);
    }

    /// The whole host dies: its daemon, every job, its namespaces and LAN link.
    pub fn destroy(&mut self) {
        self.kill_daemon();
        kill_cgroup_tree(&self.cgroup_parent);
        if let Some(mut h) = self.holder.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &format!("lan{}", self.index)])
            .output();
    }
}

/// Kills every process in cgroup `parent` (all hierarchies) and removes its cgroups.
fn kill_cgroup_tree(parent: &str) {
    let roots: Vec<PathBuf> = match std::fs::read_dir("/sys/fs/cgroup") {
        Ok(d) => {
            let mut v: Vec<PathBuf> = d.flatten().map(|e| e.path().join(parent)).collect();
            v.push(Path::new("/sys/fs/cgroup").join(parent));
            v
        }
        Err(_) => Vec::new(),
    };
    for _ in 0..50 {
        let mut any = false;
        for root in &roots {
            for procs in walk(root).iter().map(|d| d.join("cgroup.procs")) {
                for pid in std::fs::read_to_string(&procs).unwrap_or_default().lines() {
                    if let Ok(pid) = pid.trim().parse::<i32>() {
                        any = true;
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
        }
        if !any {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for root in &roots {
        let mut dirs = walk(root);
        dirs.reverse();
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// `dir` and every directory below it, parents first.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return out;
    }
    out.push(dir.to_path_buf());
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = std::fs::read_dir(&out[i]) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}
