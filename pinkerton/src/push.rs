//! `push`: an OCI image layout or a `docker save` archive to a registry, as `docker push`
//! does. Blobs the repository has are skipped, blobs another named repository of the registry
//! has are mounted, the rest are uploaded (in one request, or in chunks when larger than the
//! chunk size) and checked against their digests while read; the manifest goes last, so a
//! failed push never leaves a tag pointing at missing content.
//!
//! A `docker save` archive holds uncompressed layers: they are gzipped (deterministically:
//! no name, no time) and pushed with a Docker schema 2 manifest, as `docker push` would.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::archive::{self, at, Archive};
use crate::config::ImageConfig;
use crate::digest::{Digest, Hasher};
use crate::import::ImportError;
use crate::manifest::{self, BlobRef, Compression, Manifest, ManifestError};
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError, RegistryOptions, UploadStart};

/// Blobs up to this size go in one request; larger ones in chunks of this size.
pub const DEFAULT_CHUNK_SIZE: u64 = 32 << 20;

/// Docker's media types for what a `docker save` archive is pushed as.
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A push that failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The archive or layout could not be read.
    #[error(transparent)]
    Source(#[from] ImportError),
    /// A manifest of the source could not be used.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The source holds several images and none was chosen.
    #[error("the source holds {count} images; choose one with --ref NAME (names: {names})")]
    Several {
        /// How many images.
        count: usize,
        /// Their names.
        names: String,
    },
    /// The source holds no image.
    #[error("{0} holds no image")]
    Empty(PathBuf),
    /// An index names a manifest the layout does not hold (copied for one platform only).
    #[error("the index names manifest {0}, which the layout does not hold; copy the image with all its platforms (skopeo copy --all) or push one platform's layout")]
    MissingManifest(Digest),
    /// A blob that had to come from another repository could not be mounted.
    #[error(
        "the registry could not mount blob {digest} from {from}; is the base image still there?"
    )]
    NotMounted {
        /// The blob.
        digest: Digest,
        /// The repositories tried.
        from: String,
    },
    /// A base image must be in the target's registry, whose blobs are mounted.
    #[error("the base {base} is in another registry than {target}; copy it there first (pinkerton push, or skopeo copy)")]
    OtherRegistry {
        /// The base.
        base: String,
        /// The target.
        target: String,
    },
    /// The base could not be read.
    #[error(transparent)]
    Pull(#[from] crate::pull::PullError),
    /// The target names a digest other than the manifest's.
    #[error("the target names digest {wanted}, but the manifest pushed is {actual}")]
    WrongDigest {
        /// The digest in the target reference.
        wanted: Digest,
        /// The manifest's digest.
        actual: Digest,
    },
}

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// How to reach the registry.
    pub registry: RegistryOptions,
    /// Blobs larger than this are uploaded in chunks of this size.
    pub chunk_size: u64,
    /// Repositories of the same registry to mount blobs from before uploading them.
    pub mount_from: Vec<String>,
    /// The image of an OCI layout to push (`org.opencontainers.image.ref.name`).
    pub reference: Option<String>,
    /// Blobs pushed at once.
    pub parallel: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            registry: RegistryOptions::default(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            mount_from: Vec::new(),
            reference: None,
            parallel: 4,
        }
    }
}

/// What happened to one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobAction {
    /// The repository had it.
    Exists,
    /// Mounted from this repository.
    Mounted(String),
    /// Uploaded in this many requests (1: monolithic).
    Uploaded(usize),
}

/// One blob of a push.
#[derive(Debug, Clone)]
pub struct BlobPushed {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// What was done.
    pub action: BlobAction,
}

/// A finished push.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// The target, pinned to the manifest's digest (`REGISTRY/NAME@sha256:...`).
    pub pinned: Reference,
    /// The manifest's digest.
    pub digest: Digest,
    /// Every blob, in push order.
    pub blobs: Vec<BlobPushed>,
}

