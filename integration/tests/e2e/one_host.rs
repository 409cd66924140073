//! A one-host cluster made by `flynn-host bootstrap --domain`: a run killed half way is
//! completed by the next, a third run changes nothing; then the walkthrough through the
//! printed `flynn cluster add` line, the real `flynn` binary and the Debian git client, with
//! the cluster's names in /etc/hosts (this test's own mount namespace) as an operator would
//! have them in DNS: create an app, git push, scale web=3, add a route, three jobs answer;
//! then a new release of the router app rolls the router with no failed request.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::host::HostDaemon;
use integration::image::STACK_CACHE;
use integration::root_test;

use crate::cli::{User, APP};

const DOMAIN: &str = "one.test";

/// `curl -H 'Host: HOST' http://127.0.0.1/`: status and body.
fn get(host: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Host: {host}"))
        .arg("http://127.0.0.1/")
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Makes `controller.DOMAIN`, `git.DOMAIN` and the app's names resolve to this host, in this
/// test's mount namespace only.
fn hosts_file(root: &Path) {
    let hosts = root.join("hosts");
    let names = ["controller", "git", "hello"]
        .map(|n| format!("{n}.{DOMAIN}"))
        .join(" ");
    std::fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n127.0.0.1 {names} www.hello.test\n"),
    )
    .unwrap();
    integration::run_ok(
        Command::new("mount")
            .arg("--bind")
            .arg(&hosts)
            .arg("/etc/hosts"),
    );
}

