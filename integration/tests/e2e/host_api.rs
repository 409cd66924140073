//! flynn-host end to end: a daemon in the test's own namespaces, driven through its CLI and its
//! HTTP API (curl on TCP with the token).

use integration::root_test;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use host_api::{EventFilter, JobAction, JobFilter, JobState, LogOptions};
use integration::host::HostDaemon;
use integration::jid;

fn curl(args: &[&str]) -> (String, String) {
    let out = integration::run(
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
            .args(args),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (body.to_string(), code.to_string())
}

fn wait_for(what: &str, f: impl FnMut() -> bool) {
    integration::wait_for(what, Duration::from_secs(20), f)
}

#[root_test(isolated)]
fn a_web_job_through_the_cli_and_the_api() {
    let h = HostDaemon::start();
    let c = h.client();
    let mut events = h
        .block_on(c.events(&EventFilter {
            job: Some(jid("web")),
            kind: None,
        }))
        .unwrap();
    let pulled = h.run(&["pull", &h.image]);
    assert!(pulled.status.success(), "{pulled:?}");
    assert!(String::from_utf8_lossy(&pulled.stderr).contains("pulled"));
    assert!(h.ok(&["images"]).contains("test/busybox:v1"));

    let script = "echo serving; echo hello-web > /www/index.html; exec httpd -f -v -p 8080 -h /www";
    let id = h.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "18090:8080",
        "-e",
        "GREETING=hi",
        &h.image,
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(id.trim(), "web");
    let mut body = String::new();
    wait_for("the web job to answer", || {
        body = curl(&["http://127.0.0.1:18090/"]).0;
        body.trim() == "hello-web"
    });
    let ps = h.ok(&["ps"]);
    assert!(ps.contains("web") && ps.contains("18090->8080/tcp"), "{ps}");
    let inspect: serde_json::Value = serde_json::from_str(&h.ok(&["inspect", "web"])).unwrap();
    assert_eq!(inspect[0]["state"], "running");
    assert_eq!(inspect[0]["config"]["env"]["GREETING"], "hi");
    assert!(h.ok(&["log", "web"]).contains("serving"));

    // A followed log sees lines written after it was opened (httpd -v logs each request).
    let mut logs = h
        .block_on(c.logs(
            &jid("web"),
            &LogOptions {
                follow: true,
                ..Default::default()
            },
        ))
        .unwrap();
    let first = h.block_on(logs.next()).unwrap().unwrap();
    assert_eq!(first.line, "serving");
    curl(&["http://127.0.0.1:18090/again"]);
    let seen = h.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(l)) = logs.next().await {
                if l.line.contains("response:404") {
                    return true;
                }
            }
            false
        })
        .await
    });
    assert_eq!(seen, Ok(true), "the followed log shows the new request");

    // Jobs are told where they are reached: a bridged job its own address, a host-network
    // job the host's; one given an address keeps it.
    let external = |args: &[&str]| {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[h.image.as_str(), "sh", "-c", "echo $EXTERNAL_IP"]);
        h.ok(&all).trim().to_string()
    };
    let own = external(&[]);
    assert!(own.starts_with("100.100."), "{own}");
    let on_host = external(&["--network", "host"]);
    assert!(
        on_host.parse::<std::net::IpAddr>().is_ok() && on_host != own,
        "{on_host}"
    );
    assert_eq!(external(&["-e", "EXTERNAL_IP=192.0.2.7"]), "192.0.2.7");

    // The same port cannot be published twice; the error says why.
    let clash = h.run(&[
        "run", "-d", "--name", "clash", "-p", "18090:80", &h.image, "true",
    ]);
    assert!(!clash.status.success());
    assert!(String::from_utf8_lossy(&clash.stderr).contains("already published"));

    assert_eq!(h.ok(&["stop", "web"]).trim(), "web");
    let job = h.block_on(c.job(&jid("web"))).unwrap();
    assert_eq!(job.state, JobState::Exited);
    assert!(!h.ok(&["ps"]).contains("web"));
    assert!(h.ok(&["ps", "-a"]).contains("web"));
    h.ok(&["rm", "web"]);
    assert!(!h.ok(&["ps", "-a"]).contains("web"));

    let states: Vec<(JobState, Option<JobAction>)> = h.block_on(async {
        let mut seen = Vec::new();
        while let Ok(Ok(Some(e))) =
            tokio::time::timeout(Duration::from_secs(2), events.next()).await
        {
            if let host_api::EventPayload::Job { job, action } = e.payload {
                seen.push((job.state, action));
            }
        }
        seen
    });
    assert_eq!(
        states,
        [
            (JobState::Starting, None),
            (JobState::Running, None),
            (JobState::Exited, None),
            (JobState::Exited, Some(JobAction::Deleted))
        ]
    );
}