/// A blob to push: where its bytes are (none: it must be mounted) and what they must be.
pub(crate) struct Blob {
    pub path: Option<PathBuf>,
    pub digest: Digest,
    pub size: u64,
}

/// A manifest to push after its blobs: under its digest, or under the target's tag.
struct Doc {
    media_type: String,
    bytes: Vec<u8>,
}

/// Pushes the image in `input` (a layout directory, or an archive file) to `target`;
/// `on_blob` hears of each blob as it is done.
pub async fn push(
    input: &Path,
    target: &Reference,
    opts: &PushOptions,
    on_blob: &(dyn Fn(&BlobPushed) + Sync),
) -> Result<PushReport, PushError> {
    let scratch = tempfile::tempdir().map_err(at(&std::env::temp_dir()))?;
    let archive = Archive::open(input, || {
        let dir = scratch.path().join("archive");
        std::fs::create_dir(&dir).map_err(at(&dir))?;
        Ok(dir)
    })?;
    // A layout first: newer `docker save` archives are one as well, with their digests.
    let (blobs, children, top) = if archive.is_oci_layout() {
        from_layout(&archive, opts.reference.as_deref(), input)?
    } else if archive.is_docker_save() {
        let work = scratch.path().join("gzip");
        std::fs::create_dir(&work).map_err(at(&work))?;
        from_docker_save(&archive, &work, input)?
    } else {
        return Err(ImportError::UnknownFormat(input.to_path_buf()).into());
    };
    let top_digest = Digest::of(&top.bytes);
    if let Some(wanted) = target.digest() {
        if wanted != &top_digest {
            return Err(PushError::WrongDigest {
                wanted: wanted.clone(),
                actual: top_digest,
            });
        }
    }
    let registry = Registry::for_push(target, &opts.registry)?;
    let registry = &registry;
    let pushed: Vec<BlobPushed> = stream::iter(blobs.into_iter().map(|b| async move {
        let action = push_blob(registry, &b, opts).await?;
        let done = BlobPushed {
            digest: b.digest,
            size: b.size,
            action,
        };
        on_blob(&done);
        Ok::<_, PushError>(done)
    }))
    .buffered(opts.parallel.max(1))
    .try_collect()
    .await?;
    for c in children {
        let digest = Digest::of(&c.bytes);
        registry
            .put_manifest(&digest.to_string(), &c.media_type, Bytes::from(c.bytes))
            .await?;
    }
    let selector = target.manifest_selector();
    registry
        .put_manifest(&selector, &top.media_type, Bytes::from(top.bytes))
        .await?;
    Ok(PushReport {
        pinned: target.with_digest(top_digest.clone()),
        digest: top_digest,
        blobs: pushed,
    })
}

type Plan = (Vec<Blob>, Vec<Doc>, Doc);

/// The blobs and manifests of a layout's image (an index's images first, by digest).
fn from_layout(
    archive: &Archive,
    reference: Option<&str>,
    input: &Path,
) -> Result<Plan, PushError> {
    let index = archive.index()?;
    let chosen = archive::choose(&index, reference)?;
    let desc = match chosen.as_slice() {
        [] => return Err(PushError::Empty(input.to_path_buf())),
        [one] => *one,
        many => {
            return Err(PushError::Several {
                count: many.len(),
                names: archive::ref_names(&index),
            })
        }
    };
    let top_ref = BlobRef::from_descriptor(desc)?;
    let top = archive.read_verified(&top_ref.digest)?;
    let mut blobs = Vec::new();
    let mut children = Vec::new();
    match manifest::parse(&top, Some(&top_ref.media_type))? {
        Manifest::Image(m) => image_blobs(archive, &m, &mut blobs)?,
        Manifest::Index(inner) => {
            for d in inner.manifests() {
                let r = BlobRef::from_descriptor(d)?;
                if !archive.blob_path(&r.digest).is_file() {
                    return Err(PushError::MissingManifest(r.digest));
                }
                let bytes = archive.read_verified(&r.digest)?;
                let Manifest::Image(m) = manifest::parse(&bytes, Some(&r.media_type))? else {
                    return Err(ManifestError::UnsupportedMediaType(
                        "an index nested twice".into(),
                    )
                    .into());
                };
                image_blobs(archive, &m, &mut blobs)?;
                children.push(Doc {
                    media_type: r.media_type,
                    bytes,
                });
            }
        }
    }
    Ok((
        blobs,
        children,
        Doc {
            media_type: top_ref.media_type,
            bytes: top,
        },
    ))
}

