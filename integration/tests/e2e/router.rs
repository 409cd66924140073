//! The router against real clients (curl, wrk) and real backends (`test-backend` processes
//! registered in a real discoverd), each test in namespaces of its own: routing, forwarding
//! headers, faults and retries, draining, sticky and leader routes, h2c backends, and route
//! churn under load. `router_wire` has TLS, upgrades, streaming, TCP and hostile clients.

use std::process::Command;

use integration::discoverd::Discoverd;
use integration::root_test;
use integration::router::{curl, curl_output, Backend, RouterProcess};
use router_api::{EventKind, HttpRoute, Route};

#[root_test(isolated)]
fn routes_by_domain_and_path_balance_and_set_forwarding_headers() {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &[]);
    let (a, b, api) = (
        Backend::start("web-a"),
        Backend::start("web-b"),
        Backend::start("api-1"),
    );
    let _h = [
        r.register(&d, "web", &a),
        r.register(&d, "web", &b),
        r.register(&d, "api", &api),
    ];
    let mut api_route = HttpRoute::new("api", "example.test", "api");
    api_route.path = "/api/".into();
    r.set_routes(&[
        Route::Http(HttpRoute::new("web", "Example.TEST", "web")),
        Route::Http(api_route),
        Route::Http(HttpRoute::new("wild", "*.apps.test", "api")),
    ]);
    r.wait_backends("web", 2);
    r.wait_backends("api", 1);

    // Both backends answer (the less loaded of two random ones, so both get requests).
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (code, body) = r.get("EXAMPLE.test:8080", "/");
        assert_eq!(code, "200");
        names.insert(body.trim().to_string());
    }
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["web-a", "web-b"]
    );
    assert_eq!(r.get("example.test", "/api/x").1.trim(), "api-1");
    assert_eq!(r.get("example.test", "/api").1.trim(), "api-1");
    assert_ne!(r.get("example.test", "/apix").1.trim(), "api-1");
    assert_eq!(r.get("deep.x.apps.test", "/").1.trim(), "api-1");
    let (code, body) = r.get("nothing.test", "/");
    assert_eq!((code.as_str(), body.as_str()), ("404", "Not Found\n"));

    // What the backend sees.
    let out = curl(&[
        "-H",
        "Host: example.test",
        "-H",
        "X-Forwarded-For: 192.0.2.1",
        "-H",
        "X-Request-Id: client-chosen-id-0123456789",
        "-H",
        "Connection: close, X-Hop",
        "-H",
        "X-Hop: secret",
        &format!("{}/headers?q=1", r.url()),
    ]);
    let h: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(h["x-forwarded-for"], "192.0.2.1, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-port"], r.http.port().to_string());
    assert_eq!(h["x-request-id"], "client-chosen-id-0123456789");
    assert_eq!(h["path"], "/headers?q=1");
    assert_eq!(h["host"], "example.test");
    assert!(
        h.get("x-hop").is_none(),
        "a header Connection names is hop-by-hop: {h}"
    );
    assert_eq!(h["x-request-start"].as_str().unwrap().len(), 13);
    let out = curl(&[
        "-H",
        "Host: example.test",
        "-H",
        "X-Request-Id: bad id",
        &format!("{}/headers", r.url()),
    ]);
    let h: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        h["x-request-id"].as_str().unwrap().len(),
        36,
        "replaced by a UUID: {h}"
    );

    // HTTP/2 from the client (prior knowledge on plain TCP); HTTP/1.1 to the backend.
    let out = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "Host: example.test",
        &format!("{}/headers", r.url()),
    ]);
    let h: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(h["version"], "HTTP/1.1");
    assert_eq!(h["host"], "example.test");

    // Metrics count requests by route and status.
    let m = curl(&[&format!("http://{}/metrics", r.api)]);
    assert!(
        m.contains("router_http_requests_total{route=\"web\",status=\"200\"}"),
        "{m}"
    );
    assert!(
        m.contains("router_http_requests_total{route=\"\",status=\"404\"}"),
        "{m}"
    );
    assert!(m.contains("router_backends_up{service=\"web\"} 2"), "{m}");
}

#[root_test(isolated)]
fn no_backend_is_503_dead_backends_are_retried_elsewhere_and_a_killed_one_is_502() {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &[]);
    r.set_routes(&[Route::Http(HttpRoute::new("web", "example.test", "web"))]);
    let (code, body) = r.get("example.test", "/");
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("503", "Service Unavailable\n")
    );

    // A backend killed mid-request: 502.
    let mut a = Backend::start("web-a");
    let ha = r.register(&d, "web", &a);
    r.wait_backends("web", 1);
    let url = format!("{}/hold", r.url());
    let held = std::thread::spawn(move || {
        curl_output(&["-H", "Host: example.test", "-w", "%{http_code}", &url])
    });
    a.wait_seen("/hold");
    a.kill();
    let out = held.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Bad Gateway\n502");

    // The dead one is still registered: every request goes to the live one (connect
    // failures are retried on another backend; the dead one is ejected).
    let b = Backend::start("web-b");
    let _hb = r.register(&d, "web", &b);
    r.wait_backends("web", 2);
    for _ in 0..20 {
        assert_eq!(
            r.get("example.test", "/"),
            ("200".to_string(), "web-b\n".to_string())
        );
    }
    drop(ha);
    drop(b);
    // Every backend gone, then back: 503, then 200.
    r.block_on(d.client().deregister("web", "web-a")).unwrap();
    r.block_on(d.client().deregister("web", "web-b")).unwrap();
    r.wait_backends("web", 0);
    assert_eq!(r.get("example.test", "/").0, "503");
    let c = Backend::start("web-c");
    let _hc = r.register(&d, "web", &c);
    r.wait_backends("web", 1);
    assert_eq!(r.get("example.test", "/").1, "web-c\n");
}

