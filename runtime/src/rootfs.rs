//! A job's root filesystem: an overlay of the image's unpacked layers (read-only lower dirs)
//! and a per-job upper dir.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Longest mount option string the kernel takes (one page, with the terminating NUL).
const MAX_OPTIONS: usize = 4095;

/// The root filesystem cannot be mounted or unmounted.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A layer path contains a character overlayfs options cannot carry.
    #[error("layer path {0} contains ':' or ','; move the store to a plain path")]
    BadPath(PathBuf),
    /// The lower dirs do not fit in one mount option string.
    #[error("the image has too many layers ({0}) for one overlay mount from this store path; use a shorter --store path")]
    TooManyLayers(usize),
    /// mount(2) or umount(2) failed.
    #[error("cannot {op} overlay at {path}: {source}")]
    Mount {
        /// `mount` or `unmount`.
        op: &'static str,
        /// The mount point.
        path: PathBuf,
        /// Why it failed (the underlying error).
        source: nix::Error,
    },
}

/// The overlay option string for `layers` (base first).
pub fn overlay_options(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<String, RootfsError> {
    for p in layers.iter().map(PathBuf::as_path).chain([upper, work]) {
        if p.to_string_lossy().contains([':', ',']) {
            return Err(RootfsError::BadPath(p.to_path_buf()));
        }
    }
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if options.len() > MAX_OPTIONS {
        return Err(RootfsError::TooManyLayers(layers.len()));
    }
    Ok(options)
}

/// Mounts the overlay of `layers` (base first, at least one) with `upper`/`work` at `target`.
pub fn mount_overlay(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), RootfsError> {
    let options = overlay_options(layers, upper, work)?;
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|source| RootfsError::Mount {
        op: "mount",
        path: target.to_path_buf(),
        source,
    })
}

/// Unmounts `target` if it is mounted.
pub fn unmount(target: &Path) -> Result<(), RootfsError> {
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(source) => Err(RootfsError::Mount {
            op: "unmount",
            path: target.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_put_the_top_layer_first_and_refuse_bad_paths() {
        let layers = vec![PathBuf::from("/s/base"), PathBuf::from("/s/top")];
        let o = overlay_options(&layers, Path::new("/j/upper"), Path::new("/j/work")).unwrap();
        assert_eq!(
            o,
            "lowerdir=/s/top:/s/base,upperdir=/j/upper,workdir=/j/work"
        );
        let bad = vec![PathBuf::from("/s/a:b")];
        assert!(matches!(
            overlay_options(&bad, Path::new("/u"), Path::new("/w")),
            Err(RootfsError::BadPath(_))
        ));
        let many: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/var/lib/flynn/pinkerton/layers/sha256/{i:064}/fs")))
            .collect();
        assert!(matches!(
            overlay_options(&many, Path::new("/u"), Path::new("/w")),
            Err(RootfsError::TooManyLayers(100))
        ));
    }
}
