//! Debian bases: a root filesystem of Debian packages made by `mmdebstrap` as a tar,
//! reproducibly (`SOURCE_DATE_EPOCH` fixed, no device nodes, apt lists and caches cleaned),
//! and cached by what went into it, so a stack is downloaded once per host.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The Debian mirror used when none is given.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// Timestamps in the tar: the epoch, so the same packages give the same bytes.
const SOURCE_DATE_EPOCH: &str = "0";

/// A Debian root filesystem, as a recipe's `[debian]` table declares it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianBase {
    /// The release, e.g. `bookworm`.
    pub suite: String,
    /// mmdebstrap's variant (default `minbase`: essential packages and apt).
    #[serde(default = "minbase")]
    pub variant: String,
    /// Packages installed on top (with their dependencies).
    #[serde(default)]
    pub packages: Vec<String>,
}

fn minbase() -> String {
    "minbase".into()
}

/// Making a Debian base failed.
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    /// mmdebstrap is not installed.
    #[error("building a Debian base needs mmdebstrap (Debian package mmdebstrap): {0}")]
    NoMmdebstrap(std::io::Error),
    /// mmdebstrap failed.
    #[error("mmdebstrap failed for suite {suite} (is {mirror} reachable? where it is not, as inside a test's network namespace, make the base beforehand with `flynn-images fetch RECIPE`): {stderr}")]
    Failed {
        /// The suite.
        suite: String,
        /// The mirror.
        mirror: String,
        /// The end of its output.
        stderr: String,
    },
    /// The cache could not be written.
    #[error("cache {path}: {source}")]
    Cache {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl DebianBase {
    /// Checks names mmdebstrap would take as options or several words.
    pub fn check(&self) -> Result<(), String> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.' | ':' | '='))
                && !s.starts_with('-')
        };
        if !plain(&self.suite) || !plain(&self.variant) {
            return Err(format!(
                "debian suite {:?} / variant {:?} must be plain names",
                self.suite, self.variant
            ));
        }
        if let Some(p) = self.packages.iter().find(|p| !plain(p)) {
            return Err(format!("debian package {p:?} is not a package name"));
        }
        Ok(())
    }

    /// The cache key: everything that decides the tar's content.
    pub fn key(&self, mirror: &str) -> String {
        let mut packages = self.packages.clone();
        packages.sort();
        packages.dedup();
        let text = format!(
            "suite={}\nvariant={}\npackages={}\nmirror={mirror}\nepoch={SOURCE_DATE_EPOCH}\nformat=1\n",
            self.suite,
            self.variant,
            packages.join(",")
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..12])
    }

    /// Where the base's tar is cached in `cache`.
    pub fn path(&self, mirror: &str, cache: &Path) -> PathBuf {
        cache.join(format!("debian-{}-{}.tar", self.suite, self.key(mirror)))
    }

    /// The base's tar in `cache` (made there first when missing; never seen half-written).
    /// A base in the cache is used as it is, with no network: [`DebianBase::fetch`] brings
    /// it up to date.
    pub fn tar(&self, mirror: &str, cache: &Path) -> Result<PathBuf, DebianError> {
        let path = self.path(mirror, cache);
        if path.is_file() {
            return Ok(path);
        }
        // Recorded when the mirror answers; a base made without it is made again by the
        // next fetch.
        let release = crate::mirror::release(mirror, &self.suite).ok();
        self.make(mirror, &path, release)?;
        Ok(path)
    }

    /// Makes the base in `cache` when missing, or again when `mirror`'s release of the suite
    /// is not the one it was made from (a Debian point release), so that images built on it
    /// get the suite's current packages. A mirror that cannot be reached keeps the base; a
    /// failed remake leaves the old base and its record as they were.
    pub fn fetch(&self, mirror: &str, cache: &Path) -> Result<Fetched, DebianError> {
        let path = self.path(mirror, cache);
        let release = crate::mirror::release(mirror, &self.suite);
        if !path.is_file() {
            self.make(mirror, &path, release.ok())?;
            return Ok(Fetched::Made(path));
        }
        let release = match release {
            Ok(r) => r,
            Err(e) => return Ok(Fetched::Unchecked(path, e)),
        };
        let recorded = read_record(&path).filter(|r| r.describes(&path));
        if recorded.and_then(|r| r.release).as_ref() == Some(&release) {
            return Ok(Fetched::Current(path, release));
        }
        self.make(mirror, &path, Some(release.clone()))?;
        Ok(Fetched::Remade(path, release))
    }

    /// The diff_id of the cached base (`sha256:` of the tar), `None` when none is cached;
    /// read from the record beside it while that describes the tar, else computed and
    /// recorded (where the cache can be written).
    pub fn diff_id(&self, mirror: &str, cache: &Path) -> Result<Option<String>, DebianError> {
        let path = self.path(mirror, cache);
        if !path.is_file() {
            return Ok(None);
        }
        if let Some(r) = read_record(&path).filter(|r| r.describes(&path)) {
            return Ok(Some(r.diff_id));
        }
        let cache_err = |source| DebianError::Cache {
            path: path.clone(),
            source,
        };
        let diff_id = file_digest(&path).map_err(cache_err)?;
        // The record only saves the next call reading the tar again: a cache that cannot
        // take it (read-only) still answers.
        if let Ok(record) = Record::of(&path, diff_id.clone(), None) {
            let _ = write_record(&path, &record);
        }
        Ok(Some(diff_id))
    }

    /// Runs mmdebstrap into a file beside `path`, then puts it and its record (`release`,
    /// its diff_id) in place.
    fn make(
        &self,
        mirror: &str,
        path: &Path,
        release: Option<crate::mirror::Release>,
    ) -> Result<(), DebianError> {
        let cache = path.parent().unwrap_or(Path::new("."));
        let cache_err = |source| DebianError::Cache {
            path: cache.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(cache).map_err(cache_err)?;
        let tmp = path.with_extension(format!("tmp.{}", unique()));
        let mut cmd = Command::new("mmdebstrap");
        cmd.env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
            .args([
                "--quiet",
                "--mode=root",
                "--format=tar",
                "--skip=output/dev",
            ])
            .arg(format!("--variant={}", self.variant));
        if !self.packages.is_empty() {
            cmd.arg(format!("--include={}", self.packages.join(",")));
        }
        cmd.arg(&self.suite).arg(&tmp).arg(mirror);
        let out = cmd.output().map_err(DebianError::NoMmdebstrap)?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
            return Err(DebianError::Failed {
                suite: self.suite.clone(),
                mirror: mirror.into(),
                stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            });
        }
        let placed = file_digest(&tmp).and_then(|diff_id| {
            std::fs::rename(&tmp, path)?;
            // A crash before the record is written leaves an older one that no longer
            // describes the tar: the diff_id is computed again, the release taken as unknown.
            write_record(path, &Record::of(path, diff_id, release)?)
        });
        if placed.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        placed.map_err(cache_err)
    }
}

