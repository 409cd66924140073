//! Pruning the cache of Debian bases: a base is cached under a key of everything that went
//! into it (`debian-SUITE-KEY.tar` and its record `.json`), so a recipe whose packages change
//! leaves its old base behind, and a fetch killed half way leaves its temporary file
//! (`debian-SUITE-KEY.tmp.PID.N`). [`prune`] removes both, keeping the bases it is told to.

use std::path::{Path, PathBuf};

/// A file [`prune`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Where it was.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Why it went.
    pub why: Why,
}

/// Why a file was pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A base (or its record) that none of the kept bases is.
    Unused,
    /// A temporary file whose writer (the process its name holds) is gone.
    Abandoned,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Why::Unused => "no recipe uses it",
            Why::Abandoned => "left by a fetch that did not finish",
        })
    }
}

/// Pruning could not read the cache or remove a file from it.
#[derive(Debug, thiserror::Error)]
#[error("pruning the cache {path}: {source} (check the directory's permissions)")]
pub struct PruneError {
    /// The file or directory.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Removes from `cache` every Debian base whose tar is not one of `keep` (with its record),
/// records whose tar is gone, and temporary files of writers that no longer run. Other
/// files are left alone. A missing cache holds nothing to prune.
pub fn prune(cache: &Path, keep: &[PathBuf]) -> Result<Vec<Pruned>, PruneError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PruneError { path, source }
    };
    let entries = match std::fs::read_dir(cache) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(cache)(e)),
    };
    let kept: Vec<&std::ffi::OsStr> = keep.iter().filter_map(|p| p.file_name()).collect();
    let mut names: Vec<String> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(err(cache))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    let mut pruned = Vec::new();
    for name in names {
        let Some(why) = verdict(&name, &kept) else {
            continue;
        };
        let path = cache.join(&name);
        let bytes = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
        match std::fs::remove_file(&path) {
            Ok(()) => pruned.push(Pruned { path, bytes, why }),
            // Removed meanwhile (by another prune, or a fetch that finished).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(&path)(e)),
        }
    }
    Ok(pruned)
}

/// Whether the cache file `name` goes, and why.
fn verdict(name: &str, kept: &[&std::ffi::OsStr]) -> Option<Why> {
    let stem = name.strip_prefix("debian-")?;
    if let Some((_, writer)) = stem.split_once(".tmp.") {
        // `json.tmp.PID.N` (a record) or `tmp.PID.N` (a tar).
        let pid: u32 = writer.split('.').next()?.parse().ok()?;
        let running = Path::new("/proc").join(pid.to_string()).exists();
        return (!running).then_some(Why::Abandoned);
    }
    // A record (`.json`) goes with its tar, also when that tar is gone already.
    let tar = match name.strip_suffix(".json") {
        Some(base) => format!("{base}.tar"),
        None if name.ends_with(".tar") => name.to_string(),
        None => return None,
    };
    kept.iter()
        .all(|k| *k != tar.as_str())
        .then_some(Why::Unused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str, len: usize) {
        std::fs::write(dir.join(name), vec![0u8; len]).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn unused_bases_orphan_records_and_abandoned_files_go_the_rest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let me = std::process::id();
        // A pid no process has: above the kernel's largest.
        let gone = 4_194_305;
        for (name, len) in [
            ("debian-bookworm-aaa.tar", 10),
            ("debian-bookworm-aaa.json", 1),
            ("debian-bookworm-old.tar", 30),
            ("debian-bookworm-old.json", 2),
            ("debian-bookworm-orphan.json", 3),
            (&format!("debian-bookworm-new.tmp.{me}.0"), 4),
            (&format!("debian-bookworm-dead.tmp.{gone}.3"), 5),
            (&format!("debian-bookworm-aaa.json.tmp.{gone}.1"), 6),
            ("notes.txt", 7),
            ("debian-bookworm-odd.tmp.x", 8),
        ] {
            touch(d, name, len);
        }
        let keep = [d.join("debian-bookworm-aaa.tar")];
        let pruned = prune(d, &keep).unwrap();
        let got: Vec<(String, u64, Why)> = pruned
            .iter()
            .map(|p| {
                let name = p.path.file_name().unwrap().to_str().unwrap().to_string();
                (name, p.bytes, p.why)
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    format!("debian-bookworm-aaa.json.tmp.{gone}.1"),
                    6,
                    Why::Abandoned
                ),
                (
                    format!("debian-bookworm-dead.tmp.{gone}.3"),
                    5,
                    Why::Abandoned
                ),
                ("debian-bookworm-old.json".into(), 2, Why::Unused),
                ("debian-bookworm-old.tar".into(), 30, Why::Unused),
                ("debian-bookworm-orphan.json".into(), 3, Why::Unused),
            ]
        );
        assert_eq!(
            names(d),
            [
                "debian-bookworm-aaa.json",
                "debian-bookworm-aaa.tar",
                &format!("debian-bookworm-new.tmp.{me}.0"),
                "debian-bookworm-odd.tmp.x",
                "notes.txt",
            ]
        );
        // Run again: nothing left to prune.
        assert!(prune(d, &keep).unwrap().is_empty());
    }

    #[test]
    fn a_missing_cache_has_nothing_to_prune_and_an_unreadable_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(prune(&dir.path().join("none"), &[]).unwrap().is_empty());
        let file = dir.path().join("file");
        touch(dir.path(), "file", 1);
        let e = prune(&file, &[]).unwrap_err();
        assert_eq!(e.path, file);
        assert!(e.to_string().contains("pruning the cache"), "{e}");
    }
}
