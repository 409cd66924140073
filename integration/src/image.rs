//! Images made from entries the test describes: layers as tar streams (hostile ones too), an
//! OCI image layout on disk, and pushes to a registry with skopeo.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use tar::{EntryType, Header};

use crate::{run_ok, sha256_hex};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// A layer under construction: tar entries in order.
pub struct Layer {
    tar: tar::Builder<Vec<u8>>,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Layer")
    }
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

/// A built layer blob.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// The (compressed) blob.
    pub blob: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// `sha256:` digest of the uncompressed tar.
    pub diff_id: String,
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Self {
        Self {
            tar: tar::Builder::new(Vec::new()),
        }
    }

    /// Adds an entry with the raw name and link name given, unchecked (for hostile layers).
    #[allow(clippy::too_many_arguments)]
    pub fn raw(
        &mut self,
        kind: EntryType,
        name: &str,
        link: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        assert!(
            name.len() <= 100 && link.len() <= 100,
            "raw names are limited to 100 bytes"
        );
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_700_000_000);
        if matches!(kind, EntryType::Char | EntryType::Block | EntryType::Fifo) {
            h.set_device_major(0).unwrap();
            h.set_device_minor(0).unwrap();
        }
        h.set_cksum();
        self.tar.append(&h, data).unwrap();
        self
    }

    /// A directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.raw(
            EntryType::Directory,
            &format!("{path}/"),
            "",
            b"",
            mode,
            0,
            0,
        )
    }

    /// A regular file owned by root.
    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        self.raw(EntryType::Regular, path, "", data, mode, 0, 0)
    }

    /// A regular file with an owner.
    pub fn file_owned(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        self.raw(EntryType::Regular, path, "", data, mode, uid, gid)
    }

    /// A symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Symlink, path, target, b"", 0o777, 0, 0)
    }

    /// A hard link to an earlier entry of this layer.
    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Link, path, target, b"", 0o644, 0, 0)
    }

    /// A character device node.
    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Char);
        h.set_path(path).unwrap();
        h.set_mode(0o666);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_size(0);
        h.set_cksum();
        self.tar.append(&h, &[][..]).unwrap();
        self
    }

    /// A regular file with extended attributes, carried as PAX `SCHILY.xattr.*` records.
    pub fn file_with_xattrs(
        &mut self,
        path: &str,
        data: &[u8],
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.tar
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        self.file(path, data, 0o644)
    }

    /// A named pipe.
    pub fn fifo(&mut self, path: &str) -> &mut Self {
        self.raw(EntryType::Fifo, path, "", b"", 0o644, 0, 0)
    }

    /// A whiteout deleting `path` of lower layers.
    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.raw(EntryType::Regular, &wh, "", b"", 0o644, 0, 0)
    }

    /// Marks `dir` opaque: lower layers' contents of it are hidden.
    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.raw(
            EntryType::Regular,
            &format!("{dir}/.wh..wh..opq"),
            "",
            b"",
            0o644,
            0,
            0,
        )
    }

    /// A busybox-static root: `bin/busybox` with a symlink per applet, and the usual dirs.
    pub fn busybox_root(&mut self) -> &mut Self {
        let busybox = fs::read("/bin/busybox").expect("busybox-static is installed");
        for (d, m) in [
            ("bin", 0o755),
            ("etc", 0o755),
            ("tmp", 0o1777),
            ("root", 0o700),
            ("dev", 0o755),
            ("proc", 0o755),
            ("sys", 0o755),
        ] {
            self.dir(d, m);
        }
        self.file("bin/busybox", &busybox, 0o755);
        let list = run_ok(Command::new("/bin/busybox").arg("--list"));
        for applet in list.lines().filter(|a| !a.is_empty() && *a != "busybox") {
            self.symlink(&format!("bin/{applet}"), "busybox");
        }
        self.file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            0o644,
        );
        self.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644);
        self
    }

    /// Finishes the layer.
    pub fn build(&mut self, compression: Compression) -> LayerBlob {
        let tar = std::mem::replace(&mut self.tar, tar::Builder::new(Vec::new()))
            .into_inner()
            .unwrap();
        let diff_id = format!("sha256:{}", sha256_hex(&tar));
        let (blob, media_type) = match compression {
            Compression::None => (tar, "application/vnd.oci.image.layer.v1.tar"),
            Compression::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&tar).unwrap();
                (
                    gz.finish().unwrap(),
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                )
            }
            Compression::Zstd => (
                zstd::encode_all(&tar[..], 3).unwrap(),
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        };
        LayerBlob {
            blob,
            media_type: media_type.into(),
            diff_id,
        }
    }
}

/// An OCI image layout directory that images are written into.
#[derive(Debug)]
pub struct OciLayout {
    /// The layout directory.
    pub dir: PathBuf,
    index: Vec<Value>,
}

fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": format!("sha256:{}", sha256_hex(data)), "size": data.len()})
}

