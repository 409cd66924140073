//! The content-addressed store: blobs by digest, layers unpacked once by diff_id, image records.
//!
//! ```text
//! ROOT/blobs/sha256/HEX          manifests, indexes and configs, verified
//! ROOT/layers/sha256/HEX/fs/     a layer unpacked in overlayfs lower-dir form
//! ROOT/layers/sha256/HEX/layer.json
//! ROOT/images.json               image records (name -> manifest, config, layers)
//! ROOT/tmp/PID-N/                work in progress, renamed into place when complete
//! ROOT/locks/                    flock files
//! ROOT/uses/USER.json            layers a running job reads, kept by rm and gc
//! ```
//!
//! Everything becomes visible by `rename`, so a process killed at any point leaves either the
//! old state or the new one. Pulls hold the store lock shared; `gc` and `rm` hold it exclusive.

mod gc;
mod images;
mod uses;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
pub use gc::GcReport;
pub use images::ImageRecord;
pub use uses::Use;

/// The default store location.
pub const DEFAULT_ROOT: &str = "/var/lib/flynn/pinkerton";

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("store: cannot access {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why it failed (the underlying error).
        source: io::Error,
    },
    /// A store file does not parse.
    #[error("store: {path} is corrupt ({reason}); remove it and pull again")]
    Corrupt {
        /// The file it concerns.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Content did not match the digest it was stored under.
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes.
        actual: Digest,
    },
    /// No image matches the name or id.
    #[error("no such image: {0}")]
    NoSuchImage(String),
    /// Several images match an id prefix.
    #[error("image id prefix {0:?} is ambiguous; give more characters")]
    Ambiguous(String),
    /// The image is read by a running job.
    #[error("image {image} is in use by {user}; stop and remove that job first")]
    InUse {
        /// The image, as asked for.
        image: String,
        /// Who uses it (a job).
        user: String,
    },
}

pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Metadata kept beside an unpacked layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerInfo {
    /// The uncompressed digest.
    pub diff_id: Digest,
    /// Uncompressed tar size in bytes.
    pub size: u64,
    /// Number of tar entries.
    pub entries: u64,
}

/// A handle on a store directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A temporary directory under the store's `tmp/`, removed on drop unless committed.
#[derive(Debug)]
pub struct TempDir {
    path: Option<PathBuf>,
}

impl TempDir {
    /// Its path.
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("temp dir used after commit")
    }

    fn take(mut self) -> PathBuf {
        self.path.take().expect("temp dir committed twice")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_dir_all(&p);
        }
    }
}

