//! Turning tar entry names into safe paths inside a layer directory.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

/// Why an entry name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// `..` components climb above the layer root.
    ParentDir,
    /// A parent directory of the entry is a symlink in this layer.
    ThroughSymlink,
    /// A parent of the entry exists and is not a directory.
    ParentNotDirectory,
}

impl std::fmt::Display for Escape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Escape::ParentDir => "its '..' components climb above the layer root",
            Escape::ThroughSymlink => "one of its parent directories is a symlink",
            Escape::ParentNotDirectory => "one of its parent directories is not a directory",
        })
    }
}

/// The cleaned, relative form of a tar entry name, `None` for the layer root itself.
///
/// Leading `/` is dropped (as Docker does: entries are always relative to the layer), `.`
/// components vanish and `..` is resolved lexically; climbing above the root is refused.
pub fn clean(name: &Path) -> Result<Option<PathBuf>, Escape> {
    let mut parts: Vec<&OsStr> = Vec::new();
    for c in name.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                parts.pop().ok_or(Escape::ParentDir)?;
            }
            Component::Normal(p) => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(parts.iter().collect()))
}

/// Makes sure every parent of `rel` under `root` is a real directory of this layer, creating
/// missing ones with mode 0755; never follows a symlink.
pub fn prepare_parents(root: &Path, rel: &Path) -> Result<(), PrepareError> {
    walk_parents(root, rel, true)
}

/// Checks, without creating anything, that every parent of `rel` is a real directory.
pub fn check_parents(root: &Path, rel: &Path) -> Result<(), PrepareError> {
    walk_parents(root, rel, false)
}

fn walk_parents(root: &Path, rel: &Path, create: bool) -> Result<(), PrepareError> {
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    let mut cur = root.to_path_buf();
    for c in parent.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(PrepareError::Escape(Escape::ThroughSymlink))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(PrepareError::Escape(Escape::ParentNotDirectory)),
            Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&cur)
                    .map_err(|e| PrepareError::Io(cur.clone(), e))?;
            }
            Err(e) => return Err(PrepareError::Io(cur.clone(), e)),
        }
    }
    Ok(())
}

/// Failure to prepare the parents of an entry.
#[derive(Debug)]
pub enum PrepareError {
    /// The entry would leave the layer.
    Escape(Escape),
    /// A filesystem error at the path.
    Io(PathBuf, io::Error),
}

/// Removes whatever is at `path` (file, link, or whole directory tree) without following links.
pub fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning() {
        let c = |s: &str| clean(Path::new(s));
        assert_eq!(c("./a/b").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(c("/etc/passwd").unwrap(), Some(PathBuf::from("etc/passwd")));
        assert_eq!(c("a/../b").unwrap(), Some(PathBuf::from("b")));
        assert_eq!(c("./").unwrap(), None);
        assert_eq!(c("../x").unwrap_err(), Escape::ParentDir);
        assert_eq!(c("a/../../x").unwrap_err(), Escape::ParentDir);
        assert_eq!(c("/../x").unwrap_err(), Escape::ParentDir);
    }

    #[test]
    fn parents_through_symlinks_are_refused() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/", t.path().join("link")).unwrap();
        let r = prepare_parents(t.path(), Path::new("link/etc/passwd"));
        assert!(matches!(
            r,
            Err(PrepareError::Escape(Escape::ThroughSymlink))
        ));
        prepare_parents(t.path(), Path::new("a/b/c")).unwrap();
        assert!(t.path().join("a/b").is_dir());
        assert!(!t.path().join("a/b/c").exists());
        fs::write(t.path().join("f"), b"").unwrap();
        let r = prepare_parents(t.path(), Path::new("f/x"));
        assert!(matches!(
            r,
            Err(PrepareError::Escape(Escape::ParentNotDirectory))
        ));
    }
}
