//! A `flynn-router` process for tests, with routes from a file in a temp dir and backends
//! from a test discoverd, and `test-backend` processes to route to.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use discoverd_api::client::Heartbeat;
use router_api::{Route, RouteFile};

use crate::discoverd::{reg, Discoverd};
use crate::{free_port, workspace_bin};

fn wait_listening(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `test-backend` process (see its source for what it answers).
#[derive(Debug)]
pub struct Backend {
    /// Its name, the body of `GET /`.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl Backend {
    /// Starts one on a free loopback port.
    pub fn start(name: &str) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(workspace_bin("test-backend"))
            .args([&addr.to_string(), name])
            .stdin(Stdio::null())
            .spawn()
            .expect("starting test-backend");
        wait_listening(addr, name);
        Self {
            name: name.to_string(),
            addr,
            child: Some(child),
        }
    }

    /// Kills it (SIGKILL): its port then refuses connections.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `GET path` on it directly (not through the router).
    pub fn get(&self, path: &str) -> String {
        curl(&[&format!("http://{}{path}", self.addr)])
    }
}

impl Backend {
    /// Waits until a request for `path` has reached this backend.
    pub fn wait_seen(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.get("/seen").contains(path) {
            assert!(
                Instant::now() < deadline,
                "no request for {path} reached {}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running router.
#[derive(Debug)]
pub struct RouterProcess {
    /// The HTTP listener.
    pub http: SocketAddr,
    /// The HTTPS listener.
    pub https: SocketAddr,
    /// The API.
    pub api: SocketAddr,
    /// The one port of the TCP route range.
    pub tcp_port: u16,
    routes_file: PathBuf,
    log: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    rt: tokio::runtime::Runtime,
}

impl RouterProcess {
    /// Starts a router on free loopback ports, backends from `discoverd`, no routes yet,
    /// with extra `flynn-router` arguments.
    pub fn start(discoverd: &Discoverd, extra: &[&str]) -> Self {
        Self::spawn(discoverd, None, extra)
    }

    /// Starts a router like [`RouterProcess::start`] whose routes come from the controller at
    /// `url` (with `key`) instead of a routes file.
    pub fn start_following(discoverd: &Discoverd, url: &str, key: &str) -> Self {
        Self::spawn(discoverd, Some((url, key)), &[])
    }

    fn spawn(discoverd: &Discoverd, controller: Option<(&str, &str)>, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let routes_file = dir.path().join("routes.json");
        std::fs::write(&routes_file, r#"{"routes": []}"#).unwrap();
        let source: Vec<String> = match controller {
            Some((url, _)) => vec!["--controller".into(), url.into()],
            None => vec!["--routes-file".into(), routes_file.display().to_string()],
        };
        let port = || {
            format!("127.0.0.1:{}", free_port())
                .parse::<SocketAddr>()
                .unwrap()
        };
        let (http, https, api) = (port(), port(), port());
        let tcp_port = free_port();
        let log = dir.path().join("router.log");
        let child = Command::new(workspace_bin("flynn-router"))
            .args(["--http", &http.to_string(), "--https", &https.to_string()])
            .args(["--api", &api.to_string(), "--tcp-ip", "127.0.0.1"])
            .args(["--tcp-range", &format!("{tcp_port}-{tcp_port}")])
            .args(&source)
            .env("CONTROLLER_KEY", controller.map_or("", |c| c.1))
            .args(["--routes-poll", "20ms", "--discoverd", &discoverd.url])
            .args(["--access-log", "false"])
            .args(extra)
            .env("COOKIE_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting flynn-router");
        let mut r = Self {
            http,
            https,
            api,
            tcp_port,
            routes_file,
            log,
            dir,
            child: Some(child),
            rt: tokio::runtime::Runtime::new().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(api).is_err() {
            let mut child = r.child.take().expect("started");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("flynn-router exited ({status}):\n{}", r.log());
            }
            r.child = Some(child);
            assert!(
                Instant::now() < deadline,
                "the router API did not listen:\n{}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{api}/health"),
        ])
        .starts_with("200")
        {
            assert!(
                Instant::now() < deadline,
                "the router never loaded discoverd's state:\n{}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    /// The router's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client of its API.
    pub fn api(&self) -> router_api::client::Client {
        router_api::client::Client::new(router_api::Endpoint::Tcp(self.api))
    }

    /// Runs a future on this router's test runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Writes the routes file (atomically) without waiting for the router.
    pub fn write_routes(&self, routes: &[Route]) {
        let tmp = self.dir.path().join("routes.json.tmp");
        let file = RouteFile {
            routes: routes.to_vec(),
        };
        std::fs::write(&tmp, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
        std::fs::rename(&tmp, &self.routes_file).unwrap();
    }

    /// Writes the routes file and waits until the router serves exactly these routes.
    pub fn set_routes(&self, routes: &[Route]) {
        self.write_routes(routes);
        let mut want: Vec<Route> = routes.iter().map(Route::redacted).collect();
        want.sort_by(|a, b| a.id().cmp(b.id()));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.block_on(self.api().routes()).unwrap();
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the router did not apply the routes:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process's peak resident set size, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// Registers `b` as an instance of `service` in `d` (kept alive until the heartbeat drops).
    pub fn register(&self, d: &Discoverd, service: &str, b: &Backend) -> Heartbeat {
        let c = d.client();
        let addr = b.addr.to_string();
        self.block_on(async {
            c.register_alive(service, &b.name, reg(&addr), Duration::from_secs(10))
                .await
                .unwrap()
        })
    }

    /// The common setup: a backend `web-a` registered as `web`, the only route
    /// `example.test` to `web`, and the router seeing that backend. Keep the heartbeat.
    pub fn serve_example_web(&self, d: &Discoverd) -> (Backend, Heartbeat) {
        let a = Backend::start("web-a");
        let heartbeat = self.register(d, "web", &a);
        self.set_routes(&[Route::Http(router_api::HttpRoute::new(
            "web",
            "example.test",
            "web",
        ))]);
        self.wait_backends("web", 1);
        (a, heartbeat)
    }

    /// Waits until the router has exactly `n` live backends for `service`.
    pub fn wait_backends(&self, service: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.block_on(self.api().backends()).unwrap();
            if got.iter().filter(|b| b.service == service).count() == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{service}: want {n} backends, have {got:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `GET path` with `Host: host` through the HTTP listener: (status code, body).
    pub fn get(&self, host: &str, path: &str) -> (String, String) {
        let out = curl_output(&[
            "-H",
            &format!("Host: {host}"),
            "-w",
            "\n%{http_code}",
            &format!("{}{path}", self.url()),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.to_string(), body.to_string())
    }

    /// `http://127.0.0.1:PORT` of the HTTP listener.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs curl (silent, errors shown) and returns its standard output; panics if it fails.
pub fn curl(args: &[&str]) -> String {
    let out = curl_output(args);
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs curl (silent) and returns what it did.
pub fn curl_output(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl runs")
}
