//! `import`: loading a `docker save` archive or an OCI image layout (directory or tar).

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use crate::archive::{self, at, Archive};

use crate::config::{ConfigError, ImageConfig};
use crate::digest::Digest;
use crate::layer::{unpack_verified, Expected, LayerError};
use crate::manifest::{self, BlobRef, Compression, Manifest, ManifestError};
use crate::platform::Platform;
use crate::reference::{Reference, ReferenceError};
use crate::store::{ImageRecord, Store, StoreError};

/// An import that failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input is neither a `docker save` archive nor an OCI layout.
    #[error(
        "{0} is neither a docker save archive (manifest.json) nor an OCI image layout (index.json)"
    )]
    UnknownFormat(PathBuf),
    /// The input file is not a (possibly compressed) tar archive.
    #[error("{path} is not a tar archive (expected a docker save or oci-archive tarball, or an OCI layout directory): {source}")]
    NotAnArchive {
        /// The file it concerns.
        path: PathBuf,
        /// The tar error.
        source: io::Error,
    },
    /// A file the format requires is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why it failed (the underlying error).
        source: io::Error,
    },
    /// A JSON document of the archive does not parse.
    #[error("malformed {path}: {source}")]
    Json {
        /// The file it concerns.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A manifest could not be used.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The config could not be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A name does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A layer failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blob does not match its digest.
    #[error("{path} does not match its digest {expected} (content is {actual})")]
    DigestMismatch {
        /// The file it concerns.
        path: PathBuf,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// A path inside the archive points outside it.
    #[error("archive path {0:?} points outside the archive")]
    Escape(String),
    /// One name was given for several images.
    #[error("{count} images are in the archive but --tag gives one name; choose one image with --ref NAME (names: {names}), or import without --tag")]
    TagForMany {
        /// How many images.
        count: usize,
        /// Their names in the archive.
        names: String,
    },
    /// No image of the layout has the name asked for.
    #[error("no image named {wanted:?} in the layout (names: {names})")]
    NoSuchRef {
        /// The name asked for.
        wanted: String,
        /// The names there are.
        names: String,
    },
}

/// Imports every image in `input` (an archive file or a directory), or only the one named
/// `reference` (an OCI layout's `org.opencontainers.image.ref.name`); `tag` names the image
/// instead of the name the archive carries, and is refused when more than one image would get
/// it. Returns the records added.
pub fn import(
    store: &Store,
    input: &Path,
    tag: Option<&Reference>,
    platform: &Platform,
    max_layer_size: u64,
    reference: Option<&str>,
) -> Result<Vec<ImageRecord>, ImportError> {
    store.sweep_tmp()?;
    let _lock = store.lock_shared()?;
    let extracted = std::cell::OnceCell::new();
    let archive = Archive::open(input, || {
        let tmp = store.temp_dir()?;
        let dir = tmp.path().to_path_buf();
        let _ = extracted.set(tmp);
        Ok(dir)
    })?;
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .filter(|s| s.parse::<Reference>().is_ok() && !s.contains(':'))
        .unwrap_or_else(|| "imported".into());
    let importer = Importer {
        store,
        archive: &archive,
        max_layer_size,
    };
    if archive.is_docker_save() {
        importer.docker_save(tag)
    } else if archive.is_oci_layout() {
        importer.oci_layout(tag, platform, &stem, reference)
    } else {
        Err(ImportError::UnknownFormat(input.to_path_buf()))
    }
}

struct Importer<'a> {
    store: &'a Store,
    archive: &'a Archive,
    max_layer_size: u64,
}

