//! A cluster on one machine, for layer-1 tests: N `flynn-host` daemons, each in network and
//! mount namespaces of its own (held open by a `sleep` so a daemon can be killed and started
//! again in them) with its own cgroup parent, joined by a test LAN (a bridge in the test's
//! namespace, a veth into each host; hosts are `100.99.0.N`, the test is `100.99.0.254`).
//! The test registry listens on the test's LAN address. A real etcd runs as jobs, one member
//! on each of the first three hosts; every host runs discoverd (on etcd, so all share one
//! state) and a router as jobs; the controller (on etcd) runs as a job on the first host and
//! a scheduler on each of the first two.
//!
//! Call from an `#[root_test(isolated)]` test: the LAN lives in the test's own namespaces.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use host_api::{CreateJob, NetworkMode};

mod etcd;
mod gitreceive;
mod host;
mod lan;

pub use etcd::EtcdJobs;

pub use host::ClusterHost;
pub use lan::Lan;

use crate::registry::{Auth, Registry};
use crate::{run_ok, workspace_bin};

/// The test's address on the LAN.
pub const TEST_IP: Ipv4Addr = Ipv4Addr::new(100, 99, 0, 254);
/// The port of each host's API on its LAN address.
pub const HOST_PORT: u16 = 1113;
/// The controller's port (host network, on the first host), as bootstrap runs it.
pub const CONTROLLER_PORT: u16 = flynn_host::bootstrap::CONTROLLER_PORT;
/// Each scheduler's status port (host network).
pub const SCHEDULER_PORT: u16 = flynn_host::bootstrap::SCHEDULER_PORT;
/// Each router's HTTP port (host network).
pub const ROUTER_HTTP: u16 = flynn_host::bootstrap::ROUTER_HTTP_PORT;
/// Each router's API port (host network).
pub const ROUTER_API: u16 = flynn_host::bootstrap::ROUTER_API_PORT;
/// The default route domain.
pub const DOMAIN: &str = "cluster.test";
/// gitreceive's port (host network, on the first host).
pub const GITRECEIVE_PORT: u16 = flynn_host::bootstrap::GITRECEIVE_PORT;
/// How many hosts run a scheduler.
const SCHEDULERS: usize = 2;

/// The running cluster; dropping it tears everything down.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    /// The hosts, in order.
    pub hosts: Vec<ClusterHost>,
    /// The etcd the controller and every discoverd keep their state in (jobs on the first
    /// three hosts).
    pub etcd: EtcdJobs,
    /// The registry hosts pull app images from.
    pub registry: Registry,
    /// The controller key (also the key of the schedulers' status API).
    pub key: String,
    /// The hosts' API token.
    pub host_token: String,
    /// discoverd's platform key.
    pub discoverd_key: String,
    /// A busybox image in the registry, by digest (`REGISTRY/test/busybox@sha256:...`).
    pub image: String,
    rt: tokio::runtime::Runtime,
}

impl Cluster {
    /// Boots `n` hosts and layer 1 on them; returns when every host is registered, the
    /// controller answers and a scheduler leads.
    pub fn start(n: usize) -> Self {
        assert!(
            n >= SCHEDULERS,
            "a cluster needs at least {SCHEDULERS} hosts"
        );
        let dir = tempfile::tempdir().unwrap();
        lan_bridge();
        let registry = Registry::start_on(&TEST_IP.to_string(), Auth::None);
        let tag = crate::image::push_busybox(&registry.addr, dir.path());
        let image = by_digest(&tag);
        let mut c = Self {
            hosts: Vec::new(),
            etcd: EtcdJobs::default(),
            registry,
            key: crate::random_key(),
            host_token: crate::random_key(),
            discoverd_key: crate::random_key(),
            image,
            rt: tokio::runtime::Runtime::new().unwrap(),
            dir,
        };
        for i in 1..=n {
            let h = c.add_host(i);
            c.hosts.push(h);
        }
        c.etcd = c.start_etcd(n.min(3));
        c.bootstrap();
        c
    }

    fn add_host(&self, index: usize) -> ClusterHost {
        // One token and one discoverd key for the whole cluster: the daemon uses the files
        // it finds.
        let secrets = [
            ("token", self.host_token.as_str()),
            ("discoverd.key", self.discoverd_key.as_str()),
        ];
        ClusterHost::create(
            self.dir.path(),
            index,
            &self.registry.addr,
            &secrets,
            &self.rt,
        )
    }

