//! Buildpacks (the Heroku buildpack API): `bin/detect BUILD_DIR`, `bin/compile BUILD_DIR
//! CACHE_DIR ENV_DIR`, `bin/release BUILD_DIR`, each run as the unprivileged build user with
//! a clean environment (the app's env reaches compile only as files in ENV_DIR).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{io, BuildError};
use crate::procfile::{parse_release, ProcessTypes};

/// A buildpack on disk.
#[derive(Debug, Clone)]
pub struct Buildpack {
    /// Its name (the directory name without an `NN-` order prefix, or the URL).
    pub name: String,
    /// Its directory (with `bin/`).
    pub dir: PathBuf,
}

/// Who buildpacks run as, and the environment they all get.
#[derive(Debug, Clone)]
pub struct Runner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// `STACK`, `SOURCE_VERSION`, `HOME` and `PATH`.
    pub env: Vec<(String, String)>,
}

impl Runner {
    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env_clear().envs(self.env.iter().map(|(k, v)| (k, v)));
        // As root (the build job), drop to the build user; otherwise (a developer running
        // the builder by hand) run as whoever that is.
        if nix::unistd::geteuid().is_root() {
            // std clears the supplementary groups when root sets a uid.
            c.uid(self.uid).gid(self.gid);
        }
        c
    }
}

/// The built-in buildpacks under `root`, in directory order.
pub fn builtins(root: &Path) -> Result<Vec<Buildpack>, BuildError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(io(root))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("bin/detect").is_file())
        .collect();
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|dir| {
            let base = dir.file_name().unwrap_or_default().to_string_lossy();
            let name = match base.split_once('-') {
                Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest.to_string(),
                _ => base.to_string(),
            };
            Buildpack { name, dir }
        })
        .collect())
}

/// The most a buildpack tarball may hold, compressed.
const MAX_TARBALL: u64 = 512 << 20;

/// True for a `BUILDPACK_URL` naming a tarball over HTTP(S) (`.tgz`, `.tar.gz`, `.tar`).
pub fn is_tarball(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    (url.starts_with("http://") || url.starts_with("https://"))
        && [".tgz", ".tar.gz", ".tar"]
            .iter()
            .any(|e| path.ends_with(e))
}

/// Downloads and unpacks the buildpack tarball at `url` into `into`; returns the buildpack's
/// directory: `into`, or the one directory the tarball holds (as archives of a repository
/// have). Entries that would land outside `into` are refused.
fn fetch_tarball(url: &str, into: &Path) -> Result<PathBuf, BuildError> {
    let fail = |reason: String| BuildError::Fetch {
        url: url.into(),
        reason,
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let resp = client.get(url).send().map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("the server answered {}", resp.status())));
    }
    let body = std::io::Read::take(resp, MAX_TARBALL);
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let reader: Box<dyn std::io::Read> = if path.ends_with(".tar") {
        Box::new(body)
    } else {
        Box::new(flate2::read::GzDecoder::new(body))
    };
    std::fs::create_dir_all(into).map_err(io(into))?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    let entries = archive
        .entries()
        .map_err(|e| fail(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(format!("reading the archive: {e}")))?;
        let name = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let inside = entry
            .unpack_in(into)
            .map_err(|e| fail(format!("unpacking {name}: {e}")))?;
        if !inside {
            return Err(fail(format!(
                "its entry {name:?} points outside the buildpack"
            )));
        }
    }
    if into.join("bin").is_dir() {
        return Ok(into.to_path_buf());
    }
    let dirs: Vec<PathBuf> = std::fs::read_dir(into)
        .map_err(io(into))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    match dirs.as_slice() {
        [one] => Ok(one.clone()),
        _ => Ok(into.to_path_buf()),
    }
}

