//! Describing a directory tree entry by entry, to compare two unpacks of the same image.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// What a tree holds at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `dir`, `file`, `symlink`, `fifo`, `char`, `block`, `socket`.
    pub kind: &'static str,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// SHA-256 of a file's content, or a symlink's target.
    pub content: String,
    /// Link count of regular files (hard links show as counts above 1).
    pub nlink: u64,
    /// Device number of device nodes.
    pub rdev: u64,
    /// Modification time of non-directories (directory mtimes change as entries are added).
    pub mtime: Option<i64>,
    /// Extended attributes in the `user.` namespace.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Every path under `root` (relative, `/`-separated) with its [`Node`]; the root excluded.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let (kind, content) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_symlink() {
            ("symlink", fs::read_link(&p).unwrap().display().to_string())
        } else if ft.is_file() {
            ("file", crate::sha256_hex(&fs::read(&p).unwrap()))
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else if ft.is_char_device() {
            ("char", String::new())
        } else if ft.is_block_device() {
            ("block", String::new())
        } else {
            ("socket", String::new())
        };
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        out.insert(
            rel,
            Node {
                kind,
                mode: if ft.is_symlink() {
                    0
                } else {
                    m.mode() & 0o7777
                },
                uid: m.uid(),
                gid: m.gid(),
                content,
                nlink: if ft.is_file() { m.nlink() } else { 0 },
                rdev: if ft.is_char_device() || ft.is_block_device() {
                    m.rdev()
                } else {
                    0
                },
                mtime: (!ft.is_dir()).then_some(m.mtime()),
                xattrs: user_xattrs(&p),
            },
        );
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

fn user_xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = xattr::list(p)
        .map(|names| {
            names
                .filter(|n| n.to_string_lossy().starts_with("user."))
                .filter_map(|n| Some((n.to_string_lossy().into_owned(), xattr::get(p, &n).ok()??)))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Human-readable differences between two snapshots; empty when they are equal.
pub fn diff(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>) -> Vec<String> {
    let mut out = Vec::new();
    for (path, na) in a {
        match b.get(path) {
            None => out.push(format!("only in first: {path}")),
            Some(nb) if na != nb => out.push(format!("{path}: {na:?} != {nb:?}")),
            _ => {}
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(format!("only in second: {path}"));
    }
    out
}

/// Every path under `root` except lock files: to check that a failed operation changed nothing.
pub fn store_state(root: &Path) -> BTreeMap<String, Node> {
    snapshot(root)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("locks"))
        .collect()
}