    fn bootstrap(&mut self) {
        let bin_dir = workspace_bin("discoverd").parent().unwrap().to_path_buf();
        let etcd = self.etcd.endpoints().join(",");
        for h in &self.hosts {
            let state = h.state().display().to_string();
            h.cli(&[
                "bootstrap",
                "--state",
                &state,
                "--bin-dir",
                &bin_dir.display().to_string(),
                "--etcd",
                &etcd,
                // Names outside the cluster are refused at once: no test query leaves the
                // machine, and none waits on a resolver the namespaces cannot reach.
                "--no-dns-upstream",
            ]);
        }
        self.wait(
            "every host registered in discoverd",
            Duration::from_secs(60),
            |c| {
                c.block_on(c.discoverd(0).instances("flynn-host"))
                    .is_ok_and(|i| i.len() == c.hosts.len())
            },
        );
        for name in ["router", "controller", "scheduler"] {
            self.import_image(name, self.hosts.len());
        }
        self.restart_controller();
        let controller = self.controller_url();
        for i in 0..self.hosts.len() {
            let env = vec![
                ("ROUTER_HTTP", format!("0.0.0.0:{ROUTER_HTTP}")),
                ("ROUTER_HTTPS", String::new()),
                ("ROUTER_API", format!("0.0.0.0:{ROUTER_API}")),
                ("CONTROLLER_KEY", self.key.clone()),
                ("ROUTER_ADVERTISE_IP", self.hosts[i].ip.to_string()),
                ("DISCOVERD_KEY", self.discoverd_key.clone()),
                ("FLYNN_JOB_ID", format!("router-{}", i + 1)),
            ];
            let args = ["--controller", &controller];
            self.run_layer1(i, "router", "flynn/router:test", &args, &env, None);
        }
        for i in 0..SCHEDULERS {
            self.start_scheduler(i);
        }
        self.wait(
            "a scheduler leads and every router registered",
            Duration::from_secs(30),
            |c| {
                c.scheduler_leader().is_some()
                    && c.block_on(c.discoverd(0).instances("router-api"))
                        .is_ok_and(|i| i.len() == c.hosts.len())
            },
        );
    }

    /// Builds image `flynn/NAME:test` from its recipe and imports it into the stores of the
    /// first `hosts` hosts.
    fn import_image(&self, name: &str, hosts: usize) {
        let bin_dir = workspace_bin("discoverd").parent().unwrap().to_path_buf();
        let out = self.dir.path().join("images").join(name);
        let tag = format!("flynn/{name}:test");
        run_ok(
            Command::new(workspace_bin("flynn-images"))
                .args(["build", name, "--bin-dir"])
                .arg(&bin_dir)
                .arg("--out")
                .arg(&out)
                .args(["--tag", &tag]),
        );
        for h in &self.hosts[..hosts] {
            images::import(&out, &h.state().join("pinkerton"), &tag).unwrap();
        }
    }

    /// Starts (again) the controller job on the first host; waits until it answers.
    pub fn restart_controller(&self) {
        let env = vec![
            ("AUTH_KEY", self.key.clone()),
            ("ETCD_ENDPOINTS", self.etcd.endpoints().join(",")),
            ("DEFAULT_ROUTE_DOMAIN", DOMAIN.to_string()),
            ("LISTEN", format!("0.0.0.0:{CONTROLLER_PORT}")),
            ("DISCOVERD", "http://127.0.0.1:1111".to_string()),
            ("HOST_TOKEN", self.host_token.clone()),
        ];
        self.run_layer1(
            0,
            "controller",
            "flynn/controller:test",
            &[],
            &env,
            Some(("controller", CONTROLLER_PORT)),
        );
        self.wait("the controller answers", Duration::from_secs(30), |c| {
            c.block_on(c.controller().apps()).is_ok()
        });
    }

