//! Applying a layer tar stream to an empty directory, in the form overlayfs reads as a lower
//! directory: whiteouts become 0/0 character devices and opaque directories carry the
//! `trusted.overlay.opaque` xattr. No entry can write outside the directory.

mod meta;
mod path;
mod stream;

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use tar::EntryType;

use crate::digest::Digest;
use crate::manifest::Compression;
use meta::{set_file_meta, set_path_meta, set_times, Meta};
use path::{check_parents, prepare_parents, PrepareError};
pub use path::{clean, remove_any, Escape};
use stream::{decompress, ChunkReader};

/// The xattr overlayfs reads to hide a lower directory's contents.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// A layer that cannot be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// An entry would write outside the layer directory.
    #[error("layer entry {entry:?} refused: {reason}; the layer is unsafe and was not stored")]
    Escape {
        /// The entry name as found in the tar.
        entry: String,
        /// How it would escape.
        reason: Escape,
    },
    /// A hard link points to a path that is outside the layer or not (yet) in it.
    #[error("hard link {entry:?} refused: its target {target:?} {reason}")]
    BadHardLink {
        /// The link entry.
        entry: String,
        /// Its target name.
        target: String,
        /// Why the target is unusable.
        reason: String,
    },
    /// An entry type this crate does not unpack.
    #[error("layer entry {entry:?} has unsupported tar type {kind:?}")]
    UnsupportedEntry {
        /// The entry name.
        entry: String,
        /// The tar type flag.
        kind: char,
    },
    /// The uncompressed layer is larger than the configured limit.
    #[error("layer is larger than the limit of {limit} bytes uncompressed (a decompression bomb?); raise --max-layer-size if it is genuine")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The stream is not a valid tar (or the compressed stream is corrupt).
    #[error("malformed layer stream: {0}")]
    Malformed(io::Error),
    /// A filesystem operation failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path being written.
        path: PathBuf,
        /// Why it failed (the underlying error).
        source: io::Error,
    },
}

/// What an unpack produced.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// Digest of the uncompressed tar stream (the layer's diff_id).
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream.
    pub size: u64,
    /// Number of tar entries applied.
    pub entries: u64,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn stream_err(e: io::Error) -> UnpackError {
    if e.kind() == io::ErrorKind::FileTooLarge {
        // The HashingReader's limit; the message carries no more than the kind.
        UnpackError::TooLarge { limit: 0 }
    } else {
        UnpackError::Malformed(e)
    }
}

/// Decompresses `input` and unpacks the tar into `dest` (an existing, empty directory).
///
/// Decompression and hashing run on one thread and tar extraction on another, so a large layer
/// uses two cores. At most `limit` uncompressed bytes are read. The stream is read to its end so
/// that the returned diff_id covers all of it. On error `dest` holds a partial tree: callers
/// unpack into a temporary directory and remove it.
pub fn unpack_layer(
    input: &mut (dyn Read + Send),
    compression: Compression,
    dest: &Path,
    limit: u64,
) -> Result<Unpacked, UnpackError> {
    let too_large = |e: UnpackError| match e {
        UnpackError::TooLarge { .. } => UnpackError::TooLarge { limit },
        other => other,
    };
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(16);
        let producer = scope.spawn(move || decompress(input, compression, limit, tx));
        let mut archive = tar::Archive::new(ChunkReader {
            rx,
            current: Vec::new(),
            pos: 0,
        });
        let mut unpacker = Unpacker {
            root: dest,
            dirs: Vec::new(),
            entries: 0,
            buf: vec![0; 1 << 20],
            verified: Default::default(),
        };
        let mut extract = || -> Result<(), UnpackError> {
            for entry in archive.entries().map_err(stream_err)? {
                unpacker.apply(entry.map_err(stream_err)?)?;
            }
            Ok(())
        };
        let result = match extract() {
            // Read the padding after the end-of-archive marker: the diff_id covers it.
            Ok(()) => io::copy(&mut archive.into_inner(), &mut io::sink())
                .map(drop)
                .map_err(stream_err),
            Err(e) => {
                drop(archive); // closes the channel, so the producer stops
                Err(e)
            }
        };
        let produced = producer.join().expect("decompression thread panicked");
        result.map_err(too_large)?;
        let (diff_id, size) = produced.map_err(|e| too_large(stream_err(e)))?;
        unpacker.finish_dirs()?;
        Ok(Unpacked {
            diff_id,
            size,
            entries: unpacker.entries,
        })
    })
}

struct Unpacker<'a> {
    root: &'a Path,
    /// Reused buffer for file contents.
    buf: Vec<u8>,
    /// Relative directories known to be real directories of this layer.
    verified: std::collections::HashSet<PathBuf>,
    /// Directories whose mtime is set once everything inside them exists.
    dirs: Vec<(PathBuf, i64, i64)>,
    entries: u64,
}

