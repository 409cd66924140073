//! `pull`: resolve a reference, download missing layers in parallel while unpacking them, and
//! record the image. Nothing becomes visible in the store unless every part verified.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use oci_spec::image::ImageManifest;
use tokio::sync::mpsc;

use crate::config::{ConfigError, ImageConfig};
use crate::digest::Digest;
use crate::layer::{unpack_verified, Expected, LayerError};
use crate::manifest::{self, BlobRef, Compression, Manifest, ManifestError};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError, RegistryOptions, MAX_DOCUMENT};
use crate::store::{ImageRecord, LayerInfo, Store, StoreError, StoreLock, TempDir};

/// Default cap on one layer's uncompressed size (guards against decompression bombs).
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 32 << 30;

/// A pull that failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A manifest could not be used.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The image config could not be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// A manifest's bytes do not match the digest that named it.
    #[error("{what} failed verification: expected {expected}, got {actual}; nothing was stored")]
    DigestMismatch {
        /// Which document.
        what: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// The image is built for another platform.
    #[error(
        "image {reference} is for {image}, not {wanted}; ask for platform {image} to pull it anyway"
    )]
    PlatformMismatch {
        /// The reference.
        reference: String,
        /// The image's platform.
        image: String,
        /// The platform asked for.
        wanted: String,
    },
    /// A layer download failed while streaming.
    #[error("downloading layer {digest} failed")]
    Download {
        /// The layer blob.
        digest: Digest,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A background task died.
    #[error("internal error: a pull task panicked or was cancelled: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to pick from multi-platform images.
    pub platform: Platform,
    /// Layers downloaded at once.
    pub parallel: usize,
    /// Largest uncompressed layer accepted.
    pub max_layer_size: u64,
    /// Registry access.
    pub registry: RegistryOptions,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            platform: Platform::host(),
            parallel: 4,
            max_layer_size: DEFAULT_MAX_LAYER_SIZE,
            registry: RegistryOptions::default(),
        }
    }
}

/// What a pull reports as it goes.
#[derive(Debug, Clone)]
pub enum PullEvent {
    /// The manifest was resolved.
    Resolved {
        /// The image manifest digest.
        digest: Digest,
        /// Layers in the image.
        layers: usize,
    },
    /// A layer is already in the store.
    LayerExists {
        /// The layer blob.
        digest: Digest,
    },
    /// A layer download started.
    LayerStarted {
        /// The layer blob.
        digest: Digest,
        /// Its compressed size.
        size: u64,
    },
    /// Bytes of a layer arrived.
    LayerProgress {
        /// The layer blob.
        digest: Digest,
        /// Bytes received so far.
        received: u64,
    },
    /// A layer is downloaded, unpacked and verified.
    LayerDone {
        /// The layer blob.
        digest: Digest,
    },
}

/// Receives [`PullEvent`]s.
pub type Progress = Arc<dyn Fn(PullEvent) + Send + Sync>;

