//! git push deploys on the three-host cluster: the real git client pushes over smart HTTP
//! through the router (`git.cluster.test`) to gitreceive, which runs as a job, builds the
//! pushed commit in a build job (the build stack, the app's cache volume), creates the release
//! and deploys it; the app then answers through the router. Bad pushes say why in the push
//! output and change no release.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use integration::cluster::{Cluster, DOMAIN};
use integration::image::build_recipe;
use integration::pinkerton::Pinkerton;
use integration::{root_test, run_ok};

fn phase(what: &str) {
    eprintln!("=== {what}");
}

/// A local repository of an app, pushing to the cluster's gitreceive.
struct App {
    dir: PathBuf,
    /// HOME for git: no user or system configuration (credential helpers) applies.
    home: PathBuf,
    remote: String,
}

impl App {
    fn new(root: &Path, name: &str, key: &str) -> Self {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let app = Self {
            dir,
            home: root.to_path_buf(),
            remote: format!("http://flynn:{key}@git.{DOMAIN}/{name}.git"),
        };
        app.git(&["init", "-q", "-b", "main"]);
        app
    }

    fn git(&self, args: &[&str]) -> String {
        run_ok(self.cmd().args(args))
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("git");
        c.current_dir(&self.dir)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.test")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.test")
            .args([
                "-c",
                &format!("http.curloptResolve=git.{DOMAIN}:80:100.99.0.1"),
            ]);
        c
    }

    /// Writes files and commits them.
    fn commit(&self, files: &[(&str, &str)], message: &str) {
        for (path, body) in files {
            let p = self.dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    /// `git push REMOTE REFSPEC`: whether it succeeded, and everything it printed.
    fn push_to(&self, remote: &str, refspec: &str) -> (bool, String) {
        let out = self
            .cmd()
            .args(["push", "--progress", remote, refspec])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        eprintln!("--- git push {refspec}\n{text}");
        (out.status.success(), text)
    }

    fn push(&self, refspec: &str) -> (bool, String) {
        self.push_to(&self.remote.clone(), refspec)
    }
}

const PY_APP: &str = "import http.server, os\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(open('message.txt').read().encode())\nhttp.server.HTTPServer(('', int(os.environ['PORT'])), H).serve_forever()\n";

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
    let store = c.hosts[0].state().join("pinkerton");
    build_recipe("stack-build", &t.path().join("build"), Some(&store));
    build_recipe("stack-run", &t.path().join("run"), None);
    build_recipe("gitreceive", &t.path().join("gitreceive"), Some(&store));
    Pinkerton::new().ok(&[
        "push",
        "--insecure-registry",
        &c.registry.addr,
        t.path().join("run").to_str().unwrap(),
        &format!("{}/flynn/stack-run:test", c.registry.addr),
    ]);
    c.start_gitreceive("flynn/stack-build:test", "flynn/stack-run:test");
    let api = c.controller();
    for name in ["py", "site"] {
        c.block_on(api.create_app(&controller_api::NewApp {
            name: Some(name.parse().unwrap()),
            ..Default::default()
        }))
        .unwrap();
    }

    phase("first push of a Python app: built, released, scaled to web=1, routed");
    let py = App::new(t.path(), "py", &c.key);
    py.commit(
        &[
            ("requirements.txt", "# no dependencies\n"),
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
    let site = App::new(t.path(), "site", &c.key);
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
    let filter = host_api::JobFilter {
        metadata: vec![("flynn-gitreceive-app".into(), "py".into())],
        ..Default::default()
    };
    let left = c.block_on(c.hosts[0].client().jobs(&filter)).unwrap();
    assert!(left.is_empty(), "{left:?}");
}
