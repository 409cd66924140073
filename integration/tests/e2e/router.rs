//! The router against real clients (curl, wrk, raw sockets) and real backends
//! (`test-backend` processes registered in a real discoverd), each test in namespaces of its
//! own: routing, headers, TLS by SNI, HTTP/2, upgrades, streaming, TCP routes, PROXY
//! protocol, faults, draining, hostile requests and route churn under load.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use discoverd_api::client::Heartbeat;
use integration::discoverd::{reg, Discoverd};
use integration::root_test;
use integration::router::{curl, curl_output, Backend, RouterProcess};
use router_api::{Certificate, EventKind, HttpRoute, Route, TcpRoute};

fn http(id: &str, domain: &str, service: &str) -> HttpRoute {
    HttpRoute::new(id, domain, service)
}

/// Registers `b` as an instance of `service` (kept alive until the heartbeat drops).
fn register(r: &RouterProcess, d: &Discoverd, service: &str, b: &Backend) -> Heartbeat {
    let c = d.client();
    let addr = b.addr.to_string();
    r.block_on(async {
        c.register_alive(service, &b.name, reg(&addr), Duration::from_secs(10))
            .await
            .unwrap()
    })
}

/// Waits until the router has exactly `n` live backends for `service`.
fn wait_backends(r: &RouterProcess, service: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = r.block_on(r.api().backends()).unwrap();
        if got.iter().filter(|b| b.service == service).count() == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service}: want {n} backends, have {got:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until a request for `path` has reached backend `b`.
fn wait_seen(b: &Backend, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.get("/seen").contains(path) {
        assert!(
            Instant::now() < deadline,
            "no request for {path} reached {}",
            b.name
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn get(r: &RouterProcess, host: &str, path: &str) -> (String, String) {
    let out = curl_output(&[
        "-H",
        &format!("Host: {host}"),
        "-w",
        "\n%{http_code}",
        &format!("{}{path}", r.url()),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.to_string())
}

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
        register(&r, &d, "web", &a),
        register(&r, &d, "web", &b),
        register(&r, &d, "api", &api),
    ];
    let mut api_route = http("api", "example.test", "api");
    api_route.path = "/api/".into();
    r.set_routes(&[
        Route::Http(http("web", "Example.TEST", "web")),
        Route::Http(api_route),
        Route::Http(http("wild", "*.apps.test", "api")),
    ]);
    wait_backends(&r, "web", 2);
    wait_backends(&r, "api", 1);

    // Both backends answer (the less loaded of two random ones, so both get requests).
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (code, body) = get(&r, "EXAMPLE.test:8080", "/");
        assert_eq!(code, "200");
        names.insert(body.trim().to_string());
    }
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["web-a", "web-b"]
    );
    assert_eq!(get(&r, "example.test", "/api/x").1.trim(), "api-1");
    assert_eq!(get(&r, "example.test", "/api").1.trim(), "api-1");
    assert_ne!(get(&r, "example.test", "/apix").1.trim(), "api-1");
    assert_eq!(get(&r, "deep.x.apps.test", "/").1.trim(), "api-1");
    let (code, body) = get(&r, "nothing.test", "/");
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
    r.set_routes(&[Route::Http(http("web", "example.test", "web"))]);
    let (code, body) = get(&r, "example.test", "/");
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("503", "Service Unavailable\n")
    );

    // A backend killed mid-request: 502.
    let mut a = Backend::start("web-a");
    let ha = register(&r, &d, "web", &a);
    wait_backends(&r, "web", 1);
    let url = format!("{}/hold", r.url());
    let held = std::thread::spawn(move || {
        curl_output(&["-H", "Host: example.test", "-w", "%{http_code}", &url])
    });
    wait_seen(&a, "/hold");
    a.kill();
    let out = held.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Bad Gateway\n502");

    // The dead one is still registered: every request goes to the live one (connect
    // failures are retried on another backend; the dead one is ejected).
    let b = Backend::start("web-b");
    let _hb = register(&r, &d, "web", &b);
    wait_backends(&r, "web", 2);
    for _ in 0..20 {
        assert_eq!(
            get(&r, "example.test", "/"),
            ("200".to_string(), "web-b\n".to_string())
        );
    }
    drop(ha);
    drop(b);
    // Every backend gone, then back: 503, then 200.
    r.block_on(d.client().deregister("web", "web-a")).unwrap();
    r.block_on(d.client().deregister("web", "web-b")).unwrap();
    wait_backends(&r, "web", 0);
    assert_eq!(get(&r, "example.test", "/").0, "503");
    let c = Backend::start("web-c");
    let _hc = register(&r, &d, "web", &c);
    wait_backends(&r, "web", 1);
    assert_eq!(get(&r, "example.test", "/").1, "web-c\n");
}

