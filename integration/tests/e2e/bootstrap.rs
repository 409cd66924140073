//! Layer 1's first service as an ordinary job: `flynn-host bootstrap` builds discoverd's image
//! with images/ and starts it; a web job registered as service `web` is found through the
//! HTTP API and through DNS from inside another job, and stopping it removes it.

use integration::root_test;
use std::time::{Duration, Instant};

use integration::host::HostDaemon;

#[root_test(isolated)]
fn bootstrap_runs_discoverd_and_jobs_find_each_other() {
    let h = HostDaemon::start_with(&["--discoverd", "http://127.0.0.1:1111"]);
    let bin_dir = integration::workspace_bin("discoverd")
        .parent()
        .unwrap()
        .to_path_buf();
    let state = h.state().display().to_string();
    let out = h.run(&[
        "bootstrap",
        "--state",
        &state,
        "--bin-dir",
        &bin_dir.display().to_string(),
    ]);
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{progress}");
    assert!(
        progress.contains("discoverd: started as job discoverd"),
        "{progress}"
    );
    let ps = h.ok(&["ps"]);
    assert!(ps.contains("flynn/discoverd:latest"), "{ps}");
    let d = discoverd::Client::new("http://127.0.0.1:1111".parse().unwrap());

    // The host registers itself (it retries until discoverd is up).
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.block_on(d.instances("flynn-host")).unwrap().len() != 1 {
        assert!(
            Instant::now() < deadline,
            "the host did not register itself"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    h.ok(&["pull", &h.image]);
    let web = "echo found-by-name > /www/index.html; exec httpd -f -p 8080 -h /www";
    h.ok(&[
        "run",
        "-d",
        "--name",
        "web-1",
        "--service",
        "web",
        "-p",
        "8080",
        &h.image,
        "sh",
        "-c",
        web,
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let instances = loop {
        let i = h.block_on(d.instances("web")).unwrap();
        if !i.is_empty() {
            break i;
        }
        assert!(Instant::now() < deadline, "web-1 was not registered");
        std::thread::sleep(Duration::from_millis(100));
    };
    let job = h
        .block_on(h.client().job(&integration::jid("web-1")))
        .unwrap();
    assert_eq!(instances[0].id, "web-1");
    // Registered where other jobs can reach it: the host (here its bridge gateway) and the
    // published port; a job's own address is not reachable from other jobs.
    let published = job.ports[0].host;
    assert_eq!(
        instances[0].addr.to_string(),
        format!("100.100.0.1:{published}")
    );

    // Another job finds it by name: its resolv.conf points at discoverd.
    let script = format!(
        "cat /etc/resolv.conf; nslookup web.discoverd; wget -qO- http://web.discoverd:{published}/"
    );
    let found = h.ok(&["run", "--rm", &h.image, "sh", "-c", &script]);
    assert!(found.contains("found-by-name"), "{found}");
    assert!(found.contains("nameserver 100.100.0.1"), "{found}");

    // An ordinary job reaches discoverd but cannot write it: not register itself as another
    // service's backend, not deregister the host.
    let host_id = h.block_on(d.instances("flynn-host")).unwrap()[0].id.clone();
    h.ok(&["run", "-d", "--name", "prober", &h.image, "sleep", "60"]);
    let pid = h
        .block_on(h.client().job(&integration::jid("prober")))
        .unwrap()
        .pid
        .unwrap();
    // curl in the job's network namespace: where the job's own requests come from.
    let pid = pid.to_string();
    let from_job = |method: &str, path: &str, body: &str| -> String {
        let url = format!("http://100.100.0.1:1111{path}");
        integration::http_status(
            &["nsenter", "-t", &pid, "-n"],
            &["-X", method, "-d", body, &url],
        )
    };
    let register = from_job(
        "PUT",
        "/services/victim-web/instances/evil",
        r#"{"addr":"1.2.3.4:80"}"#,
    );
    let deregister = from_job(
        "DELETE",
        &format!("/services/flynn-host/instances/{host_id}"),
        "",
    );
    let read = from_job("GET", "/services/flynn-host/instances", "");
    assert_eq!(
        (register.as_str(), deregister.as_str(), read.as_str()),
        ("401", "401", "200")
    );
    h.ok(&["rm", "-f", "prober"]);
    assert!(h.block_on(d.instances("victim-web")).unwrap().is_empty());
    assert_eq!(h.block_on(d.instances("flynn-host")).unwrap().len(), 1);

    // A service with an HTTP check is registered only once `GET /health` passes: while the
    // file is missing, httpd answers 404 and the job stays out of discoverd.
    let v = h.ok(&["volume", "create", "checked-www"]);
    assert_eq!(v.trim(), "checked-www");
    h.ok(&[
        "run",
        "-d",
        "--name",
        "web-2",
        "--service",
        "checked",
        "--check-http",
        "/health",
        "-p",
        "8080",
        "-v",
        "checked-www:/www",
        &h.image,
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/www",
    ]);
    let job = h
        .block_on(h.client().job(&integration::jid("web-2")))
        .unwrap();
    let health = format!("http://100.100.0.1:{}/health", job.ports[0].host);
    let status = || integration::http_status(&[], &[&health]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while status() != "404" {
        assert!(Instant::now() < deadline, "web-2 did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Several check periods (250 ms each) with the check failing.
    std::thread::sleep(Duration::from_secs(1));
    assert!(h.block_on(d.instances("checked")).unwrap().is_empty());
    let www = h.state().join("runtime/volumes/checked-www/data");
    std::fs::write(www.join("health"), "ok\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.block_on(d.instances("checked")).unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "web-2 was not registered once healthy"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status(), "200");

    // With a timing, the check goes on: two failures in a row take the job out of discoverd
    // while it runs, two passes bring it back; web-2 (no timing) stays registered.
    let timed = |id: &str, path: &str, start_timeout_ms: Option<u64>| {
        let mut req = host_api::CreateJob::new(
            h.image.clone(),
            ["httpd", "-f", "-p", "8080", "-h", "/www"]
                .map(String::from)
                .to_vec(),
        );
        req.id = Some(integration::jid(id));
        req.config.ports = vec![host_api::PortMap {
            host: 0,
            job: 8080,
            proto: Default::default(),
        }];
        req.config.volumes = vec![host_api::VolumeMount {
            name: "checked-www".into(),
            target: "/www".into(),
            readonly: true,
        }];
        req.service = Some("timed".parse().unwrap());
        req.service_check = Some(host_api::HttpCheck {
            path: path.into(),
            status: None,
        });
        req.service_check_timing = Some(host_api::CheckTiming {
            interval_ms: 200,
            threshold: 2,
            start_timeout_ms,
        });
        h.block_on(h.client().create_job(&req)).unwrap();
    };
    let registered = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while h.block_on(d.instances("timed")).unwrap().len() != n {
            assert!(Instant::now() < deadline, "never {n} instances of timed");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    timed("web-3", "/health", Some(20_000));
    registered(1);
    std::fs::remove_file(www.join("health")).unwrap();
    registered(0);
    assert_eq!(
        h.block_on(h.client().job(&integration::jid("web-3")))
            .unwrap()
            .state,
        host_api::JobState::Running
    );
    assert_eq!(h.block_on(d.instances("checked")).unwrap().len(), 1);
    std::fs::write(www.join("health"), "ok\n").unwrap();
    registered(1);

    // A job that does not pass within its start timeout is stopped, failed with why.
    timed("web-4", "/never", Some(1_500));
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let j = h
            .block_on(h.client().job(&integration::jid("web-4")))
            .unwrap();
        if j.state.is_final() {
            break j;
        }
        assert!(Instant::now() < deadline, "web-4 still runs: {j:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ended.state, host_api::JobState::Failed, "{ended:?}");
    let why = ended.error.unwrap_or_default();
    assert!(
        why.contains("its service timed did not pass its health check within 1.5 s"),
        "{why}"
    );
    assert_eq!(h.block_on(d.instances("timed")).unwrap().len(), 1);
    h.ok(&["rm", "-f", "web-3", "web-4"]);
    h.ok(&["rm", "-f", "web-2"]);

    h.ok(&["stop", "web-1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h.block_on(d.instances("web")).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "web-1 was not deregistered");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Bootstrapping again is harmless.
    let again = h.ok(&[
        "bootstrap",
        "--state",
        &state,
        "--bin-dir",
        &bin_dir.display().to_string(),
    ]);
    assert!(again.is_empty() || again.contains("discoverd"), "{again}");
}

#[root_test(isolated)]
fn bootstrap_on_etcd_keeps_discoverd_state_in_the_cluster() {
    let h = HostDaemon::start_with(&["--discoverd", "http://127.0.0.1:1111"]);
    let etcd = integration::etcd::EtcdCluster::start(1);
    let bin_dir = integration::workspace_bin("discoverd")
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
        "--etcd",
        &etcd.endpoints().join(","),
    ]);
    // The host's own registration lands in etcd, where other hosts' discoverds would see it.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = integration::run_ok(
            std::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &etcd.endpoints().join(",")])
                .args([
                    "get",
                    "--prefix",
                    "--keys-only",
                    "/flynn/discoverd/instances/flynn-host/",
                ]),
        );
        if out.contains("/flynn/discoverd/instances/flynn-host/") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no host registration in etcd: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