    /// Starts (again) the scheduler job of host `i`.
    pub fn start_scheduler(&self, i: usize) {
        let ip = self.hosts[i].ip;
        let env = vec![
            ("CONTROLLER_URL", self.controller_url()),
            ("CONTROLLER_KEY", self.key.clone()),
            ("DISCOVERD_KEY", self.discoverd_key.clone()),
            ("HOST_TOKEN", self.host_token.clone()),
            ("LISTEN", format!("{ip}:{SCHEDULER_PORT}")),
            ("SCHEDULER_ID", format!("scheduler-{}", i + 1)),
            ("RUST_LOG", "info,scheduler=debug".to_string()),
        ];
        self.run_layer1(i, "scheduler", "flynn/scheduler:test", &[], &env, None);
    }

    fn run_layer1(
        &self,
        host: usize,
        id: &str,
        image: &str,
        args: &[&str],
        env: &[(&str, String)],
        service: Option<(&str, u16)>,
    ) {
        let h = &self.hosts[host];
        let c = h.client();
        let jid = crate::jid(id);
        let _ = self.block_on(c.delete_job(&jid, true));
        let mut req = CreateJob::new(image, args.iter().map(|a| a.to_string()).collect());
        req.id = Some(jid);
        req.config.network = NetworkMode::Host;
        req.config.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        if let Some((name, port)) = service {
            req.service = Some(name.parse().unwrap());
            req.service_port = Some(port);
        }
        self.block_on(c.create_job(&req))
            .unwrap_or_else(|e| panic!("starting {id} on host {}: {e}", h.index));
    }

    /// The controller's URL (on the first host).
    pub fn controller_url(&self) -> String {
        format!("http://{}:{CONTROLLER_PORT}", self.hosts[0].ip)
    }

    /// A controller client.
    pub fn controller(&self) -> controller_api::client::Client {
        controller_api::client::Client::new(self.controller_url().parse().unwrap(), &self.key)
    }

    /// A new app called `name` and an artifact of the cluster's busybox image.
    pub fn app_with_image(&self, name: &str) -> (controller_api::App, controller_api::Artifact) {
        let api = self.controller();
        let app = self
            .block_on(api.create_app(&controller_api::NewApp {
                name: Some(name.parse().expect("an app name")),
                ..Default::default()
            }))
            .expect("creating the app");
        let artifact = self
            .block_on(api.create_artifact(&controller_api::NewArtifact {
                kind: Default::default(),
                uri: self.image.clone(),
                meta: Default::default(),
            }))
            .expect("creating the artifact");
        (app, artifact)
    }

    /// A discoverd client of host `i`'s discoverd (through its LAN address is not served:
    /// discoverd listens on every address of the host, so the LAN address works).
    pub fn discoverd(&self, i: usize) -> discoverd_api::client::Client {
        let url = format!("http://{}:1111", self.hosts[i].ip);
        discoverd_api::client::Client::new(url.parse().unwrap())
    }

    /// The id of the scheduler that leads, if one does.
    pub fn scheduler_leader(&self) -> Option<String> {
        let d = self.discoverd(0);
        self.block_on(d.leader("flynn-scheduler"))
            .ok()
            .flatten()
            .map(|i| i.id)
    }

    /// A scheduler's `/status`, by host index.
    pub fn scheduler_status(&self, i: usize) -> Option<serde_json::Value> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", "-H"])
            .arg(format!("Authorization: Bearer {}", self.key))
            .arg(format!(
                "http://{}:{SCHEDULER_PORT}/status",
                self.hosts[i].ip
            ))
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Sends a request for `host` (a domain) to host `i`'s router; returns status and body.
    pub fn get(&self, i: usize, domain: &str, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", "-w", "\n%{http_code}", "-H"])
            .arg(format!("Host: {domain}"))
            .arg(format!("http://{}:{ROUTER_HTTP}{path}", self.hosts[i].ip))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Every job the scheduler runs for app `app_id`, across the hosts that answer within
    /// a few seconds:
    /// (host index, job) for jobs that run or start.
    pub fn app_jobs(&self, app_id: &str) -> Vec<(usize, host_api::Job)> {
        let mut out = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            if !h.running() {
                continue;
            }
            let filter = host_api::JobFilter {
                metadata: vec![("flynn-app-id".into(), app_id.into())],
                ..Default::default()
            };
            // A frozen daemon accepts and never answers: ask with a deadline.
            let client = h.client();
            let ask =
                async { tokio::time::timeout(Duration::from_secs(3), client.jobs(&filter)).await };
            let Ok(Ok(jobs)) = self.block_on(ask) else {
                continue;
            };
            out.extend(
                jobs.into_iter()
                    .filter(|j| !j.state.is_final())
                    .map(|j| (i, j)),
            );
        }
        out
    }