/// A held lock on a store file; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _lock: Flock<File>,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for sub in ["blobs/sha256", "layers/sha256", "tmp", "locks"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_at(&p))?;
        }
        Ok(Self { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock_file(&self, name: &str, arg: FlockArg) -> Result<StoreLock, StoreError> {
        let path = self.root.join("locks").join(name);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_at(&path))?;
        let lock = Flock::lock(f, arg).map_err(|(_, e)| StoreError::Io {
            path,
            source: e.into(),
        })?;
        Ok(StoreLock { _lock: lock })
    }

    /// Held by pulls and imports while they add content.
    pub fn lock_shared(&self) -> Result<StoreLock, StoreError> {
        self.lock_file("store.lock", FlockArg::LockShared)
    }

    /// Held by `gc` and `rm` while they delete content.
    pub fn lock_exclusive(&self) -> Result<StoreLock, StoreError> {
        self.lock_file("store.lock", FlockArg::LockExclusive)
    }

    /// Serialises work on one layer, so two pulls of it download it once.
    pub fn lock_layer(&self, diff_id: &Digest) -> Result<StoreLock, StoreError> {
        self.lock_file(
            &format!("layer-{}.lock", diff_id.hex()),
            FlockArg::LockExclusive,
        )
    }

    /// Locks every layer of `diff_ids` that is not stored yet, in one global (sorted) order so
    /// that concurrent pulls and imports cannot deadlock; returns the held locks.
    pub fn lock_missing_layers(&self, diff_ids: &[Digest]) -> Result<Vec<StoreLock>, StoreError> {
        let mut missing: Vec<&Digest> = diff_ids.iter().filter(|d| !self.has_layer(d)).collect();
        missing.sort();
        missing.dedup();
        missing.into_iter().map(|d| self.lock_layer(d)).collect()
    }

    /// Sum of the uncompressed sizes of the stored layers among `diff_ids`.
    pub fn layers_size(&self, diff_ids: &[Digest]) -> u64 {
        diff_ids
            .iter()
            .filter_map(|d| self.layer_info(d))
            .map(|i| i.size)
            .sum()
    }

    /// A new empty temporary directory.
    pub fn temp_dir(&self) -> Result<TempDir, StoreError> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self
            .root
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).map_err(io_at(&path))?;
        Ok(TempDir { path: Some(path) })
    }

    /// Removes temporary directories left by processes that are no longer running.
    pub fn sweep_tmp(&self) -> Result<usize, StoreError> {
        let dir = self.root.join("tmp");
        let mut removed = 0;
        for e in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let e = e.map_err(io_at(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().and_then(|p| p.parse::<i32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                remove_path(&e.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// True when the blob is stored.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Stores `data` under `d` after checking it matches.
    pub fn put_blob(&self, d: &Digest, data: &[u8]) -> Result<(), StoreError> {
        let actual = Digest::of(data);
        if &actual != d {
            return Err(StoreError::DigestMismatch {
                expected: d.clone(),
                actual,
            });
        }
        write_atomic(&self.blob_path(d), data)
    }

    /// Reads a blob, re-checking its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(d);
        let data = fs::read(&p).map_err(io_at(&p))?;
        let actual = Digest::of(&data);
        if &actual != d {
            return Err(StoreError::Corrupt {
                path: p,
                reason: format!("content is {actual}"),
            });
        }
        Ok(data)
    }

    fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(diff_id.hex())
    }

    /// The unpacked tree of a layer (an overlayfs lower dir).
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.layer_dir(diff_id).join("fs")
    }

    /// The layer's metadata, if the layer is stored.
    pub fn layer_info(&self, diff_id: &Digest) -> Option<LayerInfo> {
        let p = self.layer_dir(diff_id).join("layer.json");
        serde_json::from_slice(&fs::read(p).ok()?).ok()
    }

    /// True when the layer is fully unpacked in the store.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_info(diff_id)
            .is_some_and(|i| &i.diff_id == diff_id)
    }

    /// Moves a finished unpack (`tmp` holding `fs/`) into place as layer `info.diff_id`.
    pub fn commit_layer(&self, tmp: TempDir, info: &LayerInfo) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(info).expect("layer info serialises");
        let meta = tmp.path().join("layer.json");
        fs::write(&meta, json).map_err(io_at(&meta))?;
        let dest = self.layer_dir(&info.diff_id);
        if self.has_layer(&info.diff_id) {
            return Ok(()); // another pull finished it first; `tmp` is dropped
        }
        if dest.exists() {
            remove_path(&dest)?; // a stale partial directory from an older layout
        }
        let src = tmp.take();
        fs::rename(&src, &dest).map_err(io_at(&dest))
    }
}

/// Removes a file or directory tree; missing is fine.
pub(crate) fn remove_path(p: &Path) -> Result<(), StoreError> {
    crate::unpack::remove_any(p).map_err(io_at(p))
}

/// Writes `data` to `path` through a temporary file, fsync and rename.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    write_replace(path, data, true)
}

/// Writes `data` to `path` through a temporary file and rename, with an fsync first when
/// `sync` (records that must outlive a power loss; a job's use need not, the job would not).
pub(crate) fn write_replace(path: &Path, data: &[u8], sync: bool) -> Result<(), StoreError> {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        if sync {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_at(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_verified_and_atomic() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let d = Digest::of(b"hello");
        assert!(matches!(
            s.put_blob(&d, b"other"),
            Err(StoreError::DigestMismatch { .. })
        ));
        assert!(!s.has_blob(&d));
        s.put_blob(&d, b"hello").unwrap();
        assert_eq!(s.read_blob(&d).unwrap(), b"hello");
        fs::write(s.blob_path(&d), b"tampered").unwrap();
        assert!(matches!(s.read_blob(&d), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn temp_dirs_vanish_unless_committed_and_dead_ones_are_swept() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let tmp = s.temp_dir().unwrap();
        let p = tmp.path().to_path_buf();
        drop(tmp);
        assert!(!p.exists());
        fs::create_dir(t.path().join("tmp/999999999-1")).unwrap();
        let live = s.temp_dir().unwrap();
        assert_eq!(s.sweep_tmp().unwrap(), 1);
        assert!(live.path().exists());
        let tmp = s.temp_dir().unwrap();
        fs::create_dir(tmp.path().join("fs")).unwrap();
        let d = Digest::of(b"layer");
        s.commit_layer(
            tmp,
            &LayerInfo {
                diff_id: d.clone(),
                size: 5,
                entries: 0,
            },
        )
        .unwrap();
        assert!(s.has_layer(&d));
        assert!(s.layer_path(&d).is_dir());
    }
}
