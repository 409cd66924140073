//! The router as it runs on the platform: a job on a flynn-host (host network) from the image
//! images/ builds, its backends web jobs the host registers in discoverd (itself a job); a
//! web job that stops leaves the router's backends, and a new one joins, with no restart.

use std::process::Command;
use std::time::{Duration, Instant};

use integration::host::HostDaemon;
use integration::root_test;
use integration::router::curl_output;
use integration::workspace_bin;

fn until(h: &HostDaemon, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        if Instant::now() > deadline {
            let logs = h.run(&["logs", "router"]);
            panic!(
                "timed out waiting: {what}\nrouter log:\n{}{}\nps:\n{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr),
                h.ok(&["ps", "-a"])
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(port: u16, host: &str) -> String {
    let out = curl_output(&[
        "-H",
        &format!("Host: {host}"),
        &format!("http://127.0.0.1:{port}/"),
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[root_test(isolated)]
fn the_router_runs_as_a_job_and_follows_web_jobs_through_discoverd() {
    let h = HostDaemon::start_with(&["--discoverd", "http://127.0.0.1:1111"]);
    let bin_dir = workspace_bin("flynn-router")
        .parent()
        .unwrap()
        .to_path_buf();
    let state = h.state().display().to_string();
    h.ok(&[
        "bootstrap",
        "--state",
        &state,
        "--bin-dir",
        &bin_dir.display().to_string(),
    ]);
    let t = tempfile::tempdir().unwrap();
    integration::run_ok(
        Command::new(workspace_bin("flynn-images"))
            .args(["build", "router", "--bin-dir"])
            .arg(&bin_dir)
            .arg("--out")
            .arg(t.path().join("oci"))
            .args(["--tag", "flynn/router:test", "--store"])
            .arg(h.state().join("pinkerton")),
    );
    h.ok(&["pull", &h.image]);
    let web = |name: &str| {
        let script = format!("echo {name} > /www/index.html; exec httpd -f -p 8080 -h /www");
        h.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--service",
            "web",
            "-p",
            "8080",
            &h.image,
            "sh",
            "-c",
            &script,
        ]);
    };
    web("web-1");
    web("web-2");

    let http = integration::free_port();
    let api = integration::free_port();
    let routes =
        r#"{"routes":[{"type":"http","id":"web","domain":"example.test","service":"web"}]}"#;
    let run = "echo \"$ROUTES\" > /tmp/routes.json && exec /bin/flynn-router --routes-file /tmp/routes.json";
    h.ok(&[
        "run",
        "-d",
        "--name",
        "router",
        "--network",
        "host",
        "-e",
        &format!("ROUTES={routes}"),
        "-e",
        &format!("ROUTER_HTTP=127.0.0.1:{http}"),
        "-e",
        "ROUTER_HTTPS=",
        "-e",
        &format!("ROUTER_API=127.0.0.1:{api}"),
        "-e",
        "DISCOVERD=http://127.0.0.1:1111",
        "--entrypoint",
        "/bin/sh",
        "flynn/router:test",
        "-c",
        run,
    ]);
    until(&h, "both web jobs answer through the router", || {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            seen.insert(get(http, "example.test"));
        }
        seen.contains("web-1\n") && seen.contains("web-2\n")
    });

    h.ok(&["stop", "web-1"]);
    until(&h, "web-1 leaves the router", || {
        (0..10).all(|_| get(http, "example.test") == "web-2\n")
    });
    web("web-3");
    until(&h, "web-3 joins", || {
        (0..20).any(|_| get(http, "example.test") == "web-3\n")
    });
    let logs = h.ok(&["logs", "router"]);
    // One JSON access log line per request, naming the route and the backend.
    let line = logs
        .lines()
        .find(|l| l.contains("\"status\":200"))
        .expect("an access log line");
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(
        (entry["route"].as_str(), entry["host"].as_str()),
        (Some("web"), Some("example.test"))
    );
    assert!(
        entry["backend"]
            .as_str()
            .unwrap()
            .starts_with("100.100.0.1:"),
        "{line}"
    );
    h.ok(&["rm", "-f", "router", "web-1", "web-2", "web-3", "discoverd"]);
}