    /// Waits up to `limit` for `f`, panicking with `what` and the logs that explain it.
    pub fn wait(&self, what: &str, limit: Duration, mut f: impl FnMut(&Self) -> bool) {
        // On a timeout the logs follow: the cluster prints them as it is dropped.
        crate::wait_for(what, limit, || f(self))
    }

    /// The daemons' and layer-1 jobs' logs, for failure messages.
    pub fn logs(&self) -> String {
        logs(&self.hosts)
    }

    /// Runs a future on the cluster's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The address of host `i`'s router.
    pub fn router_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.hosts[i].ip.into(), ROUTER_HTTP)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for h in &mut self.hosts {
            h.destroy();
        }
        let _ = Command::new("ip").args(["link", "del", "lan0"]).output();
    }
}

/// The daemons' and layer-1 jobs' logs of `hosts`, for failure messages.
fn logs(hosts: &[ClusterHost]) -> String {
    let mut s = String::new();
    for h in hosts {
        if !h.running() {
            continue;
        }
        let tail = |t: &str| {
            t.lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        };
        s += &format!(
            "--- host {} ({}) daemon ---\n{}\n",
            h.index,
            h.id,
            tail(&h.log())
        );
        // What the host runs and what its router routes to: most failures are a
        // difference between the two.
        let ps = h
            .command("timeout")
            .arg("5")
            .arg(workspace_bin("flynn-host"))
            .arg("ps")
            .output();
        if let Ok(o) = ps {
            s += &format!(
                "--- host {} jobs ---\n{}\n",
                h.index,
                String::from_utf8_lossy(&o.stdout)
            );
        }
        // The published-port rules: a port whose rule points at a job that is gone shows
        // here before the live one.
        if let Ok(o) = h
            .command("iptables")
            .args(["-w", "-t", "nat", "-S", "FLYNN-DNAT"])
            .output()
        {
            s += &format!(
                "--- host {} port rules ---\n{}\n",
                h.index,
                String::from_utf8_lossy(&o.stdout)
            );
        }
        let backends = h
            .command("curl")
            .args(["-sS", "-m", "5"])
            .arg(format!("http://{}:{ROUTER_API}/backends", h.ip))
            .output();
        if let Ok(o) = backends {
            s += &format!(
                "--- host {} router backends ---\n{}\n",
                h.index,
                String::from_utf8_lossy(&o.stdout)
            );
        }
        for job in ["controller", "scheduler", "router", "etcd"] {
            // A frozen daemon never answers: give up after a few seconds.
            let out = h
                .command("timeout")
                .arg("5")
                .arg(workspace_bin("flynn-host"))
                .args(["logs", job])
                .output();
            if let Ok(o) = out {
                if o.status.success() {
                    s += &format!(
                        "--- host {} {job} ---\n{}\n",
                        h.index,
                        tail(&format!(
                            "{}{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        ))
                    );
                }
            }
        }
    }
    s
}

/// The test LAN: a bridge in the test's namespace with the test's address.
fn lan_bridge() {
    // The bridge's MAC is set, not inherited: a bridge without one takes the lowest MAC
    // of its ports, so destroying a host could change it and leave the other hosts' ARP
    // entries for the test's address (etcd, the registry) stale for tens of seconds.
    sh(&format!(
        "ip link add lan0 address 02:00:64:63:00:fe type bridge && ip addr add {TEST_IP}/24 dev lan0 && ip link set lan0 up"
    ));
}

fn sh(script: &str) {
    run_ok(Command::new("sh").args(["-c", script]));
}

/// `REGISTRY/NAME:TAG` as `REGISTRY/NAME@sha256:...`, the digest as the registry has it.
fn by_digest(tag: &str) -> String {
    let out = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{tag}")),
    );
    let name = tag.rsplit_once(':').map(|(n, _)| n).unwrap_or(tag);
    format!("{name}@{}", out.trim())
}