/// An image manifest's config and layers, each once.
fn image_blobs(
    archive: &Archive,
    m: &oci_spec::image::ImageManifest,
    out: &mut Vec<Blob>,
) -> Result<(), PushError> {
    for d in std::iter::once(m.config()).chain(m.layers()) {
        let r = BlobRef::from_descriptor(d)?;
        if out.iter().any(|b| b.digest == r.digest) {
            continue;
        }
        out.push(Blob {
            path: Some(archive.blob_path(&r.digest)),
            digest: r.digest,
            size: r.size,
        });
    }
    Ok(())
}

/// A `docker save` archive's one image: its layers gzipped into `work`, a schema 2 manifest.
fn from_docker_save(archive: &Archive, work: &Path, input: &Path) -> Result<Plan, PushError> {
    let entries = archive.save_entries()?;
    let e = match entries.as_slice() {
        [] => return Err(PushError::Empty(input.to_path_buf())),
        [one] => one,
        many => {
            let names: Vec<String> = many
                .iter()
                .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
                .collect();
            return Err(PushError::Several {
                count: many.len(),
                names: names.join(", "),
            });
        }
    };
    let cpath = archive.path(&e.config)?;
    let config_bytes = std::fs::read(&cpath).map_err(at(&cpath))?;
    let config = ImageConfig::parse(&config_bytes).map_err(ImportError::from)?;
    if config.diff_ids.len() != e.layers.len() {
        return Err(ManifestError::LayerCount {
            layers: e.layers.len(),
            diff_ids: config.diff_ids.len(),
        }
        .into());
    }
    let config_digest = Digest::of(&config_bytes);
    let config_path = work.join("config.json");
    std::fs::write(&config_path, &config_bytes).map_err(at(&config_path))?;
    let mut blobs = vec![Blob {
        path: Some(config_path),
        digest: config_digest.clone(),
        size: config_bytes.len() as u64,
    }];
    let mut layers = Vec::new();
    for (i, (rel, diff_id)) in e.layers.iter().zip(&config.diff_ids).enumerate() {
        let src = archive.path(rel)?;
        let out = work.join(format!("layer-{i}.tar.gz"));
        let (digest, size, actual) = gzip_layer(&src, &out)?;
        if &actual != diff_id {
            return Err(ImportError::DigestMismatch {
                path: src,
                expected: diff_id.clone(),
                actual,
            }
            .into());
        }
        layers.push(
            json!({"mediaType": DOCKER_LAYER_GZIP, "size": size, "digest": digest.to_string()}),
        );
        if !blobs.iter().any(|b| b.digest == digest) {
            blobs.push(Blob {
                path: Some(out),
                digest,
                size,
            });
        }
    }
    let doc = json!({
        "schemaVersion": 2,
        "mediaType": manifest::DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": config_bytes.len(), "digest": config_digest.to_string()},
        "layers": layers,
    });
    let bytes = serde_json::to_vec_pretty(&doc).expect("a JSON value serializes");
    Ok((
        blobs,
        Vec::new(),
        Doc {
            media_type: manifest::DOCKER_MANIFEST.into(),
            bytes,
        },
    ))
}

