//! git push benchmark on the one-machine test cluster (integration/src/cluster/): for a
//! static site and a Python app with no dependencies, the time from `git push` to the new
//! release answering through a router, cold (a new app, an empty build cache; the stacks are
//! built and on the build host already) and warm (a one-line change). Each stage is timed
//! from the push output as it arrives: receive (until the build starts), build (until the
//! image is compressed), image push, deploy (until the push ends), first routed response.
//! Run through bench/push.sh (it provides the namespaces).

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use integration::cluster::{Cluster, DOMAIN};
use integration::git::AppRepo;

const PY_APP: &str = "import http.server, os\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(open('message.txt', 'rb').read())\nhttp.server.HTTPServer(('', int(os.environ['PORT'])), H).serve_forever()\n";

/// When each stage of one push ended, in seconds from the start of the push.
#[derive(Debug, Default)]
struct Stages {
    received: Option<f64>,
    built: Option<f64>,
    pushed: Option<f64>,
    deployed: f64,
    routed: f64,
}

/// The markers in the push output that end the receive, build and image push stages.
const MARKERS: [&str; 3] = [
    "-----> Building ",
    "-----> Compressing and pushing the image",
    "Image: ",
];

fn start_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// With `PUSH_BENCH_EVENTS` set: the controller's events for `app` since `since`, each with
/// its time from the start of the push (where the deploy's time goes).
fn print_events(c: &Cluster, app: &str, since: std::time::SystemTime) {
    if std::env::var_os("PUSH_BENCH_EVENTS").is_none() {
        return;
    }
    let q = controller_api::client::EventQuery {
        app: Some(app.into()),
        ..Default::default()
    };
    let start = start_ms(since);
    let mut events = c.block_on(c.controller().events(&q)).unwrap();
    events.sort_by_key(|e| e.id);
    for e in events {
        let at = e.created_at.as_datetime().timestamp_millis() - start;
        if at < 0 {
            continue;
        }
        let what = ["state", "status", "host_id", "type"]
            .iter()
            .filter_map(|k| e.data.get(*k).and_then(|v| v.as_str()))
            .collect::<Vec<_>>()
            .join(" ");
        println!("    +{at:>5} ms {:?} {what}", e.object_type);
    }
}

/// Pushes `repo`, timing the stages until `body` answers for `app` through host 2's router.
fn push(c: &Cluster, repo: &AppRepo, app: &str, body: &str) -> Stages {
    let wall = std::time::SystemTime::now();
    let t0 = Instant::now();
    let mut child = repo
        .cmd()
        .args(["push", "--progress", &repo.remote, "main"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git push");
    let mut err = child.stderr.take().unwrap();
    let mut seen = [None; 3];
    let mut text = String::new();
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = err.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if b != b'\n' && b != b'\r' {
                line.push(b);
                continue;
            }
            let l = String::from_utf8_lossy(&line).into_owned();
            for (i, m) in MARKERS.iter().enumerate() {
                if seen[i].is_none() && l.contains(m) {
                    seen[i] = Some(t0.elapsed().as_secs_f64());
                }
            }
            text.push_str(&l);
            text.push('\n');
            line.clear();
        }
    }
    assert!(child.wait().unwrap().success(), "the push failed:\n{text}");
    let deployed = t0.elapsed().as_secs_f64();
    let domain = format!("{app}.{DOMAIN}");
    while c.get(1, &domain, "/") != (200, body.to_string()) {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "{app} never served {body:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    print_events(c, app, wall);
    if std::env::var_os("PUSH_BENCH_EVENTS").is_some() {
        let id = c.block_on(c.controller().app(app)).unwrap().id;
        for (i, j) in c.app_jobs(&id) {
            let created = j.created_at.as_datetime().timestamp_millis();
            let started = j
                .started_at
                .map(|t| t.as_datetime().timestamp_millis() - created);
            println!(
                "    host {i} job {}: created +{} ms, started {started:?} ms after",
                j.id,
                created - start_ms(wall),
            );
        }
    }
    Stages {
        received: seen[0],
        built: seen[1],
        pushed: seen[2],
        deployed,
        routed: t0.elapsed().as_secs_f64(),
    }
}

fn report(what: &str, s: &Stages, goal: f64) {
    let step = |from: Option<f64>, to: Option<f64>| match (from, to) {
        (Some(a), Some(b)) => format!("{:.2}", b - a),
        _ => "?".into(),
    };
    println!(
        "{what}: {:.2} s to serving ({:.2}x of the {goal:.0} s goal); receive {} build {} image push {} deploy {} first routed response {:.2}",
        s.routed,
        s.routed / goal,
        step(Some(0.0), s.received),
        step(s.received, s.built),
        step(s.built, s.pushed),
        step(s.pushed, Some(s.deployed)),
        s.routed - s.deployed,
    );
}

fn main() {
    let c = Cluster::start(3);
    let scratch = tempfile::tempdir().unwrap();
    c.start_gitreceive(scratch.path());
    let api = c.controller();
    type Kind = (
        &'static str,
        fn(&str) -> Vec<(&'static str, String)>,
        &'static str,
    );
    let kinds: [Kind; 2] = [
        (
            "static",
            |v| vec![("index.html", format!("{v}\n"))],
            "index.html",
        ),
        (
            "python",
            |v| {
                vec![
                    ("requirements.txt", "# no dependencies\n".into()),
                    ("app.py", PY_APP.into()),
                    ("message.txt", format!("{v}\n")),
                ]
            },
            "message.txt",
        ),
    ];
    for (kind, files, changed) in kinds {
        let app = format!("bench-{kind}");
        c.block_on(api.create_app(&controller_api::NewApp {
            name: Some(app.parse().unwrap()),
            ..Default::default()
        }))
        .unwrap();
        let repo = AppRepo::new(scratch.path(), &app, &c.key, c.hosts[0].ip);
        let first = files("v1");
        let refs: Vec<(&str, &str)> = first.iter().map(|(p, b)| (*p, b.as_str())).collect();
        repo.commit(&refs, "v1");
        let cold = push(&c, &repo, &app, "v1\n");
        report(&format!("{kind} cold"), &cold, 20.0);
        for round in 2..=4 {
            let v = format!("v{round}");
            repo.commit(&[(changed, &format!("{v}\n"))], &v);
            let warm = push(&c, &repo, &app, &format!("{v}\n"));
            report(&format!("{kind} warm {}", round - 1), &warm, 5.0);
        }
    }
}
