//! A Debian suite's state on a mirror: the digest of its `dists/SUITE/InRelease`, the signed
//! index of every package list of the suite, which changes whenever any of its packages does
//! (a point release). A Debian base records the release it was made from, so that
//! `flynn-images fetch` makes it again when the mirror has moved on.

use std::io::Read as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The largest `InRelease` read (Debian's are a few hundred KiB).
const MAX_RELEASE: u64 = 16 << 20;

/// A suite's state on a mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// SHA-256 of the suite's `InRelease`, hex.
    pub digest: String,
    /// Its `Date:` field, for people.
    pub date: Option<String>,
}

/// The mirror's release could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading {url}: {reason}")]
pub struct ReleaseError {
    /// What was asked for.
    pub url: String,
    /// Why it failed.
    pub reason: String,
}

/// The URL of `suite`'s `InRelease` on `mirror`.
pub fn release_url(mirror: &str, suite: &str) -> String {
    format!("{}/dists/{suite}/InRelease", mirror.trim_end_matches('/'))
}

/// Reads `suite`'s release on `mirror` (10 s to connect, 60 s in all).
pub fn release(mirror: &str, suite: &str) -> Result<Release, ReleaseError> {
    let url = release_url(mirror, suite);
    let fail = |reason: String| ReleaseError {
        url: url.clone(),
        reason,
    };
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let resp = client.get(&url).send().map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("the mirror answered {}", resp.status())));
    }
    let mut body = Vec::new();
    resp.take(MAX_RELEASE + 1)
        .read_to_end(&mut body)
        .map_err(|e| fail(e.to_string()))?;
    if body.len() as u64 > MAX_RELEASE {
        return Err(fail(format!("larger than {MAX_RELEASE} bytes")));
    }
    let date = String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("Date:"))
        .map(|d| d.trim().to_string());
    Ok(Release {
        digest: hex::encode(Sha256::digest(&body)),
        date,
    })
}

impl Release {
    /// Its date, or its digest's start when it has none.
    pub fn describe(&self) -> String {
        match &self.date {
            Some(d) => d.clone(),
            None => format!("sha256 {}", &self.digest[..12.min(self.digest.len())]),
        }
    }
}

/// A mirror on loopback for tests: serves the files given, 404 for anything else.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::BTreeMap;
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// A running mirror: its URL and the files it serves (path to body), changeable.
    pub(crate) struct Mirror {
        pub(crate) url: String,
        pub(crate) files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    }

    /// Starts a mirror on a free loopback port (its thread lives as long as the test).
    pub(crate) fn serve() -> Mirror {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/debian", listener.local_addr().unwrap());
        let files: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let served = files.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(n) if n > 2 => continue,
                        _ => break,
                    }
                }
                let path = request.split(' ').nth(1).unwrap_or("").to_string();
                let body = served.lock().unwrap().get(&path).cloned();
                let (status, body) = match body {
                    Some(b) => ("200 OK", b),
                    None => ("404 Not Found", b"not found\n".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        Mirror { url, files }
    }

    impl Mirror {
        /// Serves `body` as `suite`'s `InRelease`.
        pub(crate) fn release(&self, suite: &str, body: &str) {
            self.files.lock().unwrap().insert(
                format!("/debian/dists/{suite}/InRelease"),
                body.as_bytes().to_vec(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_is_the_digest_and_date_of_the_suites_inrelease() {
        let m = testing::serve();
        let body = "-----BEGIN PGP SIGNED MESSAGE-----\nOrigin: Debian\nSuite: stable\nDate: Sat, 07 Nov 2026 10:13:39 UTC\n";
        m.release("bookworm", body);
        let r = release(&m.url, "bookworm").unwrap();
        assert_eq!(r.digest, hex::encode(Sha256::digest(body.as_bytes())));
        assert_eq!(r.date.as_deref(), Some("Sat, 07 Nov 2026 10:13:39 UTC"));
        m.release("bookworm", &body.replace("07 Nov", "08 Nov"));
        assert_ne!(release(&m.url, "bookworm").unwrap(), r);

        let e = release(&m.url, "trixie").unwrap_err().to_string();
        assert!(
            e.contains("/debian/dists/trixie/InRelease") && e.contains("404"),
            "{e}"
        );
    }

    #[test]
    fn an_unreachable_mirror_is_an_error_naming_it() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = release(&format!("http://127.0.0.1:{port}/debian"), "bookworm").unwrap_err();
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}