impl OciLayout {
    /// Creates an empty layout in `dir`.
    pub fn new(dir: &Path) -> Self {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let layout = Self {
            dir: dir.to_path_buf(),
            index: Vec::new(),
        };
        layout.write_index();
        layout
    }

    /// Stores a blob; returns its descriptor with `media_type`.
    pub fn blob(&self, media_type: &str, data: &[u8]) -> Value {
        fs::write(self.dir.join("blobs/sha256").join(sha256_hex(data)), data).unwrap();
        descriptor(media_type, data)
    }

    /// Writes an image manifest (and its config) for `arch`; returns the manifest descriptor.
    pub fn manifest(&self, layers: &[LayerBlob], arch: &str, config: Value) -> Value {
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        let cfg = json!({
            "architecture": arch, "os": "linux", "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": layers.iter().map(|_| json!({"created_by": "integration test"})).collect::<Vec<_>>(),
        });
        let cfg = serde_json::to_vec(&cfg).unwrap();
        let cfg_desc = self.blob("application/vnd.oci.image.config.v1+json", &cfg);
        let layer_descs: Vec<Value> = layers
            .iter()
            .map(|l| self.blob(&l.media_type, &l.blob))
            .collect();
        let m = json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cfg_desc, "layers": layer_descs,
        });
        let mut d = self.blob(
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&m).unwrap(),
        );
        d["platform"] = json!({"architecture": arch, "os": "linux"});
        d
    }

    /// Adds a single-platform image named `tag`.
    pub fn add_image(&mut self, tag: &str, layers: &[LayerBlob], config: Value) -> &mut Self {
        let mut d = self.manifest(layers, "amd64", config);
        d.as_object_mut().unwrap().remove("platform");
        self.tag(tag, d)
    }

    /// Adds an index named `tag` over the given manifest descriptors.
    pub fn add_index(&mut self, tag: &str, manifests: Vec<Value>) -> &mut Self {
        let idx = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
        let d = self.blob(
            "application/vnd.oci.image.index.v1+json",
            &serde_json::to_vec(&idx).unwrap(),
        );
        self.tag(tag, d)
    }

    fn tag(&mut self, tag: &str, mut d: Value) -> &mut Self {
        d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        self.index
            .retain(|e| e["annotations"]["org.opencontainers.image.ref.name"] != tag);
        self.index.push(d);
        self.write_index();
        self
    }

    fn write_index(&self) {
        let idx = json!({"schemaVersion": 2, "manifests": self.index});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&idx).unwrap(),
        )
        .unwrap();
    }

    /// Pushes image `tag` to `dest` (`127.0.0.1:PORT/repo:tag`) with skopeo; `extra` adds
    /// flags such as `--format v2s2` or `--all`.
    pub fn push(&self, tag: &str, dest: &str, extra: &[&str]) {
        run_ok(
            Command::new("skopeo")
                .args(["copy", "--quiet", "--dest-tls-verify=false"])
                .args(extra)
                .arg(format!("oci:{}:{tag}", self.dir.display()))
                .arg(format!("docker://{dest}")),
        );
    }
}

/// Pushes a busybox image (`/bin/sh` as Cmd, `PATH=/bin`, with `/home` and `/www`) to
/// `registry` (`HOST:PORT`) as `REGISTRY/test/busybox:v1`, building it in `scratch`; returns
/// the reference.
pub fn push_busybox(registry: &str, scratch: &std::path::Path) -> String {
    let mut layout = OciLayout::new(&scratch.join("layout"));
    let layer = Layer::new()
        .busybox_root()
        .dir("home", 0o755)
        .dir("www", 0o755)
        .build(Compression::Gzip);
    layout.add_image(
        "bb",
        &[layer],
        serde_json::json!({"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]}),
    );
    let image = format!("{registry}/test/busybox:v1");
    layout.push("bb", &image, &[]);
    image
}

/// Where the stack tests find the Debian bases `script/test` fetched (`flynn-images fetch`).
pub const STACK_CACHE: &str = "/var/cache/flynn-test/images";

/// Builds the workspace recipe `recipe` with `flynn-images` into the layout `out`, tagged
/// `flynn/RECIPE:test`, and into the pinkerton store `store` when given; returns the
/// manifest digest it printed.
pub fn build_recipe(recipe: &str, out: &Path, store: Option<&Path>) -> String {
    let bin = crate::workspace_bin("flynn-images");
    let mut cmd = Command::new(&bin);
    cmd.args(["build", recipe, "--bin-dir"])
        .arg(bin.parent().unwrap())
        .arg("--out")
        .arg(out)
        .args([
            "--cache",
            STACK_CACHE,
            "--tag",
            &format!("flynn/{recipe}:test"),
        ]);
    if let Some(s) = store {
        cmd.arg("--store").arg(s);
    }
    let printed = run_ok(&mut cmd);
    printed.split_whitespace().nth(1).unwrap().to_string()
}
