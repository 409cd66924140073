//! flynn-host as an attacker or a careless client meets it, over its API with curl: nested
//! unknown fields, ports the host uses, refused requests, clients that disconnect or send
//! half a request, secrets on disk, default limits and logs that a job makes huge.

use integration::root_test;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use host_api::{ErrorCode, JobState};
use integration::host::HostDaemon;
use integration::jid;

/// `curl` against the daemon's TCP API with its token; returns (body, status).
fn api(h: &HostDaemon, method: &str, path: &str, body: Option<&str>) -> (String, u16) {
    let url = format!("http://{}{path}", h.tcp);
    let auth = format!("Authorization: Bearer {}", h.token());
    let mut args = vec![
        "-sS",
        "--max-time",
        "60",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "-H",
        &auth,
    ];
    if let Some(b) = body {
        args.extend(["-d", b]);
    }
    args.push(&url);
    let out = integration::run(Command::new("curl").args(&args));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (body.to_string(), code.parse().unwrap_or(0))
}

fn job_body(h: &HostDaemon, id: &str, extra: &str) -> String {
    format!(
        r#"{{"id":"{id}","image":"{}","args":["sh","-c","pwd; sleep 0.2"]{extra}}}"#,
        h.image
    )
}

fn wait_state(h: &HostDaemon, id: &str, done: impl Fn(JobState) -> bool) -> JobState {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(j) = h.block_on(h.client().job(&jid(id))) {
            if done(j.state) {
                return j.state;
            }
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not reach the state"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[root_test(isolated)]
fn bad_requests_are_refused_whole_and_leave_nothing() {
    let h = HostDaemon::start();
    h.ok(&["pull", &h.image]);
    // Unknown fields in nested objects name the field and create nothing.
    for (extra, field) in [
        (r#","resources":{"memroy":67108864}"#, "memroy"),
        (
            r#","mounts":[{"source":"/tmp","target":"/x","read_only":true}]"#,
            "read_only",
        ),
        (r#","volumes":[{"name":"v","target":"/v","ro":true}]"#, "ro"),
        (r#","ports":[{"job":80,"hostip":"1.2.3.4"}]"#, "hostip"),
    ] {
        let (body, status) = api(&h, "POST", "/jobs", Some(&job_body(&h, "nested", extra)));
        assert_eq!(status, 400, "{extra}: {body}");
        assert!(body.contains(field), "{extra}: {body}");
    }
    // Refused by the runtime: still no record.
    for (extra, status) in [
        (r#","user":"nosuchuser""#, 400),
        (r#","volumes":[{"name":"nosuch","target":"/v"}]"#, 404),
        (r#","entrypoint":["/no/such/program"]"#, 400),
        (r#","working_dir":"/bin/busybox""#, 400),
    ] {
        let (body, got) = api(&h, "POST", "/jobs", Some(&job_body(&h, "refused", extra)));
        assert_eq!(got, status, "{extra}: {body}");
    }
    let (body, _) = api(&h, "GET", "/jobs", None);
    assert_eq!(body.trim(), "[]", "refused requests left records");

    // Ports: `host` may be left out; the daemon's own port, and too many, are refused.
    let (body, status) = api(
        &h,
        "POST",
        "/jobs",
        Some(&job_body(&h, "auto", r#","ports":[{"job":80}]"#)),
    );
    assert_eq!(status, 201, "{body}");
    let own = format!(r#","ports":[{{"job":80,"host":{}}}]"#, h.tcp.port());
    let (body, status) = api(&h, "POST", "/jobs", Some(&job_body(&h, "hijack", &own)));
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("port_in_use") && body.contains("used by a process on the host"),
        "{body}"
    );
    let many: Vec<String> = (0..65).map(|_| r#"{"job":80}"#.to_string()).collect();
    let many = format!(r#","ports":[{}]"#, many.join(","));
    let (body, status) = api(&h, "POST", "/jobs", Some(&job_body(&h, "many", &many)));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("at most 64"), "{body}");

    // A working directory the image lacks is made, as Docker does.
    let (body, status) = api(
        &h,
        "POST",
        "/jobs",
        Some(&job_body(&h, "cwd", r#","working_dir":"/srv/made""#)),
    );
    assert_eq!(status, 201, "{body}");
    wait_state(&h, "cwd", JobState::is_final);
    let log = h.ok(&["log", "cwd"]);
    assert_eq!(log.trim(), "/srv/made");

    // A client that goes away during a creation: the job is still recorded as it runs.
    let url = format!("http://{}/jobs", h.tcp);
    let auth = format!("Authorization: Bearer {}", h.token());
    let body = format!(
        r#"{{"id":"gone","image":"{}","args":["sleep","1"]}}"#,
        h.image
    );
    let _ = integration::run(
        Command::new("curl").args(["-sS", "-m", "0.05", "-H", &auth, "-d", &body, &url]),
    );
    assert_eq!(
        wait_state(&h, "gone", |s| s == JobState::Exited),
        JobState::Exited
    );
    // Force-deleting a job while it is being created removes it once the start has ended.
    let c = h.client();
    let image = h.image.clone();
    h.block_on(async move {
        let req = host_api::CreateJob {
            id: Some(jid("racer")),
            ..host_api::CreateJob::new(image, vec!["sleep".into(), "30".into()])
        };
        let creator = c.clone();
        let create = tokio::spawn(async move { creator.create_job(&req).await });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match c.delete_job(&jid("racer"), true).await {
                Ok(()) => break,
                Err(e) if e.code() == Some(ErrorCode::NoSuchJob) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(2)).await
                }
                Err(e) => panic!("force delete: {e}"),
            }
        }
        // The creation answers either way (201, or an error if the delete came first).
        let _ = create.await.unwrap();
    });
    wait_for_absent(&h, "racer");

    // Secrets on disk: the state directory and job files are root's alone.
    let state = h.state();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("host.redb")) & 0o077, 0);
    let (body, status) = api(
        &h,
        "POST",
        "/jobs",
        Some(&format!(
            r#"{{"id":"secret","image":"{}","env":{{"SECRET":"hunter2"}},"args":["sh","-c","echo $SECRET; sleep 30"]}}"#,
            h.image
        )),
    );
    assert_eq!(status, 201, "{body}");
    let dir = state.join("runtime/jobs/secret");
    for f in ["job.json", "log.jsonl"] {
        assert_eq!(mode(&dir.join(f)) & 0o077, 0, "{f} is readable by others");
    }
    // The run files are on the daemon's tmpfs, root's alone too.
    assert_eq!(mode(&state.join("runtime/run")), 0o700);
    let run = state.join("runtime/run/secret");
    for f in ["shim.json", "bundle/config.json"] {
        assert_eq!(mode(&run.join(f)) & 0o077, 0, "{f} is readable by others");
    }
    let config = run.join("bundle/config.json");
    let nobody = integration::run(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(&config),
    );
    assert!(
        !nobody.status.success(),
        "uid 65534 read a job's environment"
    );

    // Default limits apply to a job that names none.
    let script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
                  cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max";
    let out = h.ok(&["run", "--rm", &h.image, "sh", "-c", script]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, [(1u64 << 30).to_string().as_str(), "4096"], "{out}");
    h.ok(&["rm", "-f", "secret", "auto", "cwd", "gone"]);
}

fn wait_for_absent(h: &HostDaemon, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.block_on(h.client().job(&jid(id))).is_ok() {
        assert!(Instant::now() < deadline, "{id} is still listed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !h.state().join("runtime/jobs").join(id).exists(),
        "{id} left files"
    );
}

#[root_test(isolated)]
fn half_sent_requests_cannot_use_up_the_daemon() {
    let h = HostDaemon::start_with(&[
        "--header-timeout",
        "2",
        "--max-connections",
        "16",
        "--body-timeout",
        "2",
    ]);
    let pid = h.pid().unwrap();
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let before = fds();
    // No token is needed to connect and send half a header.
    let mut slow: Vec<std::net::TcpStream> = (0..64)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(h.tcp).unwrap();
            s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let held = fds();
    assert!(
        held <= before + 16 + 4,
        "the daemon holds {held} fds (was {before})"
    );
    // The daemon closes them after the header timeout, and answers a real client meanwhile.
    let (body, status) = api(&h, "GET", "/status", None);
    assert_eq!(status, 200, "{body}");
    // A body announced longer than what is sent: 408 once the body timeout passes.
    let url = format!("http://{}/jobs", h.tcp);
    let auth = format!("Authorization: Bearer {}", h.token());
    let out = integration::run(Command::new("curl").args([
        "-sS",
        "--max-time",
        "30",
        "-w",
        "\n%{http_code}",
        "-H",
        &auth,
        "-H",
        "Content-Length: 10485",
        "-d",
        r#"{"image":1}"#,
        &url,
    ]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.ends_with("408") && text.contains("request_timeout"),
        "{text}"
    );
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = Vec::new();
        // EOF (or a reset) once the server gives up on it, perhaps after a 408.
        let _ = s.read_to_end(&mut buf);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(fds() <= before + 2, "connections were not closed");
}

#[root_test(isolated)]
fn logs_are_capped_and_read_in_bounded_memory() {
    let h = HostDaemon::start_with(&["--log-max-size", "40M"]);
    h.ok(&["pull", &h.image]);
    // About 60 MB of records: over the cap, so the oldest are rotated out.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "loud",
        &h.image,
        "sh",
        "-c",
        "dd if=/dev/zero bs=1M count=24 2>/dev/null | base64; echo DONE",
    ]);
    wait_state(&h, "loud", JobState::is_final);
    let dir = h.state().join("runtime/jobs/loud");
    let size = |f: &str| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
    let kept = size("log.jsonl") + size("log.1.jsonl");
    assert!(kept <= 40 << 20, "the log holds {kept} bytes, over its cap");
    assert!(size("log.1.jsonl") > 0, "the log was rotated");
    let pid = h.pid().unwrap();
    // The daemon's peak memory, reset first.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let hwm = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            << 10
    };
    let base = hwm();
    let t = Instant::now();
    let tail = h.ok(&["log", "-n", "1", "loud"]);
    assert_eq!(tail.trim(), "DONE");
    let tail_took = t.elapsed();
    let readers: Vec<_> = (0..10)
        .map(|i| {
            let mut c = h.cli();
            c.args(["log", "loud"]);
            if i % 2 == 0 {
                c.args(["-n", "5000"]);
            }
            c.stdout(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let mut total = 0;
    for r in readers {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success());
        total += out.stdout.len();
        assert!(out.stdout.ends_with(b"DONE\n"));
    }
    // A record holds its line and about 70 bytes of JSON around it.
    assert!(
        total as u64 > 5 * kept / 3,
        "five full reads of the kept log: {total} bytes"
    );
    let grew = hwm().saturating_sub(base);
    assert!(
        grew < 16 << 20,
        "ten readers grew the daemon by {grew} bytes"
    );
    eprintln!("tail -n 1 of a {kept}-byte log took {tail_took:?}; ten readers grew the daemon by {grew} bytes");
    h.ok(&["rm", "loud"]);
}