/// A progress receiver that ignores everything.
pub fn no_progress() -> Progress {
    Arc::new(|_| {})
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, PullError> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

/// Pulls `reference` into `store` and records it; returns the record.
pub async fn pull(
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    progress: Progress,
) -> Result<ImageRecord, PullError> {
    let s = store.clone();
    let _store_lock = blocking(move || {
        s.sweep_tmp()?;
        s.lock_shared()
    })
    .await?;
    let registry = Arc::new(Registry::new(reference, &opts.registry)?);
    let (manifest_bytes, manifest_digest, manifest) =
        resolve(&registry, reference, &opts.platform).await?;
    let config_ref = BlobRef::from_descriptor(manifest.config())?;
    let layers: Vec<BlobRef> = manifest
        .layers()
        .iter()
        .map(BlobRef::from_descriptor)
        .collect::<Result<_, _>>()?;
    let compressions: Vec<Compression> = layers
        .iter()
        .map(|l| Compression::from_media_type(&l.media_type))
        .collect::<Result<_, _>>()?;
    let config_bytes = if store.has_blob(&config_ref.digest) {
        store.read_blob(&config_ref.digest)?
    } else {
        let limit = config_ref.size.min(MAX_DOCUMENT);
        let bytes = registry.blob_bytes(&config_ref.digest, limit).await?;
        verify(
            &format!("image config {}", config_ref.digest),
            &config_ref.digest,
            &bytes,
        )?;
        bytes
    };
    let config = ImageConfig::parse(&config_bytes)?;
    if config.diff_ids.len() != layers.len() {
        return Err(ManifestError::LayerCount {
            layers: layers.len(),
            diff_ids: config.diff_ids.len(),
        }
        .into());
    }
    if !opts.platform.matches(&config.platform) {
        return Err(PullError::PlatformMismatch {
            reference: reference.to_string(),
            image: config.platform.to_string(),
            wanted: opts.platform.to_string(),
        });
    }
    progress(PullEvent::Resolved {
        digest: manifest_digest.clone(),
        layers: layers.len(),
    });

    let fetched = fetch_layers(
        store,
        &registry,
        &layers,
        &compressions,
        &config,
        opts,
        &progress,
    )
    .await?;
    for (tmp, info) in fetched.units {
        store.commit_layer(tmp, &info)?;
    }
    drop(fetched.locks);
    store.put_blob(&config_ref.digest, &config_bytes)?;
    store.put_blob(&manifest_digest, &manifest_bytes)?;
    let size = store.layers_size(&config.diff_ids);
    let record = ImageRecord {
        name: reference.to_string(),
        id: config_ref.digest,
        manifest: Some(manifest_digest),
        layers: config.diff_ids,
        platform: config.platform,
        size,
        created: ImageRecord::now(),
    };
    store.add_image(record.clone())?;
    Ok(record)
}

fn verify(what: &str, expected: &Digest, bytes: &[u8]) -> Result<(), PullError> {
    let actual = Digest::of(bytes);
    if &actual != expected {
        return Err(PullError::DigestMismatch {
            what: what.to_string(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(())
}

/// Fetches the manifest, following an index to the wanted platform; verifies digests.
pub(crate) async fn resolve(
    registry: &Registry,
    reference: &Reference,
    platform: &Platform,
) -> Result<(Vec<u8>, Digest, ImageManifest), PullError> {
    let resp = registry.manifest(&reference.manifest_selector()).await?;
    let digest = Digest::of(&resp.bytes);
    let what = format!("manifest of {reference}");
    if let Some(pinned) = reference.digest() {
        verify(&what, pinned, &resp.bytes)?;
    } else if let Some(header) = &resp.digest_header {
        verify(&what, header, &resp.bytes)?;
    }
    match manifest::parse(&resp.bytes, resp.content_type.as_deref())? {
        Manifest::Image(m) => Ok((resp.bytes, digest, *m)),
        Manifest::Index(index) => {
            let chosen = manifest::select_platform(&index, platform)?;
            let resp = registry.manifest(&chosen.digest.to_string()).await?;
            verify(
                &format!("manifest {} of {reference}", chosen.digest),
                &chosen.digest,
                &resp.bytes,
            )?;
            match manifest::parse(&resp.bytes, resp.content_type.as_deref())? {
                Manifest::Image(m) => Ok((resp.bytes, chosen.digest, *m)),
                Manifest::Index(_) => Err(ManifestError::UnsupportedMediaType(
                    "an index nested inside an index".into(),
                )
                .into()),
            }
        }
    }
}

struct Fetched {
    units: Vec<(TempDir, LayerInfo)>,
    locks: Vec<StoreLock>,
}

async fn fetch_layers(
    store: &Store,
    registry: &Arc<Registry>,
    layers: &[BlobRef],
    compressions: &[Compression],
    config: &ImageConfig,
    opts: &PullOptions,
    progress: &Progress,
) -> Result<Fetched, PullError> {
    let s = store.clone();
    let diff_ids = config.diff_ids.clone();
    let locks = blocking(move || s.lock_missing_layers(&diff_ids)).await?;
    // With the locks held, whatever is still missing is ours to fetch, once per diff_id.
    let mut scheduled = std::collections::HashSet::new();
    let mut todo = Vec::new();
    for (i, diff_id) in config.diff_ids.iter().enumerate() {
        if store.has_layer(diff_id) || !scheduled.insert(diff_id) {
            progress(PullEvent::LayerExists {
                digest: layers[i].digest.clone(),
            });
        } else {
            todo.push(i);
        }
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let results: Vec<Result<(TempDir, LayerInfo), PullError>> = stream::iter(todo)
        .map(|i| {
            let expected = Expected {
                blob: Some((layers[i].digest.clone(), layers[i].size)),
                diff_id: config.diff_ids[i].clone(),
            };
            let job = LayerJob {
                store: store.clone(),
                registry: registry.clone(),
                compression: compressions[i],
                expected,
                limit: opts.max_layer_size,
                progress: progress.clone(),
                cancel: cancel.clone(),
            };
            async move {
                let r = job.run().await;
                if r.is_err() {
                    job.cancel.store(true, Ordering::Relaxed);
                }
                r
            }
        })
        .buffer_unordered(opts.parallel.max(1))
        .collect()
        .await;
    let mut units = Vec::new();
    let mut first_error = None;
    for r in results {
        // Results arrive in completion order: the first error is the cause, later ones are
        // the other layers being cancelled.
        match r {
            Ok(u) => units.push(u),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(Fetched { units, locks }),
    }
}

struct LayerJob {
    store: Store,
    registry: Arc<Registry>,
    compression: Compression,
    expected: Expected,
    limit: u64,
    progress: Progress,
    cancel: Arc<AtomicBool>,
}

impl LayerJob {
    async fn run(&self) -> Result<(TempDir, LayerInfo), PullError> {
        let (digest, size) = self
            .expected
            .blob
            .clone()
            .expect("registry layers have a blob digest");
        let mut resp = self.registry.blob(&digest).await?;
        (self.progress)(PullEvent::LayerStarted {
            digest: digest.clone(),
            size,
        });
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
        let (store, compression, expected, limit) = (
            self.store.clone(),
            self.compression,
            self.expected.clone(),
            self.limit,
        );
        let unpack = tokio::task::spawn_blocking(move || {
            let mut reader = ChannelReader {
                rx,
                current: Bytes::new(),
            };
            unpack_verified(&store, &mut reader, compression, &expected, limit)
        });
        let mut received = 0u64;
        let mut download_error = None;
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                let _ = tx.send(Err(io::Error::other("pull cancelled"))).await;
                break;
            }
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    received += chunk.len() as u64;
                    (self.progress)(PullEvent::LayerProgress {
                        digest: digest.clone(),
                        received,
                    });
                    if received > size {
                        // Longer than the descriptor: stop here; the unpacker reports the size.
                        let _ = tx.send(Ok(chunk)).await;
                        break;
                    }
                    if tx.send(Ok(chunk)).await.is_err() {
                        break; // the unpacker stopped early; it has the reason
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                    download_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let result = unpack.await?;
        if let Some(source) = download_error {
            return Err(PullError::Download { digest, source });
        }
        let unit = result?;
        (self.progress)(PullEvent::LayerDone { digest });
        Ok(unit)
    }
}

/// Reads the chunks a download task sends.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
