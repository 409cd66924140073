//! The build job: flynn-slugbuilder in the build stack, run by flynn-host with the app's tree
//! on stdin, builds with the built-in buildpacks (static, Python, Node.js, Go, Procfile) or a
//! BUILDPACK_URL, pushes /app on the run stack to the registry, and the image it names
//! serves the app through flynn-runner. Bad apps fail the build and push nothing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::host::HostDaemon;
use integration::image::build_recipe;
use integration::pinkerton::Pinkerton;
use integration::{root_test, run_ok};

/// Writes `files` into a fresh directory and tars it.
fn app_tar(dir: &Path, name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let src = dir.join(name);
    for (path, body) in files {
        let p = src.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
    }
    let tar = dir.join(format!("{name}.tar"));
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&src)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    tar
}

struct Build {
    ok: bool,
    output: String,
    image: Option<String>,
    result: serde_json::Value,
}

/// Runs the build job with `tar` on stdin.
fn build(h: &HostDaemon, app: &str, tar: &Path, env: &[&str]) -> Build {
    let image = format!("{}/apps/{app}:v1", h.registry());
    let stack = format!("{}/flynn/stack-run:test", h.registry());
    let mut args: Vec<String> = vec![
        "run".into(),
        "-i".into(),
        "--rm".into(),
        "--network".into(),
        "host".into(),
        "-m".into(),
        "1G".into(),
        "-v".into(),
        format!("cache-{app}:/cache"),
        "-v".into(),
        "buildpack-src:/srv/buildpacks:ro".into(),
    ];
    for e in env {
        args.extend(["-e".into(), e.to_string()]);
    }
    args.extend([
        "flynn/stack-build:test".into(),
        "flynn-slugbuilder".into(),
        "--image".into(),
        image,
        "--stack-image".into(),
        stack,
        "--source-version".into(),
        "0123abcd".into(),
    ]);
    let _ = h.run(&["volume", "create", &format!("cache-{app}")]);
    let out = h
        .cli()
        .args(&args)
        .stdin(Stdio::from(std::fs::File::open(tar).unwrap()))
        .output()
        .unwrap();
    let output =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let result_line = output
        .lines()
        .find_map(|l| l.strip_prefix("SLUG_RESULT "))
        .map(|j| serde_json::from_str::<serde_json::Value>(j).unwrap())
        .unwrap_or_default();
    Build {
        ok: out.status.success(),
        image: result_line["image"].as_str().map(str::to_string),
        result: result_line,
        output,
    }
}

