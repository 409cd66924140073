//! Debian bases: a root filesystem of Debian packages made by `mmdebstrap` as a tar,
//! reproducibly (`SOURCE_DATE_EPOCH` fixed, no device nodes, apt lists and caches cleaned),
//! and cached by what went into it, so a stack is downloaded once per host.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
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

    /// The base's tar in `cache` (made there first when missing; never seen half-written).
    pub fn tar(&self, mirror: &str, cache: &Path) -> Result<PathBuf, DebianError> {
        let path = cache.join(format!("debian-{}-{}.tar", self.suite, self.key(mirror)));
        if path.is_file() {
            return Ok(path);
        }
        let cache_err = |source| DebianError::Cache {
            path: cache.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(cache).map_err(cache_err)?;
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
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
        std::fs::rename(&tmp, &path).map_err(cache_err)?;
        Ok(path)
    }
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

    #[test]
    fn option_like_names_are_refused() {
        assert!(base(&["python3"]).check().is_ok());
        assert!(base(&["--hook-dir=/x"]).check().is_err());
        assert!(base(&["a b"]).check().is_err());
    }
}