#[root_test(isolated)]
fn draining_backends_finish_in_flight_requests_and_are_reported_drained() {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &[]);
    let mut route = http("web", "example.test", "web");
    route.drain_backends = true;
    r.set_routes(&[Route::Http(route)]);
    let (a, b) = (Backend::start("web-a"), Backend::start("web-b"));
    let ha = register(&r, &d, "web", &a);
    wait_backends(&r, "web", 1);
    let mut events = r
        .block_on(
            r.api()
                .events(&[EventKind::BackendDown, EventKind::BackendDrained]),
        )
        .unwrap();

    let url = format!("{}/hold", r.url());
    let held = std::thread::spawn(move || curl(&["-H", "Host: example.test", &url]));
    wait_seen(&a, "/hold");
    let _hb = register(&r, &d, "web", &b);
    wait_backends(&r, "web", 2);
    r.block_on(ha.stop()).unwrap();
    let down = r.block_on(events.next()).unwrap().unwrap();
    assert_eq!(
        (down.event, down.backend.unwrap().addr),
        (EventKind::BackendDown, a.addr)
    );
    // New requests go to the backend that stays; the held one is still in flight.
    for _ in 0..10 {
        assert_eq!(get(&r, "example.test", "/").1, "web-b\n");
    }
    let inflight = r.block_on(r.api().backends()).unwrap();
    assert!(inflight.iter().all(|x| x.addr != a.addr), "{inflight:?}");
    a.get("/release");
    assert_eq!(held.join().unwrap(), "web-a released\n");
    let drained = r.block_on(events.next()).unwrap().unwrap();
    assert_eq!(drained.event, EventKind::BackendDrained);
    assert_eq!(drained.backend.unwrap().addr, a.addr);
}

