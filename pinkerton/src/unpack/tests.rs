use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::meta::parse_pax_time;
use super::*;

/// A tar with entries whose raw names are written as given (no checks, unlike tar::Builder).
struct RawTar(tar::Builder<Vec<u8>>);

impl RawTar {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn entry(&mut self, kind: EntryType, name: &str, link: &str, data: &[u8]) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn bytes(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()))
            .into_inner()
            .unwrap()
    }
}

fn root_only() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "unpack tests must run as root in CI"
    );
    eprintln!("SKIPPED: unpack tests need root (mknod, chown); run them as root");
    false
}

fn unpack(tar: &[u8]) -> (tempfile::TempDir, Result<Unpacked, UnpackError>) {
    let dir = tempfile::tempdir().unwrap();
    let r = unpack_layer(&mut &tar[..], Compression::None, dir.path(), 1 << 30);
    (dir, r)
}

#[test]
fn regular_entries_keep_owner_mode_time_and_links() {
    if !root_only() {
        return;
    }
    let tar = RawTar::new()
        .entry(EntryType::Directory, "etc/", "", b"")
        .entry(
            EntryType::Regular,
            "etc/hosts",
            "",
            b"127.0.0.1 localhost\n",
        )
        .entry(EntryType::Link, "etc/hosts2", "etc/hosts", b"")
        .entry(EntryType::Symlink, "etc/link", "/etc/hosts", b"")
        .entry(EntryType::Fifo, "run.fifo", "", b"")
        .bytes();
    let (dir, r) = unpack(&tar);
    let r = r.unwrap();
    assert_eq!(r.diff_id, Digest::of(&tar));
    let m = fs::metadata(dir.path().join("etc/hosts")).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777, m.nlink()),
        (1000, 1000, 0o644, 2)
    );
    assert_eq!(m.mtime(), 1_600_000_000);
    assert_eq!(
        fs::metadata(dir.path().join("etc")).unwrap().mtime(),
        1_600_000_000
    );
    assert_eq!(
        fs::read_link(dir.path().join("etc/link")).unwrap(),
        Path::new("/etc/hosts")
    );
    assert!(fs::symlink_metadata(dir.path().join("run.fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn whiteouts_and_opaque_dirs_take_overlay_form() {
    if !root_only() {
        return;
    }
    let tar = RawTar::new()
        .entry(EntryType::Regular, "a/.wh.gone", "", b"")
        .entry(EntryType::Regular, "b/.wh..wh..opq", "", b"")
        .entry(EntryType::Regular, "b/kept", "", b"x")
        .entry(EntryType::Regular, ".wh..wh.plnk", "", b"")
        .bytes();
    let (dir, r) = unpack(&tar);
    r.unwrap();
    let w = fs::symlink_metadata(dir.path().join("a/gone")).unwrap();
    assert!(w.file_type().is_char_device());
    assert_eq!(w.rdev(), 0);
    assert_eq!(
        xattr::get(dir.path().join("b"), OPAQUE_XATTR)
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(dir.path().join("b/kept").exists());
    assert!(!dir.path().join(".wh..wh.plnk").exists());
    assert!(!dir.path().join("b/.wh..wh..opq").exists());
}

#[test]
fn escapes_are_refused() {
    if !root_only() {
        return;
    }
    let cases: Vec<Vec<u8>> = vec![
        RawTar::new()
            .entry(EntryType::Regular, "../evil", "", b"x")
            .bytes(),
        RawTar::new()
            .entry(EntryType::Regular, "a/../../evil", "", b"x")
            .bytes(),
        RawTar::new()
            .entry(EntryType::Symlink, "link", "/", b"")
            .entry(EntryType::Regular, "link/tmp/evil", "", b"x")
            .bytes(),
        RawTar::new()
            .entry(EntryType::Symlink, "up", "..", b"")
            .entry(EntryType::Regular, "up/evil", "", b"x")
            .bytes(),
        RawTar::new()
            .entry(EntryType::Link, "hl", "../../etc/passwd", b"")
            .bytes(),
        RawTar::new()
            .entry(EntryType::Symlink, "link", "/etc", b"")
            .entry(EntryType::Link, "hl", "link/passwd", b"")
            .bytes(),
        RawTar::new()
            .entry(EntryType::Link, "hl", "not/here", b"")
            .bytes(),
        RawTar::new()
            .entry(EntryType::Symlink, "link", "/tmp", b"")
            .entry(EntryType::Regular, "link/.wh.x", "", b"")
            .bytes(),
    ];
    for (i, tar) in cases.iter().enumerate() {
        let (_dir, r) = unpack(tar);
        let err = r.expect_err(&format!("case {i} must fail"));
        assert!(
            matches!(
                err,
                UnpackError::Escape { .. } | UnpackError::BadHardLink { .. }
            ),
            "case {i}: {err}"
        );
    }
}

#[test]
fn absolute_names_land_inside_the_layer() {
    if !root_only() {
        return;
    }
    let tar = RawTar::new()
        .entry(EntryType::Regular, "/abs/file", "", b"in")
        .bytes();
    let (dir, r) = unpack(&tar);
    r.unwrap();
    assert_eq!(fs::read(dir.path().join("abs/file")).unwrap(), b"in");
}

#[test]
fn decompression_bombs_stop_at_the_limit() {
    let zeros = vec![0u8; 4 << 20];
    let tar = RawTar::new()
        .entry(EntryType::Regular, "big", "", &zeros)
        .bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 64 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let err = unpack_layer(&mut &gz[..], Compression::Gzip, dir.path(), 1 << 20).unwrap_err();
    assert!(
        matches!(err, UnpackError::TooLarge { limit } if limit == 1 << 20),
        "{err}"
    );
}

#[test]
fn truncated_streams_are_malformed() {
    let tar = RawTar::new()
        .entry(EntryType::Regular, "f", "", &[1u8; 5000])
        .bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    let cut = &gz[..gz.len() / 2];
    let dir = tempfile::tempdir().unwrap();
    let err = unpack_layer(&mut &cut[..], Compression::Gzip, dir.path(), 1 << 30).unwrap_err();
    assert!(
        matches!(err, UnpackError::Malformed(_) | UnpackError::Io { .. }),
        "{err}"
    );
}

#[test]
fn pax_times_parse() {
    assert_eq!(
        parse_pax_time("1600000000.5"),
        Some((1_600_000_000, 500_000_000))
    );
    assert_eq!(parse_pax_time("12"), Some((12, 0)));
    assert_eq!(parse_pax_time("x"), None);
}