impl Importer<'_> {
    fn docker_save(&self, tag: Option<&Reference>) -> Result<Vec<ImageRecord>, ImportError> {
        let entries = self.archive.save_entries()?;
        if tag.is_some() && entries.len() > 1 {
            let names: Vec<String> = entries
                .iter()
                .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
                .collect();
            return Err(ImportError::TagForMany {
                count: entries.len(),
                names: names.join(", "),
            });
        }
        let mut records = Vec::new();
        for e in entries {
            let cpath = self.archive.path(&e.config)?;
            let config_bytes = fs::read(&cpath).map_err(at(&cpath))?;
            let config = ImageConfig::parse(&config_bytes)?;
            if config.diff_ids.len() != e.layers.len() {
                return Err(ManifestError::LayerCount {
                    layers: e.layers.len(),
                    diff_ids: config.diff_ids.len(),
                }
                .into());
            }
            let mut layers = Vec::new();
            for (rel, diff_id) in e.layers.iter().zip(&config.diff_ids) {
                let path = self.archive.path(rel)?;
                let expected = Expected {
                    blob: None,
                    diff_id: diff_id.clone(),
                };
                layers.push((path, None, expected));
            }
            self.ingest(layers)?;
            let names: Vec<String> = match (tag, &e.repo_tags) {
                (Some(t), _) => vec![t.to_string()],
                (None, Some(tags)) if !tags.is_empty() => tags
                    .iter()
                    .map(|t| t.parse::<Reference>().map(|r| r.to_string()))
                    .collect::<Result<_, _>>()?,
                _ => vec![Digest::of(&config_bytes).to_string()],
            };
            records.extend(self.record(names, &config_bytes, &config, None)?);
        }
        Ok(records)
    }

    fn oci_layout(
        &self,
        tag: Option<&Reference>,
        platform: &Platform,
        stem: &str,
        reference: Option<&str>,
    ) -> Result<Vec<ImageRecord>, ImportError> {
        let index = self.archive.index()?;
        let chosen = archive::choose(&index, reference)?;
        if tag.is_some() && chosen.len() > 1 {
            return Err(ImportError::TagForMany {
                count: chosen.len(),
                names: archive::ref_names(&index),
            });
        }
        let mut records = Vec::new();
        for desc in chosen {
            let ref_name = archive::ref_name(desc);
            let mut blob = BlobRef::from_descriptor(desc)?;
            let mut doc = self.archive.read_verified(&blob.digest)?;
            if let Manifest::Index(inner) = manifest::parse(&doc, Some(&blob.media_type))? {
                blob = self.pick_platform(&inner, platform)?;
                doc = self.archive.read_verified(&blob.digest)?;
            }
            let Manifest::Image(m) = manifest::parse(&doc, Some(&blob.media_type))? else {
                return Err(
                    ManifestError::UnsupportedMediaType("an index nested twice".into()).into(),
                );
            };
            let config_ref = BlobRef::from_descriptor(m.config())?;
            let config_bytes = self.archive.read_verified(&config_ref.digest)?;
            let config = ImageConfig::parse(&config_bytes)?;
            if config.diff_ids.len() != m.layers().len() {
                return Err(ManifestError::LayerCount {
                    layers: m.layers().len(),
                    diff_ids: config.diff_ids.len(),
                }
                .into());
            }
            let mut layers = Vec::new();
            for (d, diff_id) in m.layers().iter().zip(&config.diff_ids) {
                let b = BlobRef::from_descriptor(d)?;
                let compression = Compression::from_media_type(&b.media_type)?;
                let expected = Expected {
                    blob: Some((b.digest.clone(), b.size)),
                    diff_id: diff_id.clone(),
                };
                layers.push((
                    self.archive.blob_path(&b.digest),
                    Some(compression),
                    expected,
                ));
            }
            self.ingest(layers)?;
            let name = match (tag, ref_name) {
                (Some(t), _) => t.to_string(),
                (None, Some(r)) if r.contains(['/', ':']) => r.parse::<Reference>()?.to_string(),
                (None, Some(r)) => format!("localhost/{stem}:{r}")
                    .parse::<Reference>()?
                    .to_string(),
                (None, None) => blob.digest.to_string(),
            };
            self.store.put_blob(&blob.digest, &doc)?;
            records.extend(self.record(vec![name], &config_bytes, &config, Some(blob.digest))?);
        }
        Ok(records)
    }

    /// The manifest of `index` for `platform`: by the descriptors' platforms, or, where the
    /// index names none (as some tools write them), by the platform in each image's config.
    fn pick_platform(
        &self,
        index: &oci_spec::image::ImageIndex,
        platform: &Platform,
    ) -> Result<BlobRef, ImportError> {
        if index.manifests().iter().any(|d| d.platform().is_some()) {
            return Ok(manifest::select_platform(index, platform)?);
        }
        let mut seen = Vec::new();
        for d in index.manifests() {
            let blob = BlobRef::from_descriptor(d)?;
            let doc = self.archive.read_verified(&blob.digest)?;
            let Manifest::Image(m) = manifest::parse(&doc, Some(&blob.media_type))? else {
                continue;
            };
            let config = self
                .archive
                .read_verified(&BlobRef::from_descriptor(m.config())?.digest)?;
            let config = ImageConfig::parse(&config)?;
            if platform.matches(&config.platform) {
                return Ok(blob);
            }
            seen.push(config.platform.to_string());
        }
        Err(ManifestError::NoPlatform {
            wanted: platform.clone(),
            available: if seen.is_empty() {
                "none".into()
            } else {
                seen.join(", ")
            },
        }
        .into())
    }

    /// Unpacks the layers not yet stored, then commits them all (or none).
    fn ingest(
        &self,
        layers: Vec<(PathBuf, Option<Compression>, Expected)>,
    ) -> Result<(), ImportError> {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.2.diff_id.clone()).collect();
        let _locks = self.store.lock_missing_layers(&diff_ids)?;
        let mut units = Vec::new();
        for (path, compression, expected) in layers {
            if self.store.has_layer(&expected.diff_id)
                || units
                    .iter()
                    .any(|(_, i): &(_, crate::store::LayerInfo)| i.diff_id == expected.diff_id)
            {
                continue;
            }
            let mut f = BufReader::new(File::open(&path).map_err(at(&path))?);
            let compression = match compression {
                Some(c) => c,
                None => Compression::sniff(io::BufRead::fill_buf(&mut f).map_err(at(&path))?),
            };
            units.push(unpack_verified(
                self.store,
                &mut f,
                compression,
                &expected,
                self.max_layer_size,
            )?);
        }
        for (tmp, info) in units {
            self.store.commit_layer(tmp, &info)?;
        }
        Ok(())
    }

    fn record(
        &self,
        names: Vec<String>,
        config_bytes: &[u8],
        config: &ImageConfig,
        manifest: Option<Digest>,
    ) -> Result<Vec<ImageRecord>, ImportError> {
        let id = Digest::of(config_bytes);
        self.store.put_blob(&id, config_bytes)?;
        let size = self.store.layers_size(&config.diff_ids);
        let mut out = Vec::new();
        for name in names {
            let rec = ImageRecord {
                name,
                id: id.clone(),
                manifest: manifest.clone(),
                layers: config.diff_ids.clone(),
                platform: config.platform.clone(),
                size,
                created: ImageRecord::now(),
            };
            self.store.add_image(rec.clone())?;
            out.push(rec);
        }
        Ok(out)
    }
}
