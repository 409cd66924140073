//! git push deploys on the three-host cluster: the real git client pushes over smart HTTP
//! through the router (`git.cluster.test`) to gitreceive, which runs as a job, builds the
//! pushed commit in a build job (the build stack, the app's cache volume), creates the release
//! and deploys it; the app then answers through the router. Bad pushes say why in the push
//! output and change no release.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use integration::cluster::{Cluster, DOMAIN, TEST_IP};
use integration::git::AppRepo;
use integration::{root_test, run_ok};

fn phase(what: &str) {
    eprintln!("=== {what}");
}

const PY_APP: &str = "import http.server, os, hello\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(open('message.txt').read().encode())\nhttp.server.HTTPServer(('', int(os.environ['PORT'])), H).serve_forever()\n";

/// What the app answers through host `via`'s router, waiting up to a minute for `want`.
fn wait_for_body(c: &Cluster, app: &str, want: &str) {
    let domain = format!("{app}.{DOMAIN}");
    c.wait(
        &format!("{domain} to answer {want:?}"),
        Duration::from_secs(60),
        |c| c.get(1, &domain, "/") == (200, want.to_string()),
    );
}

fn current_release(c: &Cluster, app: &str) -> Option<String> {
    c.block_on(c.controller().app(app)).unwrap().release
}