/// Fetches the buildpack at `url` into `into`: a tarball over HTTP(S) ([`is_tarball`]) is
/// downloaded and unpacked; anything else is cloned with git (`URL#REF` for a branch or tag).
pub fn fetch(url: &str, into: &Path) -> Result<Buildpack, BuildError> {
    if is_tarball(url) {
        let dir = fetch_tarball(url, into)?;
        return checked(url, &dir);
    }
    let (repo, reference) = match url.rsplit_once('#') {
        Some((r, f)) if !f.is_empty() => (r, Some(f)),
        _ => (url, None),
    };
    let mut c = Command::new("git");
    c.args(["clone", "--quiet", "--depth", "1"]);
    if let Some(r) = reference {
        c.args(["--branch", r]);
    }
    let out = c
        .arg("--")
        .arg(repo)
        .arg(into)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BuildError::Fetch {
            url: url.into(),
            reason: format!("running git: {e}"),
        })?;
    if !out.status.success() {
        return Err(BuildError::Fetch {
            url: url.into(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    checked(url, into)
}

/// The buildpack in `dir`, fetched from `url`, if it has a `bin/compile`.
fn checked(url: &str, dir: &Path) -> Result<Buildpack, BuildError> {
    if !dir.join("bin/compile").is_file() {
        return Err(BuildError::Fetch {
            url: url.into(),
            reason: "it has no bin/compile".into(),
        });
    }
    Ok(Buildpack {
        name: url.to_string(),
        dir: dir.to_path_buf(),
    })
}

impl Buildpack {
    /// What `bin/detect` prints when it accepts the app (its name if it prints nothing).
    pub fn detect(&self, runner: &Runner, build: &Path) -> Result<Option<String>, BuildError> {
        let detect = self.dir.join("bin/detect");
        if !detect.is_file() {
            return Ok(Some(self.name.clone()));
        }
        let out = runner
            .command(&detect)
            .arg(build)
            .stdin(Stdio::null())
            .output()
            .map_err(io(&detect))?;
        if !out.status.success() {
            return Ok(None);
        }
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(Some(if said.is_empty() {
            self.name.clone()
        } else {
            said
        }))
    }

    /// Runs `bin/compile`, its output going where the builder's goes.
    pub fn compile(
        &self,
        runner: &Runner,
        build: &Path,
        cache: &Path,
        env_dir: &Path,
    ) -> Result<(), BuildError> {
        let compile = self.dir.join("bin/compile");
        let status = runner
            .command(&compile)
            .arg(build)
            .arg(cache)
            .arg(env_dir)
            .current_dir(build)
            .stdin(Stdio::null())
            .status()
            .map_err(io(&compile))?;
        if status.success() {
            return Ok(());
        }
        Err(BuildError::Compile {
            buildpack: self.name.clone(),
            status: status.to_string(),
        })
    }

    /// The default process types of `bin/release` (none without one).
    pub fn release(&self, runner: &Runner, build: &Path) -> Result<ProcessTypes, BuildError> {
        let release = self.dir.join("bin/release");
        if !release.is_file() {
            return Ok(ProcessTypes::new());
        }
        let out = runner
            .command(&release)
            .arg(build)
            .stdin(Stdio::null())
            .output()
            .map_err(io(&release))?;
        if !out.status.success() {
            return Err(BuildError::Malformed {
                what: format!("{} bin/release", self.name),
                reason: format!("exited with {}", out.status),
            });
        }
        parse_release(&String::from_utf8_lossy(&out.stdout))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// Serves `body` once on a loopback port; returns the URL of `name` there.
    fn serve_once(name: &str, body: Vec<u8>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&body).unwrap();
        });
        format!("http://{addr}/{name}")
    }

    fn entry(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
        let mut h = tar::Header::new_gnu();
        // Written raw, so that hostile names ("../x") go in as they are.
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn tgz(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, d, m) in entries {
            entry(&mut b, p, d, *m);
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn tarball_urls() {
        assert!(is_tarball("https://example.com/bp.tgz"));
        assert!(is_tarball("http://example.com/bp.tar.gz?x=1"));
        assert!(is_tarball("http://example.com/bp.tar"));
        assert!(!is_tarball("https://example.com/bp.git"));
        assert!(!is_tarball("git://example.com/bp.tgz"));
    }

    #[test]
    fn a_tarball_with_one_top_directory_is_that_buildpack() {
        let body = tgz(&[
            ("bp-main/bin/detect", b"#!/bin/sh\necho X\n", 0o755),
            ("bp-main/bin/compile", b"#!/bin/sh\n", 0o755),
        ]);
        let url = serve_once("bp.tgz", body);
        let dir = tempfile::tempdir().unwrap();
        let bp = fetch(&url, &dir.path().join("bp")).unwrap();
        assert_eq!(bp.dir, dir.path().join("bp/bp-main"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(bp.dir.join("bin/compile"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "executable bits kept");
    }

    #[test]
    fn hostile_and_broken_tarballs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let url = serve_once("bp.tgz", tgz(&[("../escape", b"x", 0o644)]));
        let e = fetch(&url, &dir.path().join("a")).unwrap_err().to_string();
        assert!(
            e.contains("outside the buildpack") || e.contains("unpacking"),
            "{e}"
        );
        assert!(!dir.path().join("escape").exists());
        let mut cut = tgz(&[("bin/compile", &[b'x'; 100_000], 0o755)]);
        cut.truncate(cut.len() / 2);
        let url = serve_once("bp.tgz", cut);
        assert!(fetch(&url, &dir.path().join("b")).is_err());
        let url = serve_once("bp.tgz", tgz(&[("README", b"no bin", 0o644)]));
        let e = fetch(&url, &dir.path().join("c")).unwrap_err().to_string();
        assert!(e.contains("it has no bin/compile"), "{e}");
    }
}
