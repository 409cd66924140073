//! The `flynn` CLI walkthrough on the three-host cluster, through the real binary and the
//! Debian git client: add the cluster (which configures git), create an app in a repository
//! (the `flynn` remote), `git push flynn main` with no credentials of its own, scale web=3,
//! add a route and see three different jobs answer it; then the other commands as a user
//! reads them, and bad input: a clear message and a non-zero exit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use integration::cluster::{Cluster, DOMAIN};
use integration::image::{Compression, Layer, OciLayout};
use integration::workspace_bin;

/// A user: a HOME of their own (~/.flynnrc, ~/.gitconfig) and a working directory.
pub struct User {
    /// Their HOME.
    pub home: PathBuf,
    /// The router `git.DOMAIN` resolves to for git.
    pub router: std::net::Ipv4Addr,
}

impl User {
    /// `flynn ARGS` in `dir`: its output, echoed for failure messages.
    pub fn flynn(&self, dir: &Path, args: &[&str]) -> Output {
        let out = Command::new(workspace_bin("flynn"))
            .current_dir(dir)
            .env("HOME", &self.home)
            .env_remove("FLYNN_CLUSTER")
            .env_remove("FLYNNRC")
            .args(args)
            .output()
            .unwrap();
        eprintln!(
            "$ flynn {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `flynn ARGS` in `dir` that must succeed: its stdout.
    pub fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.flynn(dir, args);
        assert!(out.status.success(), "flynn {args:?} failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `flynn ARGS` that must fail: its stderr.
    pub fn fails(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.flynn(dir, args);
        assert!(!out.status.success(), "flynn {args:?} succeeded: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// git in `dir` with the user's global configuration (the credential helper) only;
    /// `git.DOMAIN` resolves to a router.
    pub fn git(&self, dir: &Path, args: &[&str]) -> Output {
        integration::git::git_command(dir, &self.home, self.router)
            .args(args)
            .output()
            .unwrap()
    }
}

/// The example app: answers with its port and job id.
pub const APP: &str = "import http.server, os\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers()\n        self.wfile.write(('Hello from Flynn on port %s from job %s\\n' % (os.environ['PORT'], os.environ.get('FLYNN_JOB_ID', '?'))).encode())\nhttp.server.HTTPServer(('', int(os.environ['PORT'])), H).serve_forever()\n";

/// The walkthrough and every command, on a cluster that runs gitreceive.
pub fn walkthrough(c: &Cluster, root: &Path) {
    let home = root.join("cli-home");
    std::fs::create_dir_all(&home).unwrap();
    let user = User {
        home: home.clone(),
        router: c.hosts[0].ip,
    };
    let nowhere = root.to_path_buf();

    // No cluster yet.
    let e = user.fails(&nowhere, &["apps"]);
    assert!(
        e.contains("no cluster configured: add one with flynn cluster add"),
        "{e}"
    );

    let controller = c.controller_url();
    let git_url = format!("http://git.{DOMAIN}");
    let out = user.ok(
        &nowhere,
        &[
            "cluster",
            "add",
            "--controller-url",
            &controller,
            "--git-url",
            &git_url,
            "--image-url",
            &format!("http://{}", c.registry.addr),
            "test",
            DOMAIN,
            &c.key,
        ],
    );
    assert!(out.contains("Cluster \"test\" added."), "{out}");
    let rc = home.join(".flynnrc");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&rc).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let gitconfig = std::fs::read_to_string(home.join(".gitconfig")).unwrap();
    assert!(
        gitconfig.contains(&format!("[credential \"{git_url}\"]")),
        "{gitconfig}"
    );
    assert!(gitconfig.contains("git-credentials"), "{gitconfig}");
    let e = user.fails(&nowhere, &["cluster", "add", "test", DOMAIN, &c.key]);
    assert!(e.contains("already exists: pass -f"), "{e}");
    let out = user.ok(&nowhere, &["cluster"]);
    assert!(
        out.contains("test (default)") && out.contains(&controller),
        "{out}"
    );

    // The app of a directory comes from its flynn remote.
    let e = user.fails(&nowhere, &["info"]);
    assert!(
        e.contains("no app in this directory: run flynn create, or pass -a APP"),
        "{e}"
    );
    let dir = root.join("hello");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(user
        .git(&dir, &["init", "-q", "-b", "main"])
        .status
        .success());
    let out = user.ok(&dir, &["create", "hello"]);
    assert_eq!(out.trim(), "Created hello");
    let remote = user.git(&dir, &["remote", "get-url", "flynn"]);
    assert_eq!(
        String::from_utf8_lossy(&remote.stdout).trim(),
        format!("{git_url}/hello.git")
    );
    let e = user.fails(&dir, &["create", "hello"]);
    assert!(e.contains("hello"), "a name taken: {e}");

    // git push flynn main: the credential helper gives git the key.
    std::fs::write(dir.join("app.py"), APP).unwrap();
    std::fs::write(dir.join("Procfile"), "web: exec python3 app.py\n").unwrap();
    assert!(user.git(&dir, &["add", "-A"]).status.success());
    assert!(user
        .git(&dir, &["commit", "-q", "-m", "hello"])
        .status
        .success());
    let push = user.git(&dir, &["push", "flynn", "main"]);
    let text = String::from_utf8_lossy(&push.stderr).into_owned();
    assert!(push.status.success(), "{text}");
    assert!(
        text.contains("remote: =====> Application deployed"),
        "{text}"
    );

    // scale web=3: each job change, then the total time.
    let out = user.ok(&dir, &["scale", "web=3"]);
    assert!(out.contains("scaling web: 1=>3"), "{out}");
    let up: BTreeSet<&str> = out
        .lines()
        .filter(|l| l.contains(" ==> web ") && l.ends_with(" up"))
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(up.len(), 2, "two new jobs come up: {out}");
    assert!(out.contains("scale completed in "), "{out}");
    assert_eq!(user.ok(&dir, &["scale"]).trim(), "web=3");
    let ps = user.ok(&dir, &["ps"]);
    assert_eq!(
        ps.lines()
            .filter(|l| l.contains(" web ") && l.contains(" up "))
            .count(),
        3,
        "{ps}"
    );
    let ids = user.ok(&dir, &["ps", "-q"]);
    assert_eq!(ids.lines().count(), 3, "{ids}");

    // A route of its own; three different jobs answer it.
    let out = user.ok(&dir, &["route", "add", "http", "hello.example.test"]);
    assert!(out.starts_with("http/"), "{out}");
    let route_id = out.trim().to_string();
    let mut seen = BTreeSet::new();
    c.wait(
        "three jobs answering hello.example.test",
        Duration::from_secs(60),
        |c| {
            let (status, body) = c.get(1, "hello.example.test", "/");
            if status == 200 {
                assert!(
                    body.starts_with("Hello from Flynn on port 8080 from job "),
                    "{body}"
                );
                seen.insert(body);
            }
            seen.len() == 3
        },
    );
    let routes = user.ok(&dir, &["route"]);
    assert!(
        routes.contains("http:hello.example.test") && routes.contains("hello-web"),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("http:hello.{DOMAIN}")),
        "the default route: {routes}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&user.ok(&dir, &["route", "--json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);

    // env: a new release, deployed.
    let out = user.ok(&dir, &["env", "set", "GREETING=hi", "OTHER=x"]);
    assert!(
        out.contains("Created release ") && out.contains("Deployed release "),
        "{out}"
    );
    assert_eq!(user.ok(&dir, &["env", "get", "GREETING"]).trim(), "hi");
    user.ok(&dir, &["env", "unset", "OTHER"]);
    let env = user.ok(&dir, &["env"]);
    assert!(
        env.contains("GREETING=hi") && !env.contains("OTHER="),
        "{env}"
    );
    let e = user.fails(&dir, &["env", "get", "NOPE"]);
    assert!(e.contains("hello has no variable NOPE"), "{e}");
    let releases = user.ok(&dir, &["release"]);
    assert_eq!(
        releases.lines().count(),
        4,
        "a header and three releases: {releases}"
    );
    assert!(releases.contains("(current)"), "{releases}");
    let show = user.ok(&dir, &["release", "show"]);
    assert!(show.contains("Env[GREETING]: hi"), "{show}");
    let deployments = user.ok(&dir, &["deployment"]);
    assert!(deployments.contains("complete"), "{deployments}");

    // limit: another release, deployed.
    let out = user.ok(
        &dir,
        &["limit", "set", "web", "memory=200MB", "max_procs=300"],
    );
    assert!(out.contains("Deployed release "), "{out}");
    let limits = user.ok(&dir, &["limit"]);
    assert!(
        limits.contains("web: memory=200MB") && limits.contains("max_procs=300"),
        "{limits}"
    );
    let e = user.fails(&dir, &["limit", "set", "web", "disk=1G"]);
    assert!(e.contains("unknown limit \"disk\""), "{e}");

    // One-off jobs: output, exit codes, the release's env.
    let out = user.flynn(
        &dir,
        &["run", "--", "sh", "-c", "echo $GREETING from run; exit 3"],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi from run\n");
    // On a terminal (under script(1)), the job gets one of its own.
    let on_tty = Command::new("script")
        .current_dir(&dir)
        .env("HOME", &user.home)
        .args(["-qec"])
        .arg(format!(
            "{} run -- sh -c 'tty; exit 4'",
            workspace_bin("flynn").display()
        ))
        .arg("/dev/null")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&on_tty.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(on_tty.status.code(), Some(4), "{on_tty:?}");
    // Ctrl-C without a terminal stops the job and exits 130.
    let mut child = Command::new(workspace_bin("flynn"))
        .current_dir(&dir)
        .env("HOME", &user.home)
        .args(["run", "--", "sh", "-c", "echo started; exec sleep 600"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(first, "started\n");
    let running = user.ok(&dir, &["ps", "-q", "-t", "run"]);
    assert_eq!(
        running.lines().count(),
        1,
        "the one-off job runs: {running}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    c.wait("the interrupted job stops", Duration::from_secs(30), |_| {
        user.ok(&dir, &["ps", "-q", "-t", "run"]).trim().is_empty()
    });
    let id = user.ok(&dir, &["run", "-d", "--", "sleep", "600"]);
    let id = id.trim();
    assert!(user.ok(&dir, &["ps"]).contains(id));
    let out = user.ok(&dir, &["kill", id]);
    assert_eq!(out.trim(), format!("Job {id} killed."));

    // Logs: what the web jobs wrote (python logs each request on stderr).
    c.wait(
        "a request in the web jobs' log",
        Duration::from_secs(60),
        |c| {
            assert_eq!(c.get(1, "hello.example.test", "/").0, 200);
            let log = user.ok(&dir, &["log", "-t", "web", "-n", "100"]);
            log.lines()
                .any(|l| l.contains(" app[web.") && l.contains("\"GET / HTTP/1.1\" 200"))
        },
    );

    // meta, apps, info.
    user.ok(&dir, &["meta", "set", "owner=team-a"]);
    assert!(user.ok(&dir, &["meta"]).contains("owner=team-a"));
    let apps = user.ok(&nowhere, &["apps"]);
    assert!(apps.lines().any(|l| l.contains(" hello ")), "{apps}");
    let info = user.ok(&nowhere, &["-a", "hello", "info"]);
    assert!(
        info.contains(&format!("Web URL:  http://hello.{DOMAIN}")),
        "{info}"
    );

    // Bad input.
    let e = user.fails(&nowhere, &["-a", "nope", "info"]);
    assert!(e.contains("nope"), "{e}");
    let e = user.fails(&dir, &["scale", "web=many"]);
    assert!(
        e.contains("web=many: the count must be a whole number"),
        "{e}"
    );
    let e = user.fails(&dir, &["scale", "worker=1"]);
    assert!(e.contains("has no process type worker"), "{e}");
    let e = user.fails(&dir, &["route", "remove", "nope"]);
    assert!(e.contains("http/ID or tcp/ID"), "{e}");
    user.ok(
        &nowhere,
        &[
            "cluster",
            "add",
            "--controller-url",
            &controller,
            "--no-git",
            "badkey",
            DOMAIN,
            "wrong",
        ],
    );
    let e = user.fails(&dir, &["-c", "badkey", "apps"]);
    assert!(
        e.contains("the controller of cluster \"badkey\" refused its key"),
        "{e}"
    );
    user.ok(
        &nowhere,
        &[
            "cluster",
            "add",
            "--controller-url",
            "http://127.0.0.1:9",
            "--no-git",
            "down",
            DOMAIN,
            "k",
        ],
    );
    let e = user.fails(&dir, &["-c", "down", "apps"]);
    assert!(
        e.contains("cannot reach controller at http://127.0.0.1:9"),
        "{e}"
    );
    let e = user.fails(&dir, &["-c", "nosuch", "apps"]);
    assert!(e.contains("no cluster named \"nosuch\""), "{e}");
    user.ok(&nowhere, &["cluster", "remove", "down"]);
    user.ok(&nowhere, &["cluster", "remove", "badkey"]);

    let out = user.ok(&dir, &["route", "update", &route_id, "--sticky", "true"]);
    assert!(out.contains("updated"), "{out}");
    let routes = user.ok(&dir, &["route"]);
    let line = routes
        .lines()
        .find(|l| l.contains("hello.example.test"))
        .unwrap();
    assert!(line.contains(" true "), "sticky now: {routes}");

    // docker push without Docker: an OCI layout of a small web image, pushed to the
    // cluster registry and released; the new app's web type is the image's own command.
    let layout_dir = root.join("web-image");
    let mut layout = OciLayout::new(&layout_dir);
    let layer = Layer::new()
        .busybox_root()
        .dir("www", 0o755)
        .file("www/index.html", b"from an image\n", 0o644)
        .build(Compression::Gzip);
    layout.add_image(
        "web",
        &[layer],
        serde_json::json!({"Cmd": ["httpd", "-f", "-p", "8080", "-h", "/www"], "Env": ["PATH=/bin"]}),
    );
    assert_eq!(user.ok(&nowhere, &["create", "img"]).trim(), "Created img");
    let out = user.ok(
        &nowhere,
        &["-a", "img", "docker", "push", layout_dir.to_str().unwrap()],
    );
    assert!(
        out.contains(&format!("Pushed {}/img@sha256:", c.registry.addr)),
        "{out}"
    );
    assert!(out.contains(": uploaded ("), "{out}");
    assert!(out.contains("Created release "), "{out}");
    user.ok(&nowhere, &["-a", "img", "scale", "web=1"]);
    c.wait("the pushed image answers", Duration::from_secs(60), |c| {
        c.get(1, &format!("img.{DOMAIN}"), "/") == (200, "from an image\n".to_string())
    });
    let out = user.ok(
        &nowhere,
        &["-a", "img", "docker", "push", layout_dir.to_str().unwrap()],
    );
    assert!(
        out.contains("already in the registry"),
        "a second push sends nothing: {out}"
    );
    let e = user.fails(&nowhere, &["-a", "img", "docker", "push", "/nonexistent"]);
    assert!(e.contains("pushing the image"), "{e}");

    // Removing the route, then the app (and its remote).
    assert!(user
        .ok(&dir, &["route", "remove", &route_id])
        .contains("removed"));
    let e = user.fails(&dir, &["delete"]);
    assert!(e.contains("pass -y"), "{e}");
    let out = user.ok(&dir, &["delete", "-y"]);
    assert!(
        out.contains("Deleted hello") && out.contains("Removed git remote flynn"),
        "{out}"
    );
    let e = user.fails(&dir, &["info"]);
    assert!(e.contains("no app in this directory"), "{e}");
    let completion = user.ok(&nowhere, &["completion", "bash"]);
    assert!(completion.contains("_flynn"), "a bash completion script");
    assert!(user.ok(&nowhere, &["version"]).starts_with("flynn "));
}