/// What [`DebianBase::fetch`] did.
#[derive(Debug)]
pub enum Fetched {
    /// None was cached: made.
    Made(PathBuf),
    /// Made from the mirror's current release: kept.
    Current(PathBuf, crate::mirror::Release),
    /// Made again: the mirror's release is not the one it was made from (or that one was
    /// not known).
    Remade(PathBuf, crate::mirror::Release),
    /// Kept: the mirror's release could not be read.
    Unchecked(PathBuf, crate::mirror::ReleaseError),
}

/// What the cache records beside a base's tar (`debian-SUITE-KEY.json`).
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The mirror's release the base was made from, when known.
    release: Option<crate::mirror::Release>,
    /// `sha256:` of the tar.
    diff_id: String,
    /// The tar's size and modification time when recorded: a tar that differs was replaced.
    len: u64,
    modified: (u64, u32),
}

impl Record {
    fn of(
        tar: &Path,
        diff_id: String,
        release: Option<crate::mirror::Release>,
    ) -> std::io::Result<Self> {
        let (len, modified) = stat(tar)?;
        Ok(Self {
            release,
            diff_id,
            len,
            modified,
        })
    }

    /// Whether the tar at `tar` is still the one recorded.
    fn describes(&self, tar: &Path) -> bool {
        stat(tar).is_ok_and(|s| s == (self.len, self.modified))
    }
}

fn stat(path: &Path) -> std::io::Result<(u64, (u64, u32))> {
    let m = std::fs::metadata(path)?;
    let t = m
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok((m.len(), (t.as_secs(), t.subsec_nanos())))
}

fn record_path(tar: &Path) -> PathBuf {
    tar.with_extension("json")
}

