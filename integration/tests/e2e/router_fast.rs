//! The router's HTTP/1.1 fast path against a scripted backend on a raw socket: pipelined
//! requests, informational responses, framing it must not pass on twice, a `Date` where the
//! backend sent none, backend sockets closed while pooled, and the hand-over to hyper in the
//! middle of a connection. And the same backend behind HTTP/2 clients, whose bodiless
//! requests hyper reads and the router sends on over plain sockets: bodies decoded for
//! hyper to frame again, hop-by-hop headers dropped, cookies joined, and a pooled socket the
//! backend closes unanswered replayed only for idempotent methods.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use integration::discoverd::{reg, Discoverd};
use integration::root_test;
use integration::router::{curl, RouterProcess};
use router_api::{HttpRoute, Route};

use super::router_wire::raw;

/// A backend that answers by path, on kept-alive connections: `/info` with a 103 first,
/// `/both` chunked with a `Content-Length` beside it, `/echo` with the request it got,
/// `/bye` then closes its connection (reported on `closed`), `/chunks` chunked with
/// trailers and hop-by-hop headers, `/eof` a body ended by closing, `/arm` then closes the
/// connection on the next request without answering it.
fn scripted_backend(closed: mpsc::Sender<()>) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let c = c.unwrap();
            let closed = closed.clone();
            std::thread::spawn(move || serve(c, closed));
        }
    });
    addr
}

fn serve(c: TcpStream, closed: mpsc::Sender<()>) {
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    let mut armed = false;
    loop {
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        r.read_exact(&mut body).unwrap();
        if armed {
            return;
        }
        let target = head.split(' ').nth(1).unwrap_or("");
        let path = target.split('?').next().unwrap_or("").to_string();
        let answer = match path.as_str() {
            "/info" => "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
                        HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .to_string(),
            "/both" => {
                "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n\
                        3\r\nabc\r\n0\r\n\r\n"
                    .to_string()
            }
            "/echo" => {
                let seen = format!("{head}{}", String::from_utf8_lossy(&body));
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{seen}",
                    seen.len()
                )
            }
            "/chunks" => "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\
                          Connection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-End: 2\r\n\r\n\
                          3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Trailer: 1\r\n\r\n"
                .to_string(),
            "/eof" => "HTTP/1.1 200 OK\r\n\r\nuntil close".to_string(),
            "/arm" => {
                armed = true;
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\narmed".to_string()
            }
            _ => "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye".to_string(),
        };
        w.write_all(answer.as_bytes()).unwrap();
        if path == "/eof" {
            return;
        }
        if path == "/bye" {
            drop(w);
            drop(r);
            closed.send(()).unwrap();
            return;
        }
    }
}

/// A router with the route `fast.test` to one scripted backend (its closes reported on the
/// receiver).
fn router_and_backend() -> (Discoverd, RouterProcess, mpsc::Receiver<()>) {
    let d = Discoverd::start();
    let r = RouterProcess::start(&d, &[]);
    let (closed_tx, closed) = mpsc::channel();
    let addr = scripted_backend(closed_tx);
    r.block_on(d.client().register(
        "fast",
        "fast-1",
        &reg(&addr.to_string()),
        Duration::from_secs(60),
    ))
    .unwrap();
    r.set_routes(&[Route::Http(HttpRoute::new("fast", "fast.test", "fast"))]);
    r.wait_backends("fast", 1);
    (d, r, closed)
}

