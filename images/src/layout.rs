//! Writing one-layer images reproducibly: a tar with sorted entries, zero times and root
//! ownership, gzip without a timestamp, JSON with sorted keys, so the same inputs always give
//! the same digests. Output is an OCI image layout (`oci-layout`, `index.json`, `blobs/`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// What an entry of the layer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A directory.
    Dir,
    /// A regular file with these bytes.
    File(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(String),
}

/// One entry: its content and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The content.
    pub content: Content,
    /// Permission bits.
    pub mode: u32,
}

/// The layer's entries by absolute path; parents are added as 0755 directories.
pub type Tree = BTreeMap<String, Entry>;

/// A failure writing the layout.
#[derive(Debug, thiserror::Error)]
#[error("writing the image layout at {path}: {source}")]
pub struct LayoutError {
    path: PathBuf,
    source: std::io::Error,
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Adds the missing parent directories of every entry.
fn with_parents(tree: &Tree) -> Tree {
    let mut out = tree.clone();
    for path in tree.keys() {
        let mut p = Path::new(path).parent();
        while let Some(dir) = p.filter(|d| *d != Path::new("/")) {
            out.entry(dir.display().to_string()).or_insert(Entry {
                content: Content::Dir,
                mode: 0o755,
            });
            p = dir.parent();
        }
    }
    out
}

/// The uncompressed layer: a tar of `tree` with fixed metadata.
pub fn layer_tar(tree: &Tree) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, e) in with_parents(tree) {
        let name = path.trim_start_matches('/');
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        match &e.content {
            Content::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, format!("{name}/"), std::io::empty())?;
            }
            Content::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, data.as_slice())?;
            }
            Content::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name, target)?;
            }
        }
    }
    b.into_inner()
}

/// The diff_id (uncompressed digest) of the layer [`write`] makes of `tree`.
pub fn tree_diff_id(tree: &Tree) -> std::io::Result<String> {
    Ok(sha256(&layer_tar(tree)?))
}

/// Image settings for the config.
#[derive(Debug, Clone, Default)]
pub struct ImageSettings {
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Cmd.
    pub cmd: Vec<String>,
    /// `K=V` environment.
    pub env: Vec<String>,
    /// Exposed ports (`80/tcp`).
    pub ports: Vec<String>,
    /// What built it, for the history.
    pub created_by: String,
}

/// One layer of an image.
#[derive(Debug, Clone, Copy)]
pub enum Layer<'a> {
    /// A file tree, written as a tar with fixed metadata.
    Tree(&'a Tree),
    /// An uncompressed tar on disk (a Debian base), gzipped as it is read.
    TarFile(&'a Path),
}

/// The digests of a written image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The manifest digest.
    pub manifest: String,
    /// The config digest (the image id).
    pub config: String,
    /// The layers' uncompressed digests, base first.
    pub diff_ids: Vec<String>,
}

/// A layer written into the blobs directory: its blob digest and size, its diff_id.
struct LayerBlob {
    digest: String,
    size: u64,
    diff_id: String,
}

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Gzips `layer` into `blobs` (without a timestamp), hashing both sides on the way.
fn write_layer(blobs: &Path, layer: Layer<'_>) -> std::io::Result<LayerBlob> {
    let tmp = blobs.join("layer.partial");
    let file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let out = Hashing {
        inner: file,
        hash: Sha256::new(),
        len: 0,
    };
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(out, flate2::Compression::default());
    let mut diff = Sha256::new();
    match layer {
        Layer::Tree(tree) => {
            let tar = layer_tar(tree)?;
            diff.update(&tar);
            gz.write_all(&tar)?;
        }
        Layer::TarFile(path) => {
            let mut f = std::fs::File::open(path)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = std::io::Read::read(&mut f, &mut buf)?;
                if n == 0 {
                    break;
                }
                diff.update(&buf[..n]);
                gz.write_all(&buf[..n])?;
            }
        }
    }
    let mut out = gz.finish()?;
    out.flush()?;
    let digest = format!("sha256:{}", hex::encode(out.hash.finalize()));
    std::fs::rename(&tmp, blobs.join(digest.trim_start_matches("sha256:")))?;
    Ok(LayerBlob {
        digest,
        size: out.len,
        diff_id: format!("sha256:{}", hex::encode(diff.finalize())),
    })
}