#[root_test(isolated)]
fn run_in_the_foreground_interactively_and_on_a_terminal() {
    let h = HostDaemon::start();
    // The image is pulled on demand.
    let out = h.run(&[
        "run",
        "--rm",
        &h.image,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).ends_with("err\n"));

    // A program the image lacks is refused before anything starts.
    let out = h.run(&["run", "--name", "nothing", &h.image, "/no/such/program"]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"/no/such/program\" not found in the image"),
        "{err}"
    );
    // Refused like any bad request: no record is left.
    assert!(!h.ok(&["ps", "-a"]).contains("nothing"));

    let mut child = h
        .cli()
        .args(["run", "-i", "--rm", &h.image, "sh", "-c", "echo ready; sh"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo typed-$((1+2))\nexit 3\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\ntyped-3\n");

    // `script` gives the CLI a terminal, as a person's shell would.
    let cmd = format!(
        "{} run -it --rm {} sh",
        integration::workspace_bin("flynn-host").display(),
        h.image
    );
    let mut script = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("FLYNN_HOST", format!("unix://{}", h.socket.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = script.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    stdin
        .write_all(b"tty; echo tty-$((2+2)); exit 5\n")
        .unwrap();
    let out = script.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tty-4"), "{text:?}");
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert_eq!(out.status.code(), Some(5), "{text:?}");
    assert!(h
        .block_on(h.client().jobs(&JobFilter::default()))
        .unwrap()
        .is_empty());
}

#[root_test(isolated)]
fn api_errors_are_json_with_stable_codes() {
    let mut h = HostDaemon::start();
    let base = format!("http://{}", h.tcp);
    let auth = format!("Authorization: Bearer {}", h.token());
    let code_of = |body: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{body}"));
        v["code"].as_str().unwrap().to_string()
    };
    let (body, status) = curl(&[&format!("{base}/jobs")]);
    assert_eq!(
        (status.as_str(), code_of(&body).as_str()),
        ("401", "unauthorized")
    );
    let (_, status) = curl(&["-H", "Authorization: Bearer wrong", &format!("{base}/jobs")]);
    assert_eq!(status, "401");
    let (body, status) = curl(&["-H", &auth, &format!("{base}/jobs")]);
    assert_eq!((status.as_str(), body.trim()), ("200", "[]"));
    let cases: &[(&str, &str, Option<&str>, &str, &str)] = &[
        ("POST", "/jobs", Some("{bad"), "400", "bad_request"),
        (
            "POST",
            "/jobs",
            Some(r#"{"image":"x","nope":1}"#),
            "400",
            "bad_request",
        ),
        (
            "POST",
            "/jobs",
            Some(r#"{"image":"x","id":"../x"}"#),
            "400",
            "bad_request",
        ),
        (
            "POST",
            "/jobs",
            Some(r#"{"image":"missing:v1"}"#),
            "404",
            "no_such_image",
        ),
        ("GET", "/jobs/nope", None, "404", "no_such_job"),
        (
            "POST",
            "/jobs/nope/signal",
            Some(r#"{"signal":"TERM"}"#),
            "404",
            "no_such_job",
        ),
        ("GET", "/jobs?state=sleeping", None, "400", "bad_request"),
        ("DELETE", "/volumes/none", None, "404", "no_such_volume"),
        (
            "POST",
            "/volumes",
            Some(r#"{"name":"../x"}"#),
            "400",
            "bad_request",
        ),
        (
            "POST",
            "/images",
            Some(r#"{"image":"UPPER/Case"}"#),
            "400",
            "bad_request",
        ),
        ("PUT", "/jobs", None, "405", "method_not_allowed"),
        ("GET", "/nowhere", None, "404", "not_found"),
    ];
    for (method, path, body, want_status, want_code) in cases {
        let url = format!("{base}{path}");
        let mut args = vec!["-X", method, "-H", &auth, &url];
        if let Some(b) = body {
            args.extend(["-d", b]);
        }
        let (got, status) = curl(&args);
        assert_eq!(
            (status.as_str(), code_of(&got).as_str()),
            (*want_status, *want_code),
            "{method} {path}: {got}"
        );
    }
    let big = h.state().join("big.json");
    std::fs::write(&big, "x".repeat(2 << 20)).unwrap();
    let data = format!("@{}", big.display());
    let url = format!("{base}/jobs");
    let (got, status) = curl(&["-X", "POST", "-H", &auth, "--data-binary", &data, &url]);
    assert_eq!(
        (status.as_str(), code_of(&got).as_str()),
        ("413", "payload_too_large")
    );
    let (doc, status) = curl(&["-H", &auth, &format!("{base}/openapi.json")]);
    assert_eq!(status, "200");
    assert!(doc.contains("\"openapi\""));
    let (status_body, _) = curl(&["-H", &auth, &format!("{base}/status")]);
    let status: serde_json::Value = serde_json::from_str(&status_body).unwrap();
    assert!(status["memory"]["total"].as_u64().unwrap() > 0);
    assert!(status["cpus"].as_u64().unwrap() >= 1);
    // Volumes through the CLI.
    h.ok(&["volume", "create", "data"]);
    assert!(h.ok(&["volume", "ls"]).contains("data"));
    h.ok(&["volume", "rm", "data"]);
    assert!(!h.ok(&["volume", "ls"]).contains("data"));
    // A draining host refuses new jobs with 409, leaving no record, across a restart.
    let out = h.ok(&["drain", "--timeout", "0"]);
    assert!(out.contains("is draining"), "{out}");
    h.kill9();
    h.spawn();
    assert!(h.block_on(h.client().status()).unwrap().draining);
    assert!(h.ok(&["status"]).contains("draining"));
    let jobs = format!("{base}/jobs");
    let new_job = [
        "-X",
        "POST",
        "-H",
        &auth,
        "-d",
        r#"{"image":"missing:v1"}"#,
        &jobs,
    ];
    let (got, status) = curl(&new_job);
    assert_eq!(
        (status.as_str(), code_of(&got).as_str()),
        ("409", "host_draining"),
        "{got}"
    );
    assert!(got.contains("flynn-host undrain"), "{got}");
    let (listed, _) = curl(&["-H", &auth, &jobs]);
    assert_eq!(listed.trim(), "[]");
    let (undrained, status) = curl(&["-X", "DELETE", "-H", &auth, &format!("{base}/drain")]);
    assert_eq!(status, "200");
    assert!(undrained.contains(r#""draining":false"#), "{undrained}");
    let (got, status) = curl(&new_job);
    assert_eq!(
        (status.as_str(), code_of(&got).as_str()),
        ("404", "no_such_image")
    );
}