#[root_test(isolated)]
fn pipelined_requests_informational_answers_stale_sockets_and_the_hand_over_to_hyper() {
    let (_d, r, closed) = router_and_backend();

    // Three requests in one write, answered in order; the 103 is not passed on, nor the
    // Content-Length the backend sent beside its chunked body.
    let answer = raw(
        &r,
        b"GET /info HTTP/1.1\r\nHost: fast.test\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: fast.test\r\nContent-Length: 5\r\nX-Forwarded-For: 192.0.2.7\r\n\r\nhello\
          GET /both HTTP/1.1\r\nHost: fast.test\r\nConnection: close\r\n\r\n",
    );
    let parts: Vec<&str> = answer.split("HTTP/1.1 200 OK\r\n").collect();
    assert_eq!(parts.len(), 4, "three answers: {answer}");
    assert!(!answer.contains("103"), "{answer}");
    assert!(parts[1].ends_with("\r\n\r\nok"), "{answer}");
    assert!(
        parts[1].contains("\r\ndate: "),
        "the router dates it: {answer}"
    );
    let echo = parts[2];
    assert!(echo.contains("POST /echo HTTP/1.1\r\n"), "{answer}");
    assert!(
        echo.contains("x-forwarded-for: 192.0.2.7, 127.0.0.1\r\n"),
        "{answer}"
    );
    assert!(echo.ends_with("\r\n\r\nhello"), "{answer}");
    assert!(!echo.contains("X-Forwarded-For"), "replaced: {answer}");
    let both = parts[3];
    assert!(both.contains("Transfer-Encoding: chunked\r\n"), "{answer}");
    assert!(!both.contains("Content-Length"), "{answer}");
    assert!(both.contains("connection: close\r\n"), "{answer}");
    assert!(both.ends_with("\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), "{answer}");

    // A pooled backend socket the backend closed: the next request gets a new one.
    let answer = raw(
        &r,
        b"GET /bye HTTP/1.1\r\nHost: fast.test\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.ends_with("\r\n\r\nbye"), "{answer}");
    closed.recv_timeout(Duration::from_secs(30)).unwrap();
    for _ in 0..3 {
        let answer = raw(
            &r,
            b"GET /info HTTP/1.1\r\nHost: fast.test\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }

    // A request the fast path leaves to hyper (no route), then one it would take, in one
    // write: hyper answers both, in order, from the bytes the fast path had read.
    let answer = raw(
        &r,
        b"GET / HTTP/1.1\r\nHost: nothing.test\r\n\r\n\
          GET /info HTTP/1.1\r\nHost: fast.test\r\nConnection: close\r\n\r\n",
    );
    let notfound = answer.find("HTTP/1.1 404 Not Found\r\n");
    let ok = answer.find("HTTP/1.1 200 OK\r\n");
    assert!(
        matches!((notfound, ok), (Some(a), Some(b)) if a < b),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
}

/// curl over HTTP/2 (prior knowledge, on the plain port) for `path` on `fast.test`: the
/// response head and body, as `-i` prints them.
fn h2(r: &RouterProcess, path: &str, extra: &[&str]) -> String {
    let url = format!("http://{}{path}", r.http);
    let mut args = vec!["-i", "--http2-prior-knowledge", "-H", "Host: fast.test"];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

#[root_test(isolated)]
fn http2_requests_reach_http1_backends_over_plain_sockets() {
    let (_d, r, _closed) = router_and_backend();

    // A chunked body comes out decoded (HTTP/2 frames it), without its trailers, the
    // headers `Connection` named, or `Keep-Alive`.
    let answer = h2(&r, "/chunks", &[]);
    assert!(answer.starts_with("HTTP/2 201"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nabcdefg"), "{answer}");
    assert!(answer.contains("x-end: 2\r\n"), "{answer}");
    for gone in [
        "x-hop",
        "keep-alive",
        "transfer-encoding",
        "connection",
        "x-trailer",
    ] {
        assert!(
            !answer.to_ascii_lowercase().contains(gone),
            "{gone}: {answer}"
        );
    }
    // A body the backend ends by closing, and one with a 103 before it.
    let answer = h2(&r, "/eof", &[]);
    assert!(answer.ends_with("\r\n\r\nuntil close"), "{answer}");
    let answer = h2(&r, "/info", &[]);
    assert!(answer.starts_with("HTTP/2 200"), "{answer}");
    assert!(answer.contains("content-length: 2\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");

    // The backend gets HTTP/1.1 in origin form, one Cookie line, the forwarding headers,
    // no TE.
    let cookies = [
        "-H",
        "Cookie: a=1",
        "-H",
        "Cookie: b=2",
        "-H",
        "TE: trailers",
    ];
    let answer = h2(&r, "/echo?q=1", &cookies);
    assert!(answer.contains("GET /echo?q=1 HTTP/1.1\r\n"), "{answer}");
    assert!(answer.contains("host: fast.test\r\n"), "{answer}");
    assert!(answer.contains("x-forwarded-proto: http\r\n"), "{answer}");
    assert!(answer.contains("x-request-id: "), "{answer}");
    assert_eq!(answer.matches("cookie: ").count(), 1, "{answer}");
    assert!(answer.contains("cookie: a=1; b=2\r\n"), "{answer}");
    assert!(!answer.contains("\r\nte: "), "{answer}");

    // A pooled socket the backend closes on the next request without answering: a GET is
    // sent again on a new connection; a POST is not (the backend may have acted on it).
    let answer = h2(&r, "/arm", &[]);
    assert!(answer.ends_with("armed"), "{answer}");
    let answer = h2(&r, "/info", &[]);
    assert!(answer.starts_with("HTTP/2 200"), "replayed: {answer}");
    let answer = h2(&r, "/arm", &[]);
    assert!(answer.ends_with("armed"), "{answer}");
    let answer = h2(&r, "/echo", &["-X", "POST"]);
    assert!(answer.starts_with("HTTP/2 502"), "not replayed: {answer}");
    let answer = h2(&r, "/echo", &["-X", "POST"]);
    assert!(answer.contains("POST /echo HTTP/1.1\r\n"), "{answer}");

    // A route without keep-alive (hyper reads its requests; the fast path does not take
    // them): the backend is told to close.
    let mut close = HttpRoute::new("close", "close.test", "fast");
    close.disable_keep_alives = true;
    r.set_routes(&[
        Route::Http(HttpRoute::new("fast", "fast.test", "fast")),
        Route::Http(close),
    ]);
    let url = format!("http://{}/echo", r.http);
    let answer = curl(&["-i", "-H", "Host: close.test", &url]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
}