/// Gzips the layer tar `src` (itself possibly compressed) into `out`; returns the digest and
/// size of what was written and the digest of the tar (its diff_id).
pub(crate) fn gzip_layer(src: &Path, out: &Path) -> Result<(Digest, u64, Digest), PushError> {
    let mut input = BufReader::new(std::fs::File::open(src).map_err(at(src))?);
    let head = io::BufRead::fill_buf(&mut input).map_err(at(src))?.to_vec();
    let mut reader: Box<dyn Read> = match Compression::sniff(&head) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input).map_err(at(src))?),
        Compression::None => Box::new(input),
    };
    let file = std::fs::File::create(out).map_err(at(out))?;
    let hashed = HashingWriter {
        inner: BufWriter::new(file),
        hasher: Hasher::new(),
    };
    // No file name and time 0 in the header: the same layer gzips to the same digest.
    let mut gz = flate2::GzBuilder::new().write(hashed, flate2::Compression::fast());
    let mut diff = Hasher::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = reader.read(&mut buf).map_err(at(src))?;
        if n == 0 {
            break;
        }
        diff.update(&buf[..n]);
        gz.write_all(&buf[..n]).map_err(at(out))?;
    }
    let mut hashed = gz.finish().map_err(at(out))?;
    hashed.inner.flush().map_err(at(out))?;
    let size = hashed.hasher.len();
    Ok((hashed.hasher.finish(), size, diff.finish()))
}

struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Skips, mounts or uploads one blob.
pub(crate) async fn push_blob(
    registry: &Registry,
    b: &Blob,
    opts: &PushOptions,
) -> Result<BlobAction, PushError> {
    if registry.has_blob(&b.digest).await? {
        return Ok(BlobAction::Exists);
    }
    let mut session = None;
    for from in &opts.mount_from {
        match registry.start_upload(Some((&b.digest, from))).await? {
            UploadStart::Mounted => return Ok(BlobAction::Mounted(from.clone())),
            UploadStart::Session(s) => {
                if let Some(old) = session.replace(s) {
                    registry.cancel_upload(&old).await;
                }
            }
        }
    }
    let Some(path) = &b.path else {
        if let Some(s) = &session {
            registry.cancel_upload(s).await;
        }
        return Err(PushError::NotMounted {
            digest: b.digest.clone(),
            from: opts.mount_from.join(", "),
        });
    };
    let session = match session {
        Some(s) => s,
        None => match registry.start_upload(None).await? {
            UploadStart::Session(s) => s,
            UploadStart::Mounted => return Ok(BlobAction::Exists),
        },
    };
    match upload(registry, b, path, session.clone(), opts.chunk_size.max(1)).await {
        Ok(requests) => Ok(BlobAction::Uploaded(requests)),
        Err(e) => {
            registry.cancel_upload(&session).await;
            Err(e)
        }
    }
}

/// Uploads a blob's bytes through `session`, checking them against its digest and size
/// before the session is closed; returns the number of requests it took.
async fn upload(
    registry: &Registry,
    b: &Blob,
    path: &Path,
    mut session: reqwest::Url,
    chunk: u64,
) -> Result<usize, PushError> {
    let mut file = tokio::fs::File::open(path).await.map_err(at(path))?;
    let mut hasher = Hasher::new();
    let mut requests = 0;
    let mut offset = 0u64;
    let mut last = Bytes::new();
    loop {
        let mut buf = Vec::with_capacity(chunk.min(b.size.max(1)) as usize);
        (&mut file)
            .take(chunk)
            .read_to_end(&mut buf)
            .await
            .map_err(at(path))?;
        hasher.update(&buf);
        let data = Bytes::from(buf);
        let end = data.len() < chunk as usize || hasher.len() >= b.size;
        if end && offset == 0 {
            // All of it in one request: the closing PUT carries it.
            last = data;
            break;
        }
        if !data.is_empty() {
            session = registry
                .upload_chunk(&session, offset, data.clone())
                .await?;
            requests += 1;
            offset += data.len() as u64;
        }
        if end {
            break;
        }
    }
    let size = hasher.len();
    let actual = hasher.finish();
    if actual != b.digest || size != b.size {
        return Err(ImportError::DigestMismatch {
            path: path.to_path_buf(),
            expected: b.digest.clone(),
            actual,
        }
        .into());
    }
    registry.finish_upload(&session, &b.digest, last).await?;
    Ok(requests + 1)
}