#[root_test(isolated)]
fn git_push_builds_releases_and_deploys_through_the_router() {
    let c = Cluster::start(3);
    let t = tempfile::tempdir().unwrap();
    phase("stacks and gitreceive");
    c.start_gitreceive(t.path());
    let api = c.controller();
    for name in ["py", "site", "big"] {
        c.block_on(api.create_app(&controller_api::NewApp {
            name: Some(name.parse().unwrap()),
            ..Default::default()
        }))
        .unwrap();
    }

    phase("first push of a Python app: built, released, scaled to web=1, routed");
    let py = repo(&c, t.path(), "py");
    // Its one requirement comes from a wheel it vendors: the build has no package index.
    vendor_wheel(&py.dir.join("vendor"));
    py.commit(
        &[
            ("requirements.txt", "hello==1.0\n"),
            ("app.py", PY_APP),
            ("message.txt", "hello v1\n"),
        ],
        "v1",
    );
    let (ok, out) = py.push("main");
    assert!(ok, "{out}");
    for line in [
        "remote: -----> Building py...",
        "remote: -----> Python app detected",
        "remote: -----> Installing requirements with pip",
        "Successfully installed hello-1.0",
        "remote: -----> Creating release...",
        "remote: =====> Scaling initial release to web=1",
        "remote: =====> Initial web job started",
        "remote: =====> Application deployed",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    wait_for_body(&c, "py", "hello v1\n");
    let v1 = current_release(&c, "py").expect("a current release");
    let release = c.block_on(api.release(&v1)).unwrap();
    let head = py.git(&["rev-parse", "HEAD"]);
    assert_eq!(release.meta["git.commit"], head.trim());
    let web = &release.processes["web"];
    assert_eq!(web.args, ["start", "web"]);

    phase("a one-line change: only new objects sent, deployed by the app's strategy");
    py.commit(&[("message.txt", "hello v2\n")], "v2");
    let (ok, out) = py.push("main");
    assert!(ok, "{out}");
    assert!(
        out.contains("Writing objects: 100% (3/3)"),
        "a second push sends the commit, its tree and the changed file only:\n{out}"
    );
    assert!(
        out.contains("remote: -----> Reusing the virtualenv of the last build"),
        "the build cache holds the installed requirements:\n{out}"
    );
    assert!(out.contains("remote: -----> Deploying release"), "{out}");
    wait_for_body(&c, "py", "hello v2\n");
    let v2 = current_release(&c, "py").unwrap();
    assert_ne!(v1, v2);

    phase("pushes that are refused change nothing");
    // Another branch.
    py.git(&["checkout", "-q", "-b", "feature"]);
    py.commit(&[("message.txt", "feature\n")], "feature");
    let (ok, out) = py.push("feature");
    assert!(!ok, "{out}");
    assert!(
        out.contains("refs/heads/feature is not deployed: push to main or master"),
        "{out}"
    );
    // A build that fails: nothing to detect.
    let (ok, out) = {
        py.git(&["checkout", "-q", "main"]);
        py.git(&["rm", "-q", "requirements.txt", "app.py"]);
        py.git(&["commit", "-q", "-m", "nothing to build"]);
        py.push("main")
    };
    assert!(!ok, "{out}");
    assert!(out.contains("Unable to select a buildpack"), "{out}");
    // An app that dies at start: the deployment fails, the old release keeps serving.
    py.git(&["reset", "-q", "--hard", "HEAD~1"]);
    py.commit(&[("app.py", "raise SystemExit(3)\n")], "crash");
    let (ok, out) = py.push("main");
    assert!(!ok, "{out}");
    assert!(out.contains("deployment failed"), "{out}");
    assert_eq!(current_release(&c, "py").as_deref(), Some(v2.as_str()));
    wait_for_body(&c, "py", "hello v2\n");
    // No key, a wrong key, an unknown app.
    let (ok, out) = py.push_to(&format!("http://git.{DOMAIN}/py.git"), "main");
    assert!(!ok && out.contains("could not read Username"), "{out}");
    let wrong = format!("http://flynn:{}@git.{DOMAIN}/py.git", "x".repeat(40));
    let (ok, out) = py.push_to(&wrong, "main");
    assert!(!ok && out.contains("Authentication failed"), "{out}");
    let unknown = format!("http://flynn:{}@git.{DOMAIN}/nope.git", c.key);
    let (ok, out) = py.push_to(&unknown, "main");
    assert!(!ok && out.contains("not found"), "{out}");
    assert_eq!(current_release(&c, "py").as_deref(), Some(v2.as_str()));

    phase("a static site, and a clone of what was pushed");
    let site = repo(&c, t.path(), "site");
    site.commit(&[("index.html", "<h1>static</h1>\n")], "site");
    let (ok, out) = site.push("main");
    assert!(ok && out.contains("Static site app detected"), "{out}");
    wait_for_body(&c, "site", "<h1>static</h1>\n");
    let clone = t.path().join("clone");
    run_ok(site.cmd().args(["clone", "-q", &site.remote]).arg(&clone));
    assert_eq!(
        std::fs::read_to_string(clone.join("index.html")).unwrap(),
        "<h1>static</h1>\n"
    );
    // Build jobs are removed once they end.
    assert!(build_jobs(&c, "py").is_empty());

    phase("the other built-in kinds: Node.js, Go, Procfile only");
    deploy_new_app(
        &c,
        t.path(),
        "node",
        &[
            ("package.json", r#"{"name":"n","version":"1.0.0","scripts":{"start":"node server.js"}}"#),
            ("server.js", "require('http').createServer((q,s)=>s.end('node app\\n')).listen(process.env.PORT)\n"),
        ],
        "Node.js app detected",
        "node app\n",
    );
    deploy_new_app(
        &c,
        t.path(),
        "goapp",
        &[
            ("go.mod", "module example.com/hello\n\ngo 1.19\n"),
            ("main.go", "package main\nimport (\"fmt\"; \"net/http\"; \"os\")\nfunc main() {\n http.HandleFunc(\"/\", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, \"go app\") })\n http.ListenAndServe(\":\"+os.Getenv(\"PORT\"), nil)\n}\n"),
        ],
        "Go app detected",
        "go app\n",
    );
    deploy_new_app(
        &c,
        t.path(),
        "procfile",
        &[
            (
                "Procfile",
                "web: cd site && exec python3 -m http.server $PORT\n",
            ),
            ("site/index.html", "procfile app\n"),
        ],
        "Procfile app detected",
        "procfile app\n",
    );

    phase("the flynn CLI walkthrough");
    crate::cli::walkthrough(&c, t.path());

    custom_buildpack_limits_and_cancel(&c, t.path());

    phase("a 50 MB repository");
    let big = repo(&c, t.path(), "big");
    let mut noise = vec![0u8; 50 << 20];
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut f, &mut noise).unwrap();
    std::fs::write(big.dir.join("noise.bin"), &noise).unwrap();
    big.commit(&[("index.html", "big\n")], "big");
    let (ok, out) = big.push("main");
    assert!(ok && out.contains("Static site app detected"), "{out}");
    wait_for_body(&c, "big", "big\n");
    let served = Command::new("curl")
        .args([
            "-sf",
            "--max-time",
            "60",
            "-H",
            &format!("Host: big.{DOMAIN}"),
        ])
        .arg(format!("http://{}/noise.bin", c.hosts[1].ip))
        .output()
        .unwrap();
    assert!(served.status.success(), "{served:?}");
    assert!(
        served.stdout == noise,
        "the 50 MB file comes back as pushed"
    );
}

/// A process group (`git daemon` runs `git-daemon` as a child) killed when the test is done
/// with it.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Writes `hello-1.0-py3-none-any.whl` (a module `hello`) into `dir`.
fn vendor_wheel(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let script = r#"
import sys, zipfile
files = {
    "hello/__init__.py": "GREETING = 'hello'\n",
    "hello-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: hello\nVersion: 1.0\n",
    "hello-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = "".join(f"{n},,\n" for n in files) + "hello-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1] + "/hello-1.0-py3-none-any.whl", "w") as z:
    for n, body in files.items():
        z.writestr(n, body)
    z.writestr("hello-1.0.dist-info/RECORD", record)
"#;
    run_ok(Command::new("python3").args(["-c", script]).arg(dir));
}

