//! A token server for the registry's bearer-token flow: it checks basic credentials and issues
//! RS256 JWTs with an `x5c` chain that the registry verifies against a certificate made here.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::json;

use crate::run_ok;

/// A running token server; stopped on drop.
#[derive(Debug)]
pub struct TokenServer {
    /// The token endpoint, `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The certificate the registry must trust.
    pub cert: PathBuf,
    /// Service name tokens are issued for.
    pub service: String,
    /// Issuer name in tokens.
    pub issuer: String,
    /// Tokens issued so far.
    pub issued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    /// Starts a server that issues tokens to `user`/`password` only.
    pub fn start(user: &str, password: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        run_ok(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=pinkerton-test-token",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&key).unwrap()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicUsize::new(0));
        let expected_auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let (service, issuer) = (
            "pinkerton-test-registry".to_string(),
            "pinkerton-test-issuer".to_string(),
        );
        let ctx = Ctx {
            key,
            x5c,
            expected_auth,
            service: service.clone(),
            issuer: issuer.clone(),
            issued: issued.clone(),
        };
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => ctx.serve(s),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self {
            realm,
            cert,
            service,
            issuer,
            issued,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Ctx {
    key: jsonwebtoken::EncodingKey,
    x5c: String,
    expected_auth: String,
    service: String,
    issuer: String,
    issued: Arc<AtomicUsize>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Ctx {
    fn serve(&self, stream: std::net::TcpStream) {
        stream.set_nonblocking(false).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request = String::new();
        let _ = reader.read_line(&mut request);
        let mut auth = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("authorization") {
                    auth = Some(v.trim().to_string());
                }
            }
        }
        let target = request.split_whitespace().nth(1).unwrap_or("");
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let scopes: Vec<String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == "scope")
            .map(|(_, v)| percent_decode(v))
            .collect();
        let (status, body) = if auth.as_deref() != Some(self.expected_auth.as_str()) {
            (
                "401 Unauthorized",
                json!({"details": "invalid credentials"}).to_string(),
            )
        } else {
            (
                "200 OK",
                json!({"token": self.token(&scopes), "expires_in": 300}).to_string(),
            )
        };
        let mut s = stream;
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }

    fn token(&self, scopes: &[String]) -> String {
        let access: Vec<_> = scopes
            .iter()
            .filter_map(|s| {
                let (kind, rest) = s.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let claims = json!({
            "iss": self.issuer, "sub": "tester", "aud": self.service,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("token-{n}"),
            "access": access,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.x5c = Some(vec![self.x5c.clone()]);
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}