#[root_test(isolated)]
fn bootstrap_brings_up_layer1_and_the_walkthrough_deploys() {
    let h = HostDaemon::start_with(&["--discoverd", "http://127.0.0.1:1111"]);
    let root = tempfile::tempdir().unwrap();
    let bin_dir = integration::workspace_bin("flynn-host")
        .parent()
        .unwrap()
        .display()
        .to_string();
    let state = h.state().display().to_string();
    let args = [
        "bootstrap",
        "--state",
        &state,
        "--bin-dir",
        &bin_dir,
        "--domain",
        DOMAIN,
        "--image-cache",
        STACK_CACHE,
        "--no-dns-upstream",
        "--wait",
        "300s",
    ];

    // A run killed (SIGKILL) once the router started.
    let mut child = h
        .cli()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        seen += &line;
        seen.push('\n');
        if line == "router: started" {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen.contains("registry: started"), "{seen}");

    // An image of an older build in the store (another recipe's files under the
    // scheduler's name, as after an upgrade of the binaries) is rebuilt, not run.
    let stale = root.path().join("stale");
    integration::run_ok(
        Command::new(integration::workspace_bin("flynn-images"))
            .args(["build", "host-cli", "--bin-dir", &bin_dir, "--tag"])
            .arg("flynn/scheduler:latest")
            .arg("--out")
            .arg(&stale)
            .arg("--store")
            .arg(h.state().join("pinkerton")),
    );

    // An image of the build stack on another Debian base than the cached one (as after
    // `flynn-images fetch` made the base again from a newer Debian release): rebuilt too.
    // The other base is the run stack's, put where a cache looks for the build stack's.
    let recipe = |name: &str| {
        images::Recipe::load(&images::recipes_dir().join(format!("{name}.toml")))
            .unwrap()
            .debian
            .unwrap()
    };
    let mirror = images::debian::DEFAULT_MIRROR;
    let other_cache = root.path().join("other-cache");
    std::fs::create_dir_all(&other_cache).unwrap();
    std::os::unix::fs::symlink(
        recipe("stack-run").path(mirror, Path::new(STACK_CACHE)),
        recipe("stack-build").path(mirror, &other_cache),
    )
    .unwrap();
    integration::run_ok(
        Command::new(integration::workspace_bin("flynn-images"))
            .args(["build", "stack-build", "--bin-dir", &bin_dir, "--tag"])
            .arg("flynn/stack-build:latest")
            .arg("--out")
            .arg(root.path().join("other-base"))
            .arg("--cache")
            .arg(&other_cache)
            .arg("--store")
            .arg(h.state().join("pinkerton")),
    );

    // The next run completes it.
    let out = h.run(&args);
    let progress = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{progress}");
    for step in [
        "scheduler: image docker.io/flynn/scheduler:latest in the store is out of date (its files changed): rebuilding it",
        "stack-build: image docker.io/flynn/stack-build:latest in the store is out of date (its Debian base was made again): rebuilding it",
        "discoverd: already runs",
        "registry: already runs",
        "controller: started",
        "app router: created (system app)",
        "route controller.one.test: created (controller)",
        "scheduler: started",
        "gitreceive: started",
        "ok: the router serves git.one.test",
        "router: scaled to app=1 (one per host)",
        "router: bootstrap's router stopped; the scheduler runs the router now",
        "layer 1 is up on this host.",
    ] {
        assert!(progress.contains(step), "{step:?} in:\n{progress}");
    }
    let add = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(add.starts_with("flynn cluster add -p "), "{add}");
    assert!(
        add.contains(" --image-url http://100.100.0.1:5001 default one.test "),
        "{add}"
    );

    // Once more: nothing changes, the same line.
    let again = h.run(&args);
    let progress = String::from_utf8_lossy(&again.stderr).into_owned();
    assert!(again.status.success(), "{progress}");
    assert!(
        progress.contains("layer 1 already runs on this host: nothing changed."),
        "{progress}"
    );
    assert!(!progress.contains("started"), "{progress}");
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), add);

    // The walkthrough.
    hosts_file(root.path());
    let home = root.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let user = User {
        home,
        router: std::net::Ipv4Addr::LOCALHOST,
    };
    let add_args: Vec<&str> = add.split_whitespace().skip(1).collect();
    // A pin of another certificate: refused, nothing written.
    let mut wrong = add_args.clone();
    let other = flynn_http_pin(b"another certificate");
    wrong[3] = &other;
    let out = user.flynn(root.path(), &wrong);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("check the pin"), "{e}");
    assert!(!user.home.join(".flynnrc").exists());
    let out = user.ok(root.path(), &add_args);
    assert!(out.contains("Cluster \"default\" added."), "{out}");
    // The CLI talks to https://controller.DOMAIN, and git trusts the cluster CA.
    let rc = std::fs::read_to_string(user.home.join(".flynnrc")).unwrap();
    assert!(rc.contains("https://controller.one.test"), "{rc}");
    let ca = user.home.join(".flynn/ca-certs/default.pem");
    let gitconfig = std::fs::read_to_string(user.home.join(".gitconfig")).unwrap();
    assert!(gitconfig.contains(&ca.display().to_string()), "{gitconfig}");
    let apps = user.ok(root.path(), &["apps"]);
    for system in flynn_host::bootstrap::SYSTEM_APPS {
        assert!(apps.contains(system), "{system} in {apps}");
    }

    let dir = root.path().join("hello");
    std::fs::create_dir_all(&dir).unwrap();
    let git = |args: &[&str]| {
        let out = user.git(&dir, args);
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "git {args:?}: {text}");
        text
    };
    git(&["init", "-q", "-b", "main"]);
    assert_eq!(user.ok(&dir, &["create", "hello"]).trim(), "Created hello");
    std::fs::write(dir.join("app.py"), APP).unwrap();
    std::fs::write(dir.join("Procfile"), "web: exec python3 app.py\n").unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "hello"]);
    let pushed = git(&["push", "flynn", "main"]);
    assert!(
        pushed.contains("remote: =====> Application deployed"),
        "{pushed}"
    );

    let out = user.ok(&dir, &["scale", "web=3"]);
    assert!(out.contains("scale completed in "), "{out}");
    let out = user.ok(&dir, &["route", "add", "http", "www.hello.test"]);
    assert!(out.starts_with("http/"), "{out}");
    // HTTPS with the cluster's certificate for the app's default route.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(&ca)
        .arg(format!("https://hello.{DOMAIN}/"))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && body.starts_with("Hello from Flynn"),
        "{body}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for host in [format!("hello.{DOMAIN}"), "www.hello.test".to_string()] {
        let mut bodies = BTreeSet::new();
        wait(
            &format!("three jobs answering {host}"),
            Duration::from_secs(60),
            || {
                let (status, body) = get(&host);
                if status == 200 {
                    assert!(
                        body.starts_with("Hello from Flynn on port 8080 from job "),
                        "{body}"
                    );
                    bodies.insert(body);
                }
                bodies.len() == 3
            },
        );
    }

    // The router is a system app the scheduler runs: a new release of it rolls the router
    // while requests keep coming, none of them failing.
    let router_jobs = || {
        let out = user.ok(root.path(), &["-a", "router", "ps", "--json"]);
        let jobs: Vec<serde_json::Value> = serde_json::from_str(&out).expect(&out);
        jobs.iter()
            .filter(|j| j["state"] == "up")
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let before = router_jobs();
    assert_eq!(before.len(), 1, "{before:?}");
    let load = Load::start(&format!("hello.{DOMAIN}"), 4);
    user.ok(root.path(), &["-a", "router", "env", "set", "ROLLED=1"]);
    let during = load.sent();
    wait("requests after the roll", Duration::from_secs(120), || {
        load.sent() > during + 100
    });
    let (answered, failed) = load.stop();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the router's deploy: {:?}\n{}",
        failed.len(),
        answered + failed.len() as u64,
        &failed[..failed.len().min(5)],
        user.ok(root.path(), &["-a", "router", "log"])
    );
    let after = router_jobs();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(before, after, "a new router job");
    let env = user.ok(root.path(), &["-a", "router", "env", "get", "ROLLED"]);
    assert_eq!(env.trim(), "1");
    // gitreceive is bootstrap's job: a release of it would run nowhere, so none is made.
    let err = user.fails(root.path(), &["-a", "gitreceive", "env", "set", "X=1"]);
    assert!(
        err.contains("gitreceive runs as a job flynn-host bootstrap started"),
        "{err}"
    );
    // Nor from an image: refused before anything is pushed.
    let err = user.fails(
        root.path(),
        &["-a", "gitreceive", "docker", "push", "/nonexistent.tar"],
    );
    assert!(
        err.contains("gitreceive runs as a job flynn-host bootstrap started"),
        "{err}"
    );
    let releases = user.ok(root.path(), &["-a", "gitreceive", "release", "--json"]);
    assert_eq!(releases.trim(), "[]");
}

