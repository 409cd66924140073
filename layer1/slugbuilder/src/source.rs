//! The pushed tree: a tar on stdin unpacked into the app directory (regular files,
//! directories and symlinks only, nothing above the root), then `.slugignore` applied.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSetBuilder};

use crate::error::{io, BuildError};

/// Unpacks the tar `input` into `dir`.
pub fn unpack(input: impl Read, dir: &Path) -> Result<u64, BuildError> {
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    let mut count = 0;
    let entries = archive
        .entries()
        .map_err(|e| BuildError::Source(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| BuildError::Source(e.to_string()))?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink()) {
            continue; // pax headers, devices, fifos: nothing an app needs
        }
        let name = entry
            .path()
            .map_err(|e| BuildError::Source(e.to_string()))?
            .into_owned();
        let Some(rel) = clean(&name) else {
            return Err(BuildError::Escape(name.display().to_string()));
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        // unpack_in refuses paths through symlinks and above `dir`.
        let placed = entry
            .unpack_in(dir)
            .map_err(|e| BuildError::Source(format!("{}: {e}", rel.display())))?;
        if !placed {
            return Err(BuildError::Escape(name.display().to_string()));
        }
        count += 1;
    }
    Ok(count)
}

/// `name` without `.` components, refused when it is absolute or climbs with `..`.
fn clean(name: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Removes what `.slugignore` (glob patterns, one per line, `#` comments; a pattern without
/// `/` matches at any depth) names; returns how many paths went.
pub fn apply_slugignore(dir: &Path) -> Result<usize, BuildError> {
    let file = dir.join(".slugignore");
    let Ok(text) = fs::read_to_string(&file) else {
        return Ok(0);
    };
    let mut set = GlobSetBuilder::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let pattern = line.trim_start_matches('/').trim_end_matches('/');
        let full = if line.contains('/') {
            pattern.to_string()
        } else {
            format!("**/{pattern}")
        };
        let glob = Glob::new(&full).map_err(|e| BuildError::Malformed {
            what: ".slugignore".into(),
            reason: format!("pattern {line:?}: {e}"),
        })?;
        set.add(glob);
    }
    let set = set.build().map_err(|e| BuildError::Malformed {
        what: ".slugignore".into(),
        reason: e.to_string(),
    })?;
    let mut removed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(io(&d))? {
            let e = e.map_err(io(&d))?;
            let path = e.path();
            let rel = path.strip_prefix(dir).unwrap_or(&path);
            let is_dir = e.file_type().map_err(io(&path))?.is_dir();
            if set.is_match(rel) {
                if is_dir {
                    fs::remove_dir_all(&path).map_err(io(&path))?;
                } else {
                    fs::remove_file(&path).map_err(io(&path))?;
                }
                removed += 1;
            } else if is_dir {
                stack.push(path);
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`; write the raw name as a hostile client would.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn a_tree_unpacks_and_escapes_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let ok = tar_of(&[("app.py", b"print(1)\n"), ("./lib/x.py", b"")]);
        assert_eq!(unpack(ok.as_slice(), t.path()).unwrap(), 2);
        assert!(t.path().join("lib/x.py").is_file());
        for bad in ["../evil", "/etc/evil", "a/../../evil"] {
            let tar = tar_of(&[(bad, b"x")]);
            assert!(
                matches!(unpack(tar.as_slice(), t.path()), Err(BuildError::Escape(_))),
                "{bad}"
            );
        }
        assert!(!t.path().parent().unwrap().join("evil").exists());
    }

    #[test]
    fn slugignore_removes_what_it_names() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join("docs/big")).unwrap();
        fs::create_dir_all(d.join("src/test")).unwrap();
        for f in [
            "docs/big/a.pdf",
            "src/main.py",
            "src/test/t.py",
            "notes.psd",
            "src/x.psd",
        ] {
            fs::write(d.join(f), "x").unwrap();
        }
        fs::write(d.join(".slugignore"), "# assets\n*.psd\n/docs\nsrc/test\n").unwrap();
        assert_eq!(apply_slugignore(d).unwrap(), 4);
        assert!(d.join("src/main.py").is_file());
        for gone in ["docs", "src/test", "notes.psd", "src/x.psd"] {
            assert!(!d.join(gone).exists(), "{gone}");
        }
    }
}