/// Creates app `name`, pushes `files` to it, and checks the build output names `detected`
/// and the app answers `body` through the router.
fn deploy_new_app(
    c: &Cluster,
    root: &Path,
    name: &str,
    files: &[(&str, &str)],
    detected: &str,
    body: &str,
) {
    c.block_on(c.controller().create_app(&controller_api::NewApp {
        name: Some(name.parse().unwrap()),
        ..Default::default()
    }))
    .unwrap();
    let app = repo(c, root, name);
    app.commit(files, name);
    let (ok, out) = app.push("main");
    assert!(
        ok && out.contains(&format!("remote: -----> {detected}")),
        "{out}"
    );
    wait_for_body(c, name, body);
}

/// A repository of app `name` under `root` that pushes through the first host's router.
fn repo(c: &Cluster, root: &Path, name: &str) -> AppRepo {
    AppRepo::new(root, name, &c.key, c.hosts[0].ip)
}

/// The build jobs of app `name` on the build host.
fn build_jobs(c: &Cluster, name: &str) -> Vec<host_api::Job> {
    let filter = host_api::JobFilter {
        metadata: vec![("flynn-gitreceive-app".into(), name.into())],
        ..Default::default()
    };
    c.block_on(c.hosts[0].client().jobs(&filter)).unwrap()
}

/// Makes a release of `app` with `env` (over its current one, whose processes it keeps, with
/// the build memory limit `build_memory`) its current release.
fn set_env(c: &Cluster, app: &str, env: &[(&str, &str)], build_memory: u64) {
    let api = c.controller();
    let current = current_release(c, app).map(|r| c.block_on(api.release(&r)).unwrap());
    let mut processes = current.map(|r| r.processes).unwrap_or_default();
    let mut builder = controller_api::ProcessType::default();
    builder.resources.memory = Some(controller_api::Limit {
        request: None,
        limit: Some(build_memory),
    });
    processes.insert("slugbuilder".parse().unwrap(), builder);
    let release = c
        .block_on(
            api.create_release(&controller_api::NewRelease {
                app_id: app.into(),
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                processes,
                artifacts: Vec::new(),
                meta: Default::default(),
            }),
        )
        .unwrap();
    c.block_on(api.set_app_release(app, &release.id)).unwrap();
}

