//! The router's wire behaviour against real clients (curl, raw sockets) and `test-backend`
//! processes in a real discoverd, each test in namespaces of its own: TLS by SNI and h2,
//! upgrades and unbuffered streams, 2 GiB bodies in little memory, TCP routes with half-close
//! and PROXY protocol, and hostile or half-sent requests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use integration::discoverd::{reg, Discoverd};
use integration::root_test;
use integration::router::{curl, curl_output, Backend, RouterProcess};
use router_api::{Certificate, HttpRoute, Route, TcpRoute};

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
    let _h = r.register(&d, "web", &a);
    let mut route = HttpRoute::new("a", "a.test", "web");
    route.certificate = Some(ca.cert("a.test"));
    r.set_routes(&[
        Route::Http(route.clone()),
        Route::Http(HttpRoute::new("b", "b.test", "web")),
    ]);
    r.wait_backends("web", 1);
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
    let mut b = HttpRoute::new("b", "b.test", "web");
    b.certificate = Some(ca.cert("b.test"));
    r.set_routes(&[Route::Http(route.clone()), Route::Http(b)]);
    assert!(tls_get("b.test", &[]).status.success());
    let mut bad = HttpRoute::new("b", "b.test", "web");
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
    let (a, _h) = r.serve_example_web(&d);

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
        Route::Http(HttpRoute::new("web", "example.test", "web")),
        Route::Http(HttpRoute::new("other", "other.test", "web")),
    ]);
    r.set_routes(&[Route::Http(HttpRoute::new("web2", "example.test", "web"))]);
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
    let (_a, _h) = r.serve_example_web(&d);
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
    r.wait_backends("db", 1);
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
    let (_a, _h) = r.serve_example_web(&d);
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

/// Sends `request` on a new connection and reads until the router closes it.
pub(crate) fn raw(r: &RouterProcess, request: &[u8]) -> String {
    let mut s = TcpStream::connect(r.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[root_test(isolated)]
fn an_http_1_0_backend_is_answered_for_in_http_1_1() {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &[]);
    // A backend that speaks HTTP/1.0 and closes after each answer, as simple servers do.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let mut c = c.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && c.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold\n");
        }
    });
    r.block_on(d.client().register(
        "old",
        "old-1",
        &reg(&addr.to_string()),
        Duration::from_secs(60),
    ))
    .unwrap();
    r.set_routes(&[Route::Http(HttpRoute::new("old", "old.test", "old"))]);
    r.wait_backends("old", 1);
    let answer = raw(
        &r,
        b"GET / HTTP/1.1\r\nHost: old.test\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    // A body the backend ends by closing goes to the client chunked.
    assert!(
        answer.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\n4\r\nold\n\r\n0\r\n\r\n"),
        "{answer}"
    );
    // Two requests on one client connection: the backend's close ends only its own.
    let two = b"GET / HTTP/1.1\r\nHost: old.test\r\n\r\nGET / HTTP/1.1\r\nHost: old.test\r\nConnection: close\r\n\r\n";
    let answer = raw(&r, two);
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
}

#[root_test(isolated)]
fn hostile_requests_are_refused_and_slowloris_does_not_starve_others() {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &["--header-read-timeout", "30s"]);
    let (a, _h) = r.serve_example_web(&d);

    let big = format!(
        "GET / HTTP/1.1\r\nHost: example.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let answer = raw(&r, big.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
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
        assert_eq!(r.get("example.test", "/").1, "web-a\n");
    }
    drop(held);
}

/// Reads one response (its body sized by Content-Length) from a kept-alive connection.
fn read_response(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "connection closed mid-response"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("a content-length")
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

/// Waits until the router's gauge of parked connections reads `n`.
fn wait_parked(r: &RouterProcess, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = curl(&[&format!("http://{}/metrics", r.api)]);
        let now = m
            .lines()
            .find_map(|l| l.strip_prefix("router_http_connections_parked "))
            .and_then(|v| v.trim().parse::<u64>().ok());
        if now == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "want {n} parked connections, metrics say {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[root_test(isolated)]
fn idle_keep_alive_connections_are_parked_and_served_again() {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &[]);
    let (a, _h) = r.serve_example_web(&d);
    let mut s = TcpStream::connect(r.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let get = b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n";
    s.write_all(get).unwrap();
    let answer = read_response(&mut s);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with(&format!("{}\n", a.name)), "{answer}");
    wait_parked(&r, 1);

    // The same connection serves again, two requests sent in one write included.
    s.write_all(&[&get[..], &get[..]].concat()).unwrap();
    for _ in 0..2 {
        let answer = read_response(&mut s);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(
            !answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    wait_parked(&r, 1);

    // A head sent in two parts: the first wakes the connection, which then waits for the rest.
    s.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    wait_parked(&r, 0);
    s.write_all(b"st: example.test\r\n\r\n").unwrap();
    let answer = read_response(&mut s);
    assert!(answer.ends_with(&format!("{}\n", a.name)), "{answer}");
    wait_parked(&r, 1);

    // A client that closes a parked connection leaves nothing behind.
    drop(s);
    wait_parked(&r, 0);
}