fn read_record(tar: &Path) -> Option<Record> {
    let text = std::fs::read(record_path(tar)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Writes the record beside `tar` (replaced whole, never seen half-written).
fn write_record(tar: &Path, record: &Record) -> std::io::Result<()> {
    let path = record_path(tar);
    let tmp = path.with_extension(format!("json.tmp.{}", unique()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(record)?)?;
    std::fs::rename(&tmp, &path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A name part no other writer in the cache uses at the same time: the process id and a
/// count within the process.
fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}.{n}", std::process::id())
}

/// `sha256:HEX` of the file at `path`.
fn file_digest(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(packages: &[&str]) -> DebianBase {
        DebianBase {
            suite: "bookworm".into(),
            variant: minbase(),
            packages: packages.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_key_follows_the_content_not_the_order() {
        let a = base(&["python3", "nodejs"]).key(DEFAULT_MIRROR);
        assert_eq!(a, base(&["nodejs", "python3"]).key(DEFAULT_MIRROR));
        assert_ne!(a, base(&["nodejs"]).key(DEFAULT_MIRROR));
        assert_ne!(
            a,
            base(&["python3", "nodejs"]).key("http://mirror.lan/debian")
        );
    }

    /// A base of `bookworm` with a tar in `cache` (not made by mmdebstrap: any bytes).
    fn cached(mirror: &str, cache: &Path, content: &[u8]) -> (DebianBase, PathBuf) {
        let b = base(&["python3"]);
        let path = b.path(mirror, cache);
        std::fs::create_dir_all(cache).unwrap();
        std::fs::write(&path, content).unwrap();
        (b, path)
    }

    #[test]
    fn the_diff_id_is_the_tars_digest_and_follows_a_replaced_tar() {
        let dir = tempfile::tempdir().unwrap();
        let b = base(&["python3"]);
        assert_eq!(b.diff_id(DEFAULT_MIRROR, dir.path()).unwrap(), None);
        let (b, path) = cached(DEFAULT_MIRROR, dir.path(), b"one");
        let one = format!("sha256:{}", hex::encode(Sha256::digest(b"one")));
        assert_eq!(
            b.diff_id(DEFAULT_MIRROR, dir.path()).unwrap(),
            Some(one.clone())
        );
        assert!(read_record(&path).is_some_and(|r| r.diff_id == one));
        std::fs::write(&path, b"another").unwrap();
        let other = format!("sha256:{}", hex::encode(Sha256::digest(b"another")));
        assert_eq!(b.diff_id(DEFAULT_MIRROR, dir.path()).unwrap(), Some(other));
    }

    #[test]
    fn fetch_keeps_a_base_of_the_mirrors_release_and_one_it_cannot_check() {
        let m = crate::mirror::testing::serve();
        m.release("bookworm", "Date: Sat, 07 Nov 2026 10:13:39 UTC\n");
        let dir = tempfile::tempdir().unwrap();
        let (b, path) = cached(&m.url, dir.path(), b"base");
        let release = crate::mirror::release(&m.url, "bookworm").unwrap();
        let diff_id = file_digest(&path).unwrap();
        write_record(
            &path,
            &Record::of(&path, diff_id, Some(release.clone())).unwrap(),
        )
        .unwrap();
        match b.fetch(&m.url, dir.path()).unwrap() {
            Fetched::Current(p, r) => assert!(p == path && r == release),
            other => panic!("{other:?}"),
        }
        // The mirror gone: kept as it is.
        m.files.lock().unwrap().clear();
        match b.fetch(&m.url, dir.path()).unwrap() {
            Fetched::Unchecked(p, e) => {
                assert_eq!(p, path);
                assert!(e.to_string().contains("404"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"base");
    }

    #[test]
    fn a_base_that_cannot_be_made_again_stays_as_it_was() {
        // The mirror's release moved on, but it serves no packages: mmdebstrap fails (or is
        // missing, or not run as root); the old tar and its record are kept.
        let m = crate::mirror::testing::serve();
        m.release("bookworm", "Date: Sat, 07 Nov 2026 10:13:39 UTC\n");
        let dir = tempfile::tempdir().unwrap();
        let (b, path) = cached(&m.url, dir.path(), b"base");
        let old = crate::mirror::release(&m.url, "bookworm").unwrap();
        let diff_id = file_digest(&path).unwrap();
        write_record(
            &path,
            &Record::of(&path, diff_id.clone(), Some(old.clone())).unwrap(),
        )
        .unwrap();
        m.release("bookworm", "Date: Sat, 09 Jan 2027 10:00:00 UTC\n");
        let e = b.fetch(&m.url, dir.path()).unwrap_err();
        assert!(
            matches!(e, DebianError::Failed { .. } | DebianError::NoMmdebstrap(_)),
            "{e}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"base");
        let record = read_record(&path).unwrap();
        assert!(
            record.describes(&path) && record.release == Some(old) && record.diff_id == diff_id
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "the tar and its record alone: {names:?}");
    }

    #[test]
    fn option_like_names_are_refused() {
        assert!(base(&["python3"]).check().is_ok());
        assert!(base(&["--hook-dir=/x"]).check().is_err());
        assert!(base(&["a b"]).check().is_err());
    }
}
