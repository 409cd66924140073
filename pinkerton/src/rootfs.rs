//! Flattening an image's layers into one directory tree, for export and comparison with other
//! tools. Jobs do not use this: they mount the layers with overlayfs.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::store::{ImageRecord, Store};
use crate::unpack::{remove_any, OPAQUE_XATTR};

/// A flatten that failed.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The destination exists and is not an empty directory.
    #[error("destination {0} exists and is not empty; give a new or empty directory")]
    NotEmpty(PathBuf),
    /// A layer of the image is missing from the store.
    #[error("layer {0} of the image is missing from the store; pull the image again")]
    MissingLayer(String),
    /// A filesystem operation failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why it failed (the underlying error).
        source: io::Error,
    },
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> RootfsError + '_ {
    move |source| RootfsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn nix_at(path: &Path) -> impl FnOnce(nix::Error) -> RootfsError + '_ {
    move |e| RootfsError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// Writes the flattened filesystem of `image` to `dest` (created; must not hold anything).
///
/// The tree is built beside `dest` and renamed into place, so `dest` is either absent or
/// complete.
pub fn flatten(store: &Store, image: &ImageRecord, dest: &Path) -> Result<(), RootfsError> {
    if let Ok(mut entries) = fs::read_dir(dest) {
        if entries.next().is_some() {
            return Err(RootfsError::NotEmpty(dest.to_path_buf()));
        }
    } else if dest.exists() {
        return Err(RootfsError::NotEmpty(dest.to_path_buf()));
    }
    for d in &image.layers {
        if !store.has_layer(d) {
            return Err(RootfsError::MissingLayer(d.to_string()));
        }
    }
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.pinkerton-{}", std::process::id()));
    let _ = remove_any(&tmp);
    fs::create_dir(&tmp).map_err(at(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(at(&tmp))?;
    let result = (|| {
        for d in &image.layers {
            let mut links = HashMap::new();
            let mut dirs = Vec::new();
            apply_dir(&store.layer_path(d), &tmp, &mut links, &mut dirs)?;
            for (path, m) in dirs.iter().rev() {
                set_times(path, m)?;
            }
        }
        if dest.exists() {
            fs::remove_dir(dest).map_err(at(dest))?;
        }
        fs::rename(&tmp, dest).map_err(at(dest))
    })();
    if result.is_err() {
        let _ = remove_any(&tmp);
    }
    result
}

/// Applies the entries of one layer directory `src` onto `dst`.
fn apply_dir(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
    dirs: &mut Vec<(PathBuf, fs::Metadata)>,
) -> Result<(), RootfsError> {
    for entry in fs::read_dir(src).map_err(at(src))? {
        let entry = entry.map_err(at(src))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let m = fs::symlink_metadata(&from).map_err(at(&from))?;
        let ft = m.file_type();
        if ft.is_char_device() && m.rdev() == 0 {
            remove_any(&to).map_err(at(&to))?; // whiteout
            continue;
        }
        if ft.is_dir() {
            let opaque = xattr::get(&from, OPAQUE_XATTR)
                .ok()
                .flatten()
                .is_some_and(|v| v == b"y");
            let is_dir = fs::symlink_metadata(&to).is_ok_and(|t| t.is_dir());
            if opaque || !is_dir {
                remove_any(&to).map_err(at(&to))?;
                fs::create_dir(&to).map_err(at(&to))?;
            }
            copy_meta(&from, &to, &m, false)?;
            apply_dir(&from, &to, links, dirs)?;
            dirs.push((to, m));
            continue;
        }
        remove_any(&to).map_err(at(&to))?;
        if ft.is_symlink() {
            let target = fs::read_link(&from).map_err(at(&from))?;
            std::os::unix::fs::symlink(target, &to).map_err(at(&to))?;
        } else if ft.is_file() {
            if m.nlink() > 1 {
                if let Some(first) = links.get(&(m.dev(), m.ino())) {
                    fs::hard_link(first, &to).map_err(at(&to))?;
                    continue;
                }
                links.insert((m.dev(), m.ino()), to.clone());
            }
            fs::copy(&from, &to).map_err(at(&to))?;
        } else {
            let kind = if ft.is_char_device() {
                SFlag::S_IFCHR
            } else if ft.is_block_device() {
                SFlag::S_IFBLK
            } else if ft.is_fifo() {
                SFlag::S_IFIFO
            } else {
                continue; // sockets are not image content
            };
            mknod(&to, kind, Mode::from_bits_truncate(0o600), m.rdev()).map_err(nix_at(&to))?;
        }
        copy_meta(&from, &to, &m, ft.is_symlink())?;
        set_times(&to, &m)?;
    }
    Ok(())
}

fn copy_meta(from: &Path, to: &Path, m: &fs::Metadata, symlink: bool) -> Result<(), RootfsError> {
    std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid())).map_err(at(to))?;
    if let Ok(names) = xattr::list(from) {
        for name in names {
            if name.to_string_lossy().starts_with("trusted.overlay.") {
                continue;
            }
            if let Ok(Some(v)) = xattr::get(from, &name) {
                xattr::set(to, &name, &v).map_err(at(to))?;
            }
        }
    }
    if !symlink {
        fs::set_permissions(to, fs::Permissions::from_mode(m.mode() & 0o7777)).map_err(at(to))?;
    }
    Ok(())
}

fn set_times(path: &Path, m: &fs::Metadata) -> Result<(), RootfsError> {
    let atime = TimeSpec::new(m.atime(), m.atime_nsec());
    let mtime = TimeSpec::new(m.mtime(), m.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &atime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(nix_at(path))
}