/// Requests for one host through the router on 127.0.0.1:80, each on a new connection, from
/// several threads until stopped.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    answered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    threads: Vec<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(host: &str, threads: usize) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads = (0..threads)
            .map(|_| {
                let (stop, answered, sent) = (stop.clone(), answered.clone(), sent.clone());
                let host = host.to_string();
                std::thread::spawn(move || {
                    let mut failed = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        match request(&host) {
                            Ok(()) => {
                                answered.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => failed.push(e),
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    failed
                })
            })
            .collect();
        Self {
            stop,
            answered,
            sent,
            threads,
        }
    }

    /// Requests answered or failed so far.
    fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the threads: how many requests were answered, and the failures.
    fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let failed = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        (
            self.answered.load(std::sync::atomic::Ordering::Relaxed),
            failed,
        )
    }
}

/// One `GET /` for `host` on a new connection: Ok when answered 200 with the app's page.
fn request(host: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 80));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    if text.starts_with("HTTP/1.1 200") && text.contains("Hello from Flynn") {
        Ok(())
    } else {
        Err(format!(
            "answer: {}",
            text.lines().next().unwrap_or("(none)")
        ))
    }
}

/// The pin of `der` as `flynn cluster add -p` takes it.
fn flynn_http_pin(der: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(der))
}