impl Unpacker<'_> {
    fn apply<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        self.entries += 1;
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let escape = |reason| UnpackError::Escape {
            entry: name.clone(),
            reason,
        };
        let Some(rel) = clean(Path::new(OsStr::from_bytes(&raw_name))).map_err(escape)? else {
            return Ok(()); // the layer root itself: its metadata is not ours to set
        };
        if raw_name.starts_with(b"/") {
            tracing::warn!(entry = %name, "absolute entry name made relative to the layer");
        }
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
            return Ok(());
        }
        let file_name = rel.file_name().map(|f| f.as_bytes()).unwrap_or_default();
        if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&rel, hidden, &name);
        }
        let full = self.root.join(&rel);
        self.prepare(&rel, &name)?;
        let meta = Meta::read(&mut entry)?;
        match kind {
            EntryType::Directory => {
                let existing = fs::symlink_metadata(&full).ok();
                if !existing.as_ref().is_some_and(|m| m.is_dir()) {
                    self.replace(&full)?;
                    fs::create_dir(&full).map_err(io_err(&full))?;
                }
                self.dirs.push((full.clone(), meta.mtime.0, meta.mtime.1));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let open = || {
                    OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(&full)
                };
                let mut f = match open() {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        self.replace(&full)?;
                        open()
                    }
                    other => other,
                }
                .map_err(io_err(&full))?;
                self.copy_contents(&mut entry, &mut f, &full)?;
                return set_file_meta(&f, &full, &meta);
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| {
                        UnpackError::Malformed(io::Error::other("symlink without target"))
                    })?
                    .into_owned();
                self.replace(&full)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &full)
                    .map_err(io_err(&full))?;
            }
            EntryType::Link => return self.hard_link(&mut entry, &rel, &full, &name),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let h = entry.header();
                let (major, minor) = if kind == EntryType::Fifo {
                    (0, 0)
                } else {
                    (
                        h.device_major()
                            .map_err(UnpackError::Malformed)?
                            .unwrap_or(0),
                        h.device_minor()
                            .map_err(UnpackError::Malformed)?
                            .unwrap_or(0),
                    )
                };
                let flag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                self.replace(&full)?;
                mknod(
                    &full,
                    flag,
                    Mode::from_bits_truncate(0o600),
                    makedev(major.into(), minor.into()),
                )
                .map_err(|e| UnpackError::Io {
                    path: full.clone(),
                    source: e.into(),
                })?;
            }
            other => {
                return Err(UnpackError::UnsupportedEntry {
                    entry: name,
                    kind: other.as_byte() as char,
                })
            }
        }
        set_path_meta(
            &full,
            &meta,
            kind == EntryType::Symlink,
            kind == EntryType::Directory,
        )
    }

    fn copy_contents(
        &mut self,
        from: &mut dyn Read,
        to: &mut fs::File,
        path: &Path,
    ) -> Result<(), UnpackError> {
        loop {
            let n = match from.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream_err(e)),
            };
            io::Write::write_all(to, &self.buf[..n]).map_err(io_err(path))?;
        }
    }

    /// Removes what is at `path`; forgets verified parents if a directory went away.
    fn replace(&mut self, path: &Path) -> Result<(), UnpackError> {
        if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            self.verified.clear();
        }
        remove_any(path).map_err(io_err(path))
    }

    fn prepare(&mut self, rel: &Path, name: &str) -> Result<(), UnpackError> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        if parent.as_os_str().is_empty() || self.verified.contains(parent) {
            return Ok(());
        }
        prepare_parents(self.root, rel).map_err(|e| match e {
            PrepareError::Escape(reason) => UnpackError::Escape {
                entry: name.to_string(),
                reason,
            },
            PrepareError::Io(path, source) => UnpackError::Io { path, source },
        })?;
        self.verified.extend(
            parent
                .ancestors()
                .filter(|a| !a.as_os_str().is_empty())
                .map(Path::to_path_buf),
        );
        Ok(())
    }

    /// `.wh.NAME` hides NAME of lower layers; `.wh..wh..opq` hides all lower siblings.
    fn whiteout(&mut self, rel: &Path, hidden: &[u8], name: &str) -> Result<(), UnpackError> {
        let dir_rel = rel.parent().unwrap_or(Path::new(""));
        if rel.file_name().map(|f| f.as_bytes()) == Some(OPAQUE_MARKER.as_bytes()) {
            self.prepare(rel, name)?;
            let dir = self.root.join(dir_rel);
            return xattr::set(&dir, OPAQUE_XATTR, b"y").map_err(io_err(&dir));
        }
        if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) || hidden.is_empty() {
            return Ok(()); // other AUFS metadata (.wh..wh.plnk and the like) is not content
        }
        self.prepare(rel, name)?;
        let target = self.root.join(dir_rel).join(OsStr::from_bytes(hidden));
        if fs::symlink_metadata(&target).is_ok() {
            // The same layer also holds the hidden name; whiteouts only hide lower layers.
            return Ok(());
        }
        mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|e| UnpackError::Io {
            path: target.clone(),
            source: e.into(),
        })
    }

    fn hard_link<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
        full: &Path,
        name: &str,
    ) -> Result<(), UnpackError> {
        let target_raw = entry
            .link_name_bytes()
            .ok_or_else(|| UnpackError::Malformed(io::Error::other("hard link without target")))?
            .into_owned();
        let target_name = String::from_utf8_lossy(&target_raw).into_owned();
        let bad = |reason: String| UnpackError::BadHardLink {
            entry: name.to_string(),
            target: target_name.clone(),
            reason,
        };
        let target_rel = clean(Path::new(OsStr::from_bytes(&target_raw)))
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("is the layer root".into()))?;
        check_parents(self.root, &target_rel).map_err(|e| match e {
            PrepareError::Escape(reason) => bad(reason.to_string()),
            PrepareError::Io(..) => bad("is not in this layer".into()),
        })?;
        let target = self.root.join(&target_rel);
        match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => return Err(bad("is a directory".into())),
            Ok(_) => {}
            Err(_) => return Err(bad("is not in this layer".into())),
        }
        if target_rel == rel {
            return Ok(());
        }
        self.replace(full)?;
        fs::hard_link(&target, full).map_err(io_err(full))
    }

    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        for (dir, secs, nanos) in self.dirs.drain(..).rev() {
            set_times(&dir, secs, nanos)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
