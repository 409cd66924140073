//! Reading image archives: a `docker save` archive (`manifest.json`) or an OCI image layout
//! (`index.json`), as a directory or a (possibly compressed) tar extracted first. Shared by
//! `import` (into the store) and `push` (to a registry).

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex};
use serde::Deserialize;

use crate::digest::Digest;
use crate::import::ImportError;
use crate::manifest::{self, Compression, Manifest};

/// The annotation naming an image of an OCI layout (skopeo's `oci:DIR:NAME`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub(crate) fn at(path: &Path) -> impl FnOnce(io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One image of a `docker save` archive's `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SaveEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

/// An archive's contents as a directory.
pub(crate) struct Archive {
    pub dir: PathBuf,
}

impl Archive {
    /// `input` itself when it is a directory; otherwise its tar extracted into `scratch` (an
    /// empty directory the caller owns and removes).
    pub fn open(
        input: &Path,
        scratch: impl FnOnce() -> Result<PathBuf, ImportError>,
    ) -> Result<Self, ImportError> {
        let meta = fs::metadata(input).map_err(at(input))?;
        if meta.is_dir() {
            return Ok(Self {
                dir: input.to_path_buf(),
            });
        }
        let dir = scratch()?;
        extract(input, &dir)?;
        Ok(Self { dir })
    }

    /// True for a `docker save` archive.
    pub fn is_docker_save(&self) -> bool {
        self.dir.join("manifest.json").is_file()
    }

    /// True for an OCI image layout.
    pub fn is_oci_layout(&self) -> bool {
        self.dir.join("index.json").is_file()
    }

    /// A path named inside the archive, refused when it leads outside it.
    pub fn path(&self, rel: &str) -> Result<PathBuf, ImportError> {
        let clean = crate::unpack::clean(Path::new(rel))
            .ok()
            .flatten()
            .ok_or_else(|| ImportError::Escape(rel.to_string()))?;
        Ok(self.dir.join(clean))
    }

    /// Where an OCI layout keeps the blob `d`.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.hex())
    }

    /// A (small) blob, checked against its digest.
    pub fn read_verified(&self, d: &Digest) -> Result<Vec<u8>, ImportError> {
        let path = self.blob_path(d);
        let bytes = fs::read(&path).map_err(at(&path))?;
        let actual = Digest::of(&bytes);
        if &actual != d {
            return Err(ImportError::DigestMismatch {
                path,
                expected: d.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The images of a `docker save` archive.
    pub fn save_entries(&self) -> Result<Vec<SaveEntry>, ImportError> {
        let mpath = self.dir.join("manifest.json");
        let bytes = fs::read(&mpath).map_err(at(&mpath))?;
        serde_json::from_slice(&bytes).map_err(|source| ImportError::Json {
            path: mpath.clone(),
            source,
        })
    }

    /// An OCI layout's index.
    pub fn index(&self) -> Result<ImageIndex, ImportError> {
        let ipath = self.dir.join("index.json");
        let bytes = fs::read(&ipath).map_err(at(&ipath))?;
        match manifest::parse(&bytes, Some(manifest::OCI_INDEX))? {
            Manifest::Index(index) => Ok(*index),
            Manifest::Image(_) => Err(ImportError::UnknownFormat(ipath)),
        }
    }
}

/// The name an OCI layout gives the image of `d`.
pub(crate) fn ref_name(d: &Descriptor) -> Option<String> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME).cloned())
}

/// The names of an index's images, for messages.
pub(crate) fn ref_names(index: &ImageIndex) -> String {
    let n: Vec<String> = index.manifests().iter().filter_map(ref_name).collect();
    if n.is_empty() {
        "none".to_string()
    } else {
        n.join(", ")
    }
}

/// The index's images named `reference`, or all of them; refused when none has the name.
pub(crate) fn choose<'a>(
    index: &'a ImageIndex,
    reference: Option<&str>,
) -> Result<Vec<&'a Descriptor>, ImportError> {
    let chosen: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| reference.is_none_or(|r| ref_name(d).as_deref() == Some(r)))
        .collect();
    match reference {
        Some(wanted) if chosen.is_empty() => Err(ImportError::NoSuchRef {
            wanted: wanted.into(),
            names: ref_names(index),
        }),
        _ => Ok(chosen),
    }
}

/// Extracts a (possibly compressed) tar of regular files and directories into `dest`.
fn extract(file: &Path, dest: &Path) -> Result<(), ImportError> {
    let mut f = BufReader::new(File::open(file).map_err(at(file))?);
    let head = io::BufRead::fill_buf(&mut f).map_err(at(file))?.to_vec();
    let reader: Box<dyn Read> = match Compression::sniff(&head) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(f).map_err(at(file))?),
        Compression::None => Box::new(f),
    };
    let not_tar = |source| ImportError::NotAnArchive {
        path: file.to_path_buf(),
        source,
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            continue; // old docker save archives carry symlinks between layer dirs; unused here
        }
        let name = entry.path().map_err(at(file))?.into_owned();
        let rel = crate::unpack::clean(&name)
            .map_err(|_| ImportError::Escape(name.display().to_string()))?;
        let Some(rel) = rel else { continue };
        let out = dest.join(rel);
        if kind.is_dir() {
            fs::create_dir_all(&out).map_err(at(&out))?;
        } else {
            if let Some(p) = out.parent() {
                fs::create_dir_all(p).map_err(at(p))?;
            }
            let mut o = File::create(&out).map_err(at(&out))?;
            io::copy(&mut entry, &mut o).map_err(at(&out))?;
        }
    }
    Ok(())
}