/// Writes an image of `layers` (base first) into the OCI layout at `dir` (created, or
/// replaced if it holds a layout), tagged `tag` (`org.opencontainers.image.ref.name`).
pub fn write(
    dir: &Path,
    layers: &[Layer<'_>],
    settings: &ImageSettings,
    tag: &str,
) -> Result<Written, LayoutError> {
    let err = |source| LayoutError {
        path: dir.to_path_buf(),
        source,
    };
    // Written beside the destination, then swapped in: a reader never sees half a layout.
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let blobs = tmp.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(err)?;
    let written: Vec<LayerBlob> = layers
        .iter()
        .map(|l| write_layer(&blobs, *l))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let diff_ids: Vec<String> = written.iter().map(|l| l.diff_id.clone()).collect();
    let ports: serde_json::Map<String, serde_json::Value> = settings
        .ports
        .iter()
        .map(|p| (p.clone(), serde_json::json!({})))
        .collect();
    let mut cfg = serde_json::json!({
        "Env": settings.env,
        "Entrypoint": settings.entrypoint,
        "Cmd": settings.cmd,
        "WorkingDir": "/",
    });
    if !ports.is_empty() {
        cfg["ExposedPorts"] = ports.into();
    }
    let history: Vec<serde_json::Value> = written
        .iter()
        .map(|_| serde_json::json!({"created": "1970-01-01T00:00:00Z", "created_by": settings.created_by}))
        .collect();
    let config = serde_json::json!({
        "architecture": pinkerton::platform::Platform::host().architecture,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    let config = serde_json::to_vec(&config).expect("json");
    let layer_descs: Vec<serde_json::Value> = written
        .iter()
        .map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l.digest, "size": l.size}))
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": layer_descs,
    });
    let manifest = serde_json::to_vec(&manifest).expect("json");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(&manifest),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    for blob in [&config, &manifest] {
        let d = sha256(blob);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), blob).map_err(err)?;
    }
    std::fs::write(tmp.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(err)?;
    std::fs::write(
        tmp.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .map_err(err)?;
    if dir.join("index.json").exists() {
        std::fs::remove_dir_all(dir).map_err(err)?;
    }
    std::fs::rename(&tmp, dir).map_err(err)?;
    Ok(Written {
        manifest: sha256(&manifest),
        config: sha256(&config),
        diff_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_tree_gives_the_same_digests() {
        let mut tree = Tree::new();
        tree.insert(
            "/bin/tool".into(),
            Entry {
                content: Content::File(b"#!/bin/sh\n".to_vec()),
                mode: 0o755,
            },
        );
        tree.insert(
            "/bin/alias".into(),
            Entry {
                content: Content::Symlink("tool".into()),
                mode: 0o777,
            },
        );
        let settings = ImageSettings {
            cmd: vec!["/bin/tool".into()],
            ..Default::default()
        };
        let t = tempfile::tempdir().unwrap();
        let a = write(&t.path().join("a"), &[Layer::Tree(&tree)], &settings, "x").unwrap();
        let b = write(&t.path().join("b"), &[Layer::Tree(&tree)], &settings, "x").unwrap();
        assert_eq!(a, b);
        let again = write(&t.path().join("a"), &[Layer::Tree(&tree)], &settings, "x").unwrap();
        assert_eq!(a, again);
        let names: Vec<String> = tar::Archive::new(layer_tar(&tree).unwrap().as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["bin/", "bin/alias", "bin/tool"]);
    }
}