/// A buildpack in a git repository that `git daemon` serves on the test address: its
/// compile reads the app's env from ENV_DIR (GREETING becomes the page; HOG allocates 1 GiB;
/// SLOW waits).
fn custom_buildpack_limits_and_cancel(c: &Cluster, root: &Path) {
    phase("BUILDPACK_URL from git, ENV_DIR, the build memory limit, a cancelled push");
    let bp = repo(c, &root.join("buildpacks"), "custom");
    let compile = "#!/bin/sh\nset -e\necho \"-----> custom buildpack: $(cat \"$3/GREETING\")\"\n\
        if [ -f \"$3/HOG\" ]; then python3 -c 'x = b\"x\" * (1 << 30)'; fi\n\
        if [ -f \"$3/SLOW\" ]; then echo '-----> waiting'; sleep 600; fi\n\
        cp \"$3/GREETING\" \"$1/index.html\"\n";
    let release = "#!/bin/sh\nprintf -- '---\\ndefault_process_types:\\n  web: python3 -m http.server $PORT\\n'\n";
    bp.commit(
        &[
            ("bin/detect", "#!/bin/sh\necho Custom\n"),
            ("bin/compile", compile),
            ("bin/release", release),
        ],
        "buildpack",
    );
    bp.git(&[
        "update-index",
        "--chmod=+x",
        "bin/detect",
        "bin/compile",
        "bin/release",
    ]);
    bp.git(&["commit", "-q", "-m", "executable"]);
    let port = integration::free_port();
    let _daemon = Killed(
        Command::new("git")
            .process_group(0)
            .args(["daemon", "--reuseaddr", "--export-all"])
            .arg(format!("--base-path={}", root.join("buildpacks").display()))
            .arg(format!("--listen={TEST_IP}"))
            .arg(format!("--port={port}"))
            .spawn()
            .expect("git daemon"),
    );
    c.wait("git daemon", Duration::from_secs(30), |_| {
        std::net::TcpStream::connect((TEST_IP, port)).is_ok()
    });
    let url = format!("git://{TEST_IP}:{port}/custom");
    let api = c.controller();
    c.block_on(api.create_app(&controller_api::NewApp {
        name: Some("custom".parse().unwrap()),
        ..Default::default()
    }))
    .unwrap();
    let app = repo(c, root, "custom");
    app.commit(&[("README", "custom\n")], "custom");
    let limit = 128 << 20;

    // A build that needs more memory than the app's limit.
    set_env(
        c,
        "custom",
        &[("BUILDPACK_URL", &url), ("GREETING", "hog"), ("HOG", "1")],
        limit,
    );
    let before = current_release(c, "custom");
    let (ok, out) = app.push("main");
    assert!(!ok, "{out}");
    assert!(
        out.contains("the build ran out of memory (its limit is 128 MiB)"),
        "{out}"
    );
    assert_eq!(current_release(c, "custom"), before);

    // Ctrl-C during the build stops the build job.
    set_env(
        c,
        "custom",
        &[("BUILDPACK_URL", &url), ("GREETING", "slow"), ("SLOW", "1")],
        limit,
    );
    let before = current_release(c, "custom");
    let mut push = app
        .cmd()
        .args(["push", "--progress", &app.remote, "main"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut seen = String::new();
    for l in std::io::BufRead::lines(std::io::BufReader::new(push.stderr.take().unwrap())) {
        let l = l.unwrap();
        seen.push_str(&l);
        seen.push('\n');
        if l.contains("-----> waiting") {
            break;
        }
    }
    assert!(seen.contains("-----> waiting"), "{seen}");
    assert_eq!(build_jobs(c, "custom").len(), 1);
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(push.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert!(!push.wait().unwrap().success());
    c.wait(
        "the cancelled build job to go",
        Duration::from_secs(60),
        |c| build_jobs(c, "custom").is_empty(),
    );
    assert_eq!(current_release(c, "custom"), before);

    // The buildpack from git, the app's env through ENV_DIR; the limit stays with the app.
    set_env(
        c,
        "custom",
        &[("BUILDPACK_URL", &url), ("GREETING", "from env")],
        limit,
    );
    let (ok, out) = app.push("main");
    assert!(ok, "{out}");
    assert!(
        out.contains("remote: -----> custom buildpack: from env"),
        "{out}"
    );
    wait_for_body(c, "custom", "from env");
    let r = c
        .block_on(api.release(&current_release(c, "custom").unwrap()))
        .unwrap();
    assert_eq!(r.env["GREETING"], "from env");
    let builder = &r.processes["slugbuilder"];
    assert_eq!(builder.resources.memory.unwrap().limit, Some(limit));

    // The same buildpack as a tarball over HTTP, in one top directory as archives of a
    // repository have it.
    let www = root.join("tarballs");
    std::fs::create_dir_all(&www).unwrap();
    let tarball = www.join("custom.tgz");
    bp.git(&[
        "archive",
        "--format=tar.gz",
        "--prefix=custom-main/",
        "-o",
        tarball.to_str().unwrap(),
        "HEAD",
    ]);
    let http_port = integration::free_port();
    let _http = Killed(
        Command::new("python3")
            .process_group(0)
            .current_dir(&www)
            .args(["-m", "http.server", "--bind"])
            .arg(TEST_IP.to_string())
            .arg(http_port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server"),
    );
    c.wait("the tarball server", Duration::from_secs(30), |_| {
        std::net::TcpStream::connect((TEST_IP, http_port)).is_ok()
    });
    let tarball_url = format!("http://{TEST_IP}:{http_port}/custom.tgz");
    set_env(
        c,
        "custom",
        &[
            ("BUILDPACK_URL", &tarball_url),
            ("GREETING", "from a tarball"),
        ],
        limit,
    );
    app.commit(&[("README", "tarball\n")], "tarball");
    let (ok, out) = app.push("main");
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("remote: -----> Fetching buildpack {tarball_url}")),
        "{out}"
    );
    assert!(
        out.contains("remote: -----> custom buildpack: from a tarball"),
        "{out}"
    );
    wait_for_body(c, "custom", "from a tarball");
}
