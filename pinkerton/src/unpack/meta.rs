//! Ownership, mode, times and xattrs of tar entries: read from the headers, applied to files.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::{io_err, UnpackError};

/// Ownership, mode, times and xattrs of an entry, read from its headers.
pub(super) struct Meta {
    pub(super) uid: u64,
    pub(super) gid: u64,
    pub(super) mode: u32,
    pub(super) mtime: (i64, i64),
    pub(super) xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    pub(super) fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Self, UnpackError> {
        let h = entry.header();
        let mut meta = Meta {
            uid: h.uid().map_err(UnpackError::Malformed)?,
            gid: h.gid().map_err(UnpackError::Malformed)?,
            mode: h.mode().map_err(UnpackError::Malformed)? & 0o7777,
            mtime: (h.mtime().map_err(UnpackError::Malformed)? as i64, 0),
            xattrs: Vec::new(),
        };
        if let Some(exts) = entry.pax_extensions().map_err(UnpackError::Malformed)? {
            for ext in exts {
                let ext = ext.map_err(UnpackError::Malformed)?;
                let Ok(key) = ext.key() else { continue };
                let value = ext.value_bytes();
                let num = || {
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok())
                };
                match key {
                    "uid" => meta.uid = num().unwrap_or(meta.uid),
                    "gid" => meta.gid = num().unwrap_or(meta.gid),
                    "mtime" => {
                        if let Some(t) = std::str::from_utf8(value).ok().and_then(parse_pax_time) {
                            meta.mtime = t;
                        }
                    }
                    k => {
                        if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                            meta.xattrs.push((name.to_string(), value.to_vec()));
                        }
                    }
                }
            }
        }
        Ok(meta)
    }
}

pub(super) fn parse_pax_time(s: &str) -> Option<(i64, i64)> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    for (i, d) in frac.bytes().take(9).enumerate() {
        if !d.is_ascii_digit() {
            return None;
        }
        nanos += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
    }
    Some((secs, nanos))
}

impl Meta {
    /// Owner and group; ids beyond 32 bits map to the overflow id.
    fn owner(&self) -> (u32, u32) {
        let id = |v: u64| u32::try_from(v).unwrap_or(u32::MAX - 1);
        (id(self.uid), id(self.gid))
    }

    /// The xattrs to set: overlayfs's own are never taken from a layer.
    fn xattrs<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = &'a (String, Vec<u8>)> {
        self.xattrs.iter().filter(move |(key, _)| {
            let overlay = key.starts_with("trusted.overlay.");
            if overlay {
                tracing::warn!(path = %path.display(), key, "overlay xattr in layer ignored");
            }
            !overlay
        })
    }
}

/// Applies `meta` to the entry at `path` (not following a symlink there). Directory times are
/// set later, once their contents exist.
pub(super) fn set_path_meta(
    path: &Path,
    meta: &Meta,
    symlink: bool,
    dir: bool,
) -> Result<(), UnpackError> {
    let (uid, gid) = meta.owner();
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_err(path))?;
    for (key, value) in meta.xattrs(path) {
        xattr::set(path, key, value).map_err(io_err(path))?;
    }
    if !symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode)).map_err(io_err(path))?;
    }
    if !dir {
        set_times(path, meta.mtime.0, meta.mtime.1)?;
    }
    Ok(())
}

/// [`set_path_meta`] for a regular file, through its open descriptor.
pub(super) fn set_file_meta(f: &fs::File, path: &Path, meta: &Meta) -> Result<(), UnpackError> {
    use xattr::FileExt as _;
    let (uid, gid) = meta.owner();
    std::os::unix::fs::fchown(f, Some(uid), Some(gid)).map_err(io_err(path))?;
    for (key, value) in meta.xattrs(path) {
        f.set_xattr(key, value).map_err(io_err(path))?;
    }
    f.set_permissions(fs::Permissions::from_mode(meta.mode))
        .map_err(io_err(path))?;
    let t = TimeSpec::new(meta.mtime.0, meta.mtime.1);
    nix::sys::stat::futimens(f, &t, &t).map_err(|e| UnpackError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

pub(super) fn set_times(path: &Path, secs: i64, nanos: i64) -> Result<(), UnpackError> {
    let t = TimeSpec::new(secs, nanos);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| UnpackError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })
}