/// A CA and certificates it signs, for TLS tests.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "router test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    fn cert(&self, name: &str) -> Certificate {
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Certificate {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

#[root_test(isolated)]
fn tls_picks_certificates_by_sni_from_the_live_table_and_speaks_h2() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let fallback = ca.cert("default.test");
    std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(dir.path().join("d.crt"), &fallback.cert).unwrap();
    std::fs::write(dir.path().join("d.key"), &fallback.key).unwrap();
    let d = Discoverd::start();
    let (crt, key) = (dir.path().join("d.crt"), dir.path().join("d.key"));
    let r = RouterProcess::start(
        &d,
        &[
            "--tls-cert",
            crt.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let a = Backend::start("web-a");
    let _h = register(&r, &d, "web", &a);
    let mut route = http("a", "a.test", "web");
    route.certificate = Some(ca.cert("a.test"));
    r.set_routes(&[
        Route::Http(route.clone()),
        Route::Http(http("b", "b.test", "web")),
    ]);
    wait_backends(&r, "web", 1);
    let cafile = dir.path().join("ca.pem");
    let tls_get = |name: &str, extra: &[&str]| {
        let resolve = format!("{name}:{}:127.0.0.1", r.https.port());
        let url = format!("https://{name}:{}/headers", r.https.port());
        let mut args = vec![
            "--cacert",
            cafile.to_str().unwrap(),
            "--resolve",
            &resolve,
            "-w",
            "\n%{http_version} %{certs}",
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        curl_output(&args)
    };
    let out = tls_get("a.test", &["--http2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\n2 "), "h2 through ALPN: {text}");
    assert!(text.contains("\"x-forwarded-proto\":\"https\""), "{text}");
    // b.test has no certificate of its own: the default one, which is not for b.test.
    let out = tls_get("b.test", &[]);
    assert!(
        !out.status.success(),
        "the default certificate does not name b.test"
    );
    let out = tls_get("default.test", &["-H", "Host: b.test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A certificate added to b's route is served without a restart; one that does not
    // parse is refused and the last good table stays.
    let mut b = http("b", "b.test", "web");
    b.certificate = Some(ca.cert("b.test"));
    r.set_routes(&[Route::Http(route.clone()), Route::Http(b)]);
    assert!(tls_get("b.test", &[]).status.success());
    let mut bad = http("b", "b.test", "web");
    bad.certificate = Some(Certificate {
        cert: "garbage".into(),
        key: "garbage".into(),
    });
    r.write_routes(&[Route::Http(route.clone()), Route::Http(bad)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !r.log().contains("routes refused") {
        assert!(
            Instant::now() < deadline,
            "a bad certificate was not refused:\n{}",
            r.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(r.log().contains("no CERTIFICATE block"), "{}", r.log());
    assert!(
        tls_get("b.test", &[]).status.success(),
        "the last good table serves on"
    );
}

#[root_test(isolated)]
fn upgrades_tunnel_bytes_and_outlive_route_swaps_and_streams_are_not_buffered() {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &[]);
    let a = Backend::start("web-a");
    let _h = register(&r, &d, "web", &a);
    r.set_routes(&[Route::Http(http("web", "example.test", "web"))]);
    wait_backends(&r, "web", 1);

    let mut s = TcpStream::connect(r.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /chat HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    let echo = |s: &mut TcpStream, msg: &[u8]| {
        s.write_all(msg).unwrap();
        let mut buf = vec![0u8; msg.len()];
        s.read_exact(&mut buf).unwrap();
        buf
    };
    assert_eq!(echo(&mut s, b"hello"), b"HELLO");
    // The route table changes twice; the tunnel stays.
    r.set_routes(&[
        Route::Http(http("web", "example.test", "web")),
        Route::Http(http("other", "other.test", "web")),
    ]);
    r.set_routes(&[Route::Http(http("web2", "example.test", "web"))]);
    assert_eq!(echo(&mut s, b"still here"), b"STILL HERE");

    // Server-sent events pass through as they are written: the first event arrives while
    // the backend holds the second.
    let mut s = TcpStream::connect(r.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /sse HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("data: first") {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "stream closed early: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(!String::from_utf8_lossy(&got).contains("second"));
    a.get("/release");
    while !String::from_utf8_lossy(&got).contains("data: second") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
}

#[root_test(isolated)]
fn a_2gb_upload_and_download_stream_through_in_little_memory() {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &[]);
    let a = Backend::start("web-a");
    let _h = register(&r, &d, "web", &a);
    r.set_routes(&[Route::Http(http("web", "example.test", "web"))]);
    wait_backends(&r, "web", 1);
    let size: u64 = 2 << 30;
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c {size} /dev/zero | curl -sS -T - -H 'Host: example.test' {}/upload",
            r.url()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        size.to_string(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = curl(&[
        "-H",
        "Host: example.test",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        &format!("{}/download?bytes={size}", r.url()),
    ]);
    assert_eq!(out, size.to_string());
    let rss = r.peak_rss_kib();
    assert!(
        rss < 64 * 1024,
        "peak RSS {rss} KiB after 4 GiB through the router"
    );
}

/// A TCP backend: for each connection, reads what the client sends until it half-closes,
/// then answers "got N: " and the first bytes, and closes.
fn tcp_backend() -> (SocketAddr, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (mut c, _) = l.accept().unwrap();
            let mut all = Vec::new();
            c.read_to_end(&mut all).unwrap();
            c.write_all(format!("got {}", all.len()).as_bytes())
                .unwrap();
            seen.push(all);
        }
        seen
    });
    (addr, t)
}

#[root_test(isolated)]
fn tcp_routes_half_close_and_speak_proxy_protocol_both_ways() {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &["--proxy-protocol"]);
    let (addr, backend) = tcp_backend();
    let c = d.client();
    r.block_on(c.register(
        "db",
        "db-1",
        &reg(&addr.to_string()),
        Duration::from_secs(60),
    ))
    .unwrap();
    let route = TcpRoute {
        id: "db".into(),
        parent_ref: None,
        service: "db".into(),
        port: r.tcp_port,
        leader: false,
        drain_backends: false,
        send_proxy_protocol: false,
    };
    r.set_routes(&[Route::Tcp(route.clone())]);
    wait_backends(&r, "db", 1);
    let exchange = |header: &[u8], payload: &[u8]| {
        let mut s = TcpStream::connect(("127.0.0.1", r.tcp_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(header).unwrap();
        s.write_all(payload).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    };
    // The router reads the client's PROXY header (v1 here) and passes only the payload on.
    assert_eq!(
        exchange(b"PROXY TCP4 192.0.2.9 127.0.0.1 4000 3000\r\n", b"ping"),
        "got 4"
    );
    // Sent to the backend: a v2 header naming the client from the first header.
    r.set_routes(&[Route::Tcp(TcpRoute {
        send_proxy_protocol: true,
        ..route
    })]);
    let answer = exchange(b"PROXY TCP4 192.0.2.9 127.0.0.1 4000 3000\r\n", b"pong");
    let seen = backend.join().unwrap();
    assert_eq!(seen[0], b"ping");
    let second = &seen[1];
    assert_eq!(&second[..12], b"\r\n\r\n\0\r\nQUIT\n", "a v2 signature");
    assert!(second.ends_with(b"pong"));
    assert_eq!(&second[16..20], &[192, 0, 2, 9], "the client's address");
    assert_eq!(answer, format!("got {}", second.len()));

    // HTTP listeners read the header too: the backend sees the client it names.
    let a = Backend::start("web-a");
    let _h = register(&r, &d, "web", &a);
    r.set_routes(&[Route::Http(http("web", "example.test", "web"))]);
    wait_backends(&r, "web", 1);
    let mut s = TcpStream::connect(r.http).unwrap();
    s.write_all(b"PROXY TCP4 198.51.100.7 127.0.0.1 5555 80\r\nGET /headers HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.contains("\"x-forwarded-for\":\"198.51.100.7\""),
        "{answer}"
    );
    // Without a header the connection is refused.
    let mut s = TcpStream::connect(r.http).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
}

fn raw(r: &RouterProcess, request: &[u8]) -> String {
    let mut s = TcpStream::connect(r.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[root_test(isolated)]
fn hostile_requests_are_refused_and_slowloris_does_not_starve_others() {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &["--header-read-timeout", "30s"]);
    let a = Backend::start("web-a");
    let _h = register(&r, &d, "web", &a);
    r.set_routes(&[Route::Http(http("web", "example.test", "web"))]);
    wait_backends(&r, "web", 1);

    let big = format!(
        "GET / HTTP/1.1\r\nHost: example.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    assert!(raw(&r, big.as_bytes()).starts_with("HTTP/1.1 431"));
    assert!(raw(&r, b"GARBAGE\r\n\r\n").starts_with("HTTP/1.1 400"));
    assert!(raw(
        &r,
        b"GET / HTTP/1.1\r\nHost: example.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    )
    .starts_with("HTTP/1.1 400"));
    // Content-Length with Transfer-Encoding: the body is read as chunked, the connection is
    // closed after the answer, and what hides behind the body never reaches a backend.
    let smuggle = b"POST /first HTTP/1.1\r\nHost: example.test\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: example.test\r\n\r\n";
    let answer = raw(&r, smuggle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    let seen = a.get("/seen");
    assert!(
        seen.contains("/first") && !seen.contains("/smuggled"),
        "{seen}"
    );

    // 1,000 clients each holding a half-sent request; others are served meanwhile.
    let mut held = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(r.http).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: exam").unwrap();
        held.push(s);
    }
    for _ in 0..20 {
        assert_eq!(get(&r, "example.test", "/").1, "web-a\n");
    }
    drop(held);
}

#[root_test(isolated)]
fn a_thousand_route_changes_under_load_fail_no_request() {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &["--routes-poll", "2ms"]);
    let (a, b) = (Backend::start("web-a"), Backend::start("web-b"));
    let _h = [register(&r, &d, "web", &a), register(&r, &d, "web", &b)];
    let web = http("web", "example.test", "web");
    r.set_routes(&[Route::Http(web.clone())]);
    wait_backends(&r, "web", 2);
    // wrk runs until the churn is over (SIGINT makes it stop and report).
    let wrk = Command::new("wrk")
        .args(["-t1", "-c8", "-d600s", "-H", "Host: example.test", &r.url()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("wrk runs");
    for applied in 0..1000 {
        let mut w = web.clone();
        w.sticky = applied % 2 == 1;
        let mut churn = http(
            &format!("churn-{applied}"),
            &format!("c{applied}.test"),
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
    let _h = [register(&r, &d, "web", &a), register(&r, &d, "web", &b)];
    let mut sticky = http("sticky", "sticky.test", "web");
    sticky.sticky = true;
    let mut leader = http("leader", "leader.test", "web");
    leader.leader = true;
    let mut h2 = http("h2", "h2.test", "web");
    h2.http2 = true;
    r.set_routes(&[
        Route::Http(sticky),
        Route::Http(leader),
        Route::Http(h2),
        Route::Http(http("empty", "empty.test", "nobody")),
    ]);
    wait_backends(&r, "web", 2);

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
        assert_eq!(get(&r, "leader.test", "/").1, "web-a\n");
    }
    // h2c to the backend when the route asks for it.
    let out = curl(&["-H", "Host: h2.test", &format!("{}/headers", r.url())]);
    let h: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(h["version"], "HTTP/2.0", "{h}");
    // No backend: the operator's page.
    let (code, body) = get(&r, "empty.test", "/");
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("503", "<h1>down for maintenance</h1>")
    );
}