#[root_test(isolated)]
fn draining_backends_finish_in_flight_requests_and_are_reported_drained() {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &[]);
    let mut route = HttpRoute::new("web", "example.test", "web");
    route.drain_backends = true;
    r.set_routes(&[Route::Http(route)]);
    let (a, b) = (Backend::start("web-a"), Backend::start("web-b"));
    let ha = r.register(&d, "web", &a);
    r.wait_backends("web", 1);
    let mut events = r
        .block_on(
            r.api()
                .events(&[EventKind::BackendDown, EventKind::BackendDrained]),
        )
        .unwrap();

    let url = format!("{}/hold", r.url());
    let held = std::thread::spawn(move || curl(&["-H", "Host: example.test", &url]));
    a.wait_seen("/hold");
    let _hb = r.register(&d, "web", &b);
    r.wait_backends("web", 2);
    r.block_on(ha.stop()).unwrap();
    let down = r.block_on(events.next()).unwrap().unwrap();
    assert_eq!(
        (down.event, down.backend.unwrap().addr),
        (EventKind::BackendDown, a.addr)
    );
    // New requests go to the backend that stays; the held one is still in flight.
    for _ in 0..10 {
        assert_eq!(r.get("example.test", "/").1, "web-b\n");
    }
    let inflight = r.block_on(r.api().backends()).unwrap();
    assert!(inflight.iter().all(|x| x.addr != a.addr), "{inflight:?}");
    a.get("/release");
    assert_eq!(held.join().unwrap(), "web-a released\n");
    let drained = r.block_on(events.next()).unwrap().unwrap();
    assert_eq!(drained.event, EventKind::BackendDrained);
    assert_eq!(drained.backend.unwrap().addr, a.addr);
}

#[root_test(isolated)]
fn a_thousand_route_changes_under_load_fail_no_request() {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &["--routes-poll", "2ms"]);
    let (a, b) = (Backend::start("web-a"), Backend::start("web-b"));
    let _h = [r.register(&d, "web", &a), r.register(&d, "web", &b)];
    let web = HttpRoute::new("web", "example.test", "web");
    r.set_routes(&[Route::Http(web.clone())]);
    r.wait_backends("web", 2);
    // wrk runs until the churn is over (SIGINT makes it stop and report).
    let wrk = Command::new("wrk")
        .args(["-t1", "-c8", "-d600s", "-H", "Host: example.test", &r.url()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("wrk runs");
    for applied in 0..1000 {
        let mut w = web.clone();
        w.sticky = applied % 2 == 1;
        let mut churn = HttpRoute::new(
            format!("churn-{applied}"),
            format!("c{applied}.test"),
            "web",
        );
        churn.path = format!("/p{}/", applied % 7);
        r.set_routes(&[Route::Http(w), Route::Http(churn)]);
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(wrk.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = wrk.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "{text}");
    assert!(!text.contains("Socket errors"), "{text}");
    assert!(text.contains("requests in"), "{text}");
}

#[root_test(isolated)]
fn sticky_cookies_leader_routes_h2c_backends_and_a_custom_503_page() {
    let d = Discoverd::start();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("503.html");
    std::fs::write(&page, "<h1>down for maintenance</h1>").unwrap();
    let r = RouterProcess::start(&d, &["--error-page-503", page.to_str().unwrap()]);
    let (a, b) = (Backend::start("web-a"), Backend::start("web-b"));
    let _h = [r.register(&d, "web", &a), r.register(&d, "web", &b)];
    let mut sticky = HttpRoute::new("sticky", "sticky.test", "web");
    sticky.sticky = true;
    let mut leader = HttpRoute::new("leader", "leader.test", "web");
    leader.leader = true;
    let mut h2 = HttpRoute::new("h2", "h2.test", "web");
    h2.http2 = true;
    r.set_routes(&[
        Route::Http(sticky),
        Route::Http(leader),
        Route::Http(h2),
        Route::Http(HttpRoute::new("empty", "empty.test", "nobody")),
    ]);
    r.wait_backends("web", 2);

    // The first answer sets the cookie; with it every request goes to the same backend.
    let jar = dir.path().join("jar");
    let jar = jar.to_str().unwrap();
    let first = curl(&["-c", jar, "-H", "Host: sticky.test", &r.url()]);
    let cookies = std::fs::read_to_string(jar).unwrap();
    assert!(cookies.contains("_backend"), "{cookies}");
    assert!(
        !cookies.contains(&a.addr.port().to_string()),
        "the cookie is sealed: {cookies}"
    );
    for _ in 0..30 {
        assert_eq!(
            curl(&["-b", jar, "-H", "Host: sticky.test", &r.url()]),
            first
        );
    }
    // A tampered cookie is ignored: the request is served and a fresh cookie set.
    let out = curl(&[
        "-i",
        "-H",
        "Host: sticky.test",
        "-H",
        "Cookie: _backend=AAAAtampered",
        &r.url(),
    ]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("set-cookie: _backend="),
        "{out}"
    );

    // Leader routes: only the oldest instance (web-a registered first).
    for _ in 0..20 {
        assert_eq!(r.get("leader.test", "/").1, "web-a\n");
    }
    // h2c to the backend when the route asks for it.
    let out = curl(&["-H", "Host: h2.test", &format!("{}/headers", r.url())]);
    let h: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(h["version"], "HTTP/2.0", "{h}");
    // No backend: the operator's page.
    let (code, body) = r.get("empty.test", "/");
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("503", "<h1>down for maintenance</h1>")
    );
}
