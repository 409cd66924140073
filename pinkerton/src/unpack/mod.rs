//! Applying a layer tar stream to an empty directory, in the form overlayfs reads as a lower
//! directory: whiteouts become 0/0 character devices and opaque directories carry the
//! `trusted.overlay.opaque` xattr. No entry can write outside the directory.

mod path;

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::EntryType;

use crate::digest::{Digest, Hasher};
use crate::manifest::Compression;
use path::{check_parents, prepare_parents, PrepareError};
pub use path::{clean, remove_any, Escape};

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
        /// The error.
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

/// Size of the chunks passed from the decompressing thread to the writing thread.
const CHUNK: usize = 256 * 1024;

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

/// Decompresses `input` into chunks sent to `tx`, hashing them; returns the digest and length
/// of the whole uncompressed stream.
fn decompress(
    input: &mut (dyn Read + Send),
    compression: Compression,
    limit: u64,
    tx: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
) -> io::Result<(Digest, u64)> {
    let mut decoder: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(CHUNK, input),
        )),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
    };
    let mut hasher = Hasher::new();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            match decoder.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            }
        }
        if filled == 0 {
            let len = hasher.len();
            return Ok((hasher.finish(), len));
        }
        chunk.truncate(filled);
        hasher.update(&chunk);
        if hasher.len() > limit {
            let e = || {
                io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    format!("stream exceeds {limit} bytes"),
                )
            };
            let _ = tx.send(Err(e()));
            return Err(e());
        }
        if tx.send(Ok(chunk)).is_err() {
            // Extraction stopped (it failed); its error is the one reported.
            return Err(io::Error::other("extraction stopped"));
        }
    }
}

/// Reads the chunks the decompressing thread sends.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
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

/// Ownership, mode, times and xattrs of an entry, read from its headers.
struct Meta {
    uid: u64,
    gid: u64,
    mode: u32,
    mtime: (i64, i64),
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Self, UnpackError> {
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

fn parse_pax_time(s: &str) -> Option<(i64, i64)> {
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
        self.set_meta(
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

    fn set_meta(
        &self,
        path: &Path,
        meta: &Meta,
        symlink: bool,
        dir: bool,
    ) -> Result<(), UnpackError> {
        let uid = u32::try_from(meta.uid).unwrap_or(u32::MAX - 1);
        let gid = u32::try_from(meta.gid).unwrap_or(u32::MAX - 1);
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_err(path))?;
        for (key, value) in &meta.xattrs {
            if key.starts_with("trusted.overlay.") {
                tracing::warn!(path = %path.display(), key, "overlay xattr in layer ignored");
                continue;
            }
            xattr::set(path, key, value).map_err(io_err(path))?;
        }
        if !symlink {
            fs::set_permissions(path, fs::Permissions::from_mode(meta.mode))
                .map_err(io_err(path))?;
        }
        if !dir {
            set_times(path, meta.mtime.0, meta.mtime.1)?;
        }
        Ok(())
    }

    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        for (dir, secs, nanos) in self.dirs.drain(..).rev() {
            set_times(&dir, secs, nanos)?;
        }
        Ok(())
    }
}

/// [`Unpacker::set_meta`] for a regular file, through its open descriptor.
fn set_file_meta(f: &fs::File, path: &Path, meta: &Meta) -> Result<(), UnpackError> {
    use xattr::FileExt as _;
    let uid = u32::try_from(meta.uid).unwrap_or(u32::MAX - 1);
    let gid = u32::try_from(meta.gid).unwrap_or(u32::MAX - 1);
    std::os::unix::fs::fchown(f, Some(uid), Some(gid)).map_err(io_err(path))?;
    for (key, value) in &meta.xattrs {
        if key.starts_with("trusted.overlay.") {
            tracing::warn!(path = %path.display(), key, "overlay xattr in layer ignored");
            continue;
        }
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

fn set_times(path: &Path, secs: i64, nanos: i64) -> Result<(), UnpackError> {
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

#[cfg(test)]
mod tests;