/// Runs `image` as `start web` on host port `port` and returns what `/` answers.
fn serve(h: &HostDaemon, image: &str, name: &str, port: u16) -> String {
    h.ok(&["pull", image]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "-p",
        &format!("{port}:5000"),
        image,
        "start",
        "web",
    ]);
    let url = format!("http://100.100.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("curl")
            .args(["-fsS", "-m", "2", &url])
            .output()
            .unwrap();
        if out.status.success() {
            h.ok(&["rm", "-f", name]);
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not answer at {url}: {}\n{}",
            {
                let l = h.run(&["logs", name]);
                String::from_utf8_lossy(&l.stdout).into_owned()
                    + &String::from_utf8_lossy(&l.stderr)
            },
            h.ok(&["ps", "-a"])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[root_test(isolated)]
fn builds_apps_with_buildpacks_into_images_on_the_run_stack() {
    let h = HostDaemon::start();
    h.ok(&["volume", "create", "buildpack-src"]);
    let t = tempfile::tempdir().unwrap();
    let store = h.state().join("pinkerton");
    build_recipe("stack-build", &t.path().join("build"), Some(&store));
    build_recipe("stack-run", &t.path().join("run"), None);
    let p = Pinkerton::new();
    p.ok(&[
        "push",
        t.path().join("run").to_str().unwrap(),
        &format!("{}/flynn/stack-run:test", h.registry()),
    ]);

    // Python with no dependencies, a default web process from app.py.
    let py = app_tar(
        t.path(),
        "py",
        &[
            ("requirements.txt", "# nothing\n"),
            (
                "app.py",
                "import http.server, os\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(('python ' + os.environ['GREETING'] + '\\n').encode())\nhttp.server.HTTPServer(('', int(os.environ['PORT'])), H).serve_forever()\n",
            ),
            (".profile.d/greeting.sh", "export GREETING=hi-from-profile\n"),
            ("docs/big.bin", "x"),
            (".slugignore", "docs\n"),
        ],
    );
    let b = build(&h, "py", &py, &["SECRET_AT_BUILD=shh"]);
    assert!(b.ok, "{}", b.output);
    assert!(
        b.output.contains("-----> Python app detected"),
        "{}",
        b.output
    );
    assert!(
        b.output.contains("Default types for buildpack -> web"),
        "{}",
        b.output
    );
    assert_eq!(b.result["process_types"]["web"], "python3 app.py");
    let image = b.image.clone().unwrap();
    assert_eq!(
        serve(&h, &image, "py-web", 18101),
        "python hi-from-profile\n"
    );
    let listing = h.ok(&[
        "run",
        "--rm",
        &image,
        "ls -a /app; cat /app/.profile.d/python.sh >/dev/null && echo venv",
    ]);
    assert!(!listing.contains("docs"), ".slugignore applied: {listing}");

    // A static site, served by the run stack's python.
    let site = app_tar(t.path(), "site", &[("index.html", "<h1>static</h1>\n")]);
    let b = build(&h, "site", &site, &[]);
    assert!(
        b.ok && b.output.contains("Static site app detected"),
        "{}",
        b.output
    );
    assert_eq!(
        serve(&h, b.image.as_ref().unwrap(), "site-web", 18102),
        "<h1>static</h1>\n"
    );

    // Node.js without dependencies; npm start's script is the web process.
    let node = app_tar(
        t.path(),
        "node",
        &[
            ("package.json", r#"{"name":"n","version":"1.0.0","scripts":{"start":"node server.js"}}"#),
            ("server.js", "require('http').createServer((q,s)=>s.end('node '+process.version.startsWith('v')+'\\n')).listen(process.env.PORT)\n"),
        ],
    );
    let b = build(&h, "node", &node, &[]);
    assert!(
        b.ok && b.output.contains("Node.js app detected"),
        "{}",
        b.output
    );
    assert_eq!(
        serve(&h, b.image.as_ref().unwrap(), "node-web", 18103),
        "node true\n"
    );

    // Go, standard library only: a static binary in /app/bin.
    let go = app_tar(
        t.path(),
        "goapp",
        &[
            ("go.mod", "module example.com/hello\n\ngo 1.19\n"),
            ("main.go", "package main\nimport (\"fmt\"; \"net/http\"; \"os\")\nfunc main() {\n http.HandleFunc(\"/\", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, \"go hello\") })\n http.ListenAndServe(\":\"+os.Getenv(\"PORT\"), nil)\n}\n"),
        ],
    );
    let b = build(&h, "goapp", &go, &[]);
    assert!(b.ok && b.output.contains("Go app detected"), "{}", b.output);
    assert_eq!(
        serve(&h, b.image.as_ref().unwrap(), "go-web", 18104),
        "go hello\n"
    );

    // BUILDPACK_URL: a buildpack in a local git repository; the app's env reaches compile
    // through ENV_DIR, not its environment.
    let bp = h.state().join("runtime/volumes/buildpack-src/data/custom");
    std::fs::create_dir_all(bp.join("bin")).unwrap();
    std::fs::write(bp.join("bin/detect"), "#!/bin/sh\necho Custom\n").unwrap();
    std::fs::write(
        bp.join("bin/compile"),
        "#!/bin/sh\necho \"custom compile as $(id -u), secret=$(cat $3/SECRET), env=${SECRET:-unset}\"\nprintf 'web: echo never\\n' > $1/Procfile\n",
    )
    .unwrap();
    for f in ["detect", "compile"] {
        run_ok(Command::new("chmod").arg("755").arg(bp.join("bin").join(f)));
    }
    run_ok(
        Command::new("git")
            .args(["init", "-q", "-b", "main"])
            .arg(&bp),
    );
    run_ok(Command::new("git").arg("-C").arg(&bp).args(["add", "."]));
    run_ok(Command::new("git").arg("-C").arg(&bp).args([
        "-c",
        "user.email=t@t",
        "-c",
        "user.name=t",
        "commit",
        "-qm",
        "bp",
    ]));
    let plain = app_tar(t.path(), "plain", &[("README", "hi\n")]);
    // The job reads the repository from a volume.
    let url = "BUILDPACK_URL=file:///srv/buildpacks/custom".to_string();
    let b = build(&h, "plain", &plain, &[&url, "SECRET=s3cret"]);
    assert!(b.ok, "{}", b.output);
    assert!(
        b.output
            .contains("custom compile as 2000, secret=s3cret, env=unset"),
        "{}",
        b.output
    );

    // Bad apps: nothing detected; a failing compile. Neither pushes an image.
    let none = app_tar(t.path(), "none", &[("README", "nothing to run\n")]);
    let b = build(&h, "none", &none, &[]);
    assert!(
        !b.ok && b.output.contains("Unable to select a buildpack"),
        "{}",
        b.output
    );
    assert!(b.image.is_none());
    let broken = app_tar(
        t.path(),
        "broken",
        &[
            ("requirements.txt", "no-such-package-anywhere==1.0\n"),
            ("app.py", ""),
        ],
    );
    let b = build(&h, "broken", &broken, &[]);
    assert!(
        !b.ok
            && b.output
                .contains("Failed to compile app with the Python buildpack"),
        "{}",
        b.output
    );
    let gone = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/apps/broken:v1", h.registry()))
        .output()
        .unwrap();
    assert!(!gone.status.success(), "a failed build pushed nothing");
}
