//! Manifest documents (Docker schema 2, OCI manifest, Docker manifest list, OCI index) and layer
//! media types.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::platform::Platform;

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The `Accept` header for manifest requests: every type this crate understands.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The document's media type is not one of the four supported.
    #[error("unsupported manifest media type {0:?}: pinkerton reads Docker schema 2, Docker manifest lists, OCI manifests and OCI indexes (schema 1 images must be re-pushed with a current tool)")]
    UnsupportedMediaType(String),
    /// The JSON does not parse as the manifest type it claims.
    #[error("malformed {kind} document: {source}")]
    Malformed {
        /// Which document was being parsed.
        kind: &'static str,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A layer's media type is not a tar, tar+gzip or tar+zstd.
    #[error("unsupported layer media type {0:?}")]
    UnsupportedLayerType(String),
    /// A descriptor's digest uses an algorithm other than sha256.
    #[error("descriptor digest {0:?} is not a sha256 digest")]
    Digest(String),
    /// The index has no manifest for the wanted platform.
    #[error("no manifest for platform {wanted} in the index (available: {available}); ask for one of those")]
    NoPlatform {
        /// The platform that was asked for.
        wanted: Platform,
        /// The platforms the index offers.
        available: String,
    },
    /// The number of layers and of `diff_ids` differ.
    #[error("image config lists {diff_ids} diff_ids but the manifest has {layers} layers")]
    LayerCount {
        /// Layers in the manifest.
        layers: usize,
        /// diff_ids in the config.
        diff_ids: usize,
    },
}

/// A parsed manifest document.
#[derive(Debug)]
pub enum Manifest {
    /// A single-platform image.
    Image(Box<ImageManifest>),
    /// A list of per-platform manifests.
    Index(Box<ImageIndex>),
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The compression a layer media type declares.
    pub fn from_media_type(media_type: &str) -> Result<Self, ManifestError> {
        match media_type {
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => Ok(Self::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Ok(Self::Zstd),
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Self::None),
            other => Err(ManifestError::UnsupportedLayerType(other.to_string())),
        }
    }

    /// Guesses the compression from a stream's first bytes (for `docker save` archives).
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

/// A blob a manifest points to, in this crate's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

impl BlobRef {
    /// Converts an OCI descriptor.
    pub fn from_descriptor(d: &Descriptor) -> Result<Self, ManifestError> {
        let digest = d.digest().to_string();
        Ok(Self {
            media_type: d.media_type().to_string(),
            digest: digest.parse().map_err(|_| ManifestError::Digest(digest))?,
            size: d.size(),
        })
    }
}

fn media_type_field(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
        manifests: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).ok()?;
    if let Some(mt) = p.media_type {
        return Some(mt);
    }
    if p.schema_version == Some(1) {
        return Some("application/vnd.docker.distribution.manifest.v1+json".into());
    }
    Some(
        if p.manifests.is_some() {
            OCI_INDEX
        } else {
            OCI_MANIFEST
        }
        .to_string(),
    )
}

/// Parses a manifest document; `content_type` is the registry's `Content-Type`, if any.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
    let declared = media_type_field(bytes);
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty() && c != "application/json" && c != "text/plain");
    let media_type = declared
        .or(header)
        .ok_or_else(|| ManifestError::Malformed {
            kind: "manifest",
            source: serde_json::from_slice::<serde_json::Value>(bytes)
                .err()
                .unwrap_or_else(|| serde::de::Error::custom("not a JSON object")),
        })?;
    match media_type.as_str() {
        DOCKER_MANIFEST | OCI_MANIFEST => serde_json::from_slice(bytes)
            .map(|m| Manifest::Image(Box::new(m)))
            .map_err(|source| ManifestError::Malformed {
                kind: "image manifest",
                source,
            }),
        DOCKER_LIST | OCI_INDEX => serde_json::from_slice(bytes)
            .map(|i| Manifest::Index(Box::new(i)))
            .map_err(|source| ManifestError::Malformed {
                kind: "image index",
                source,
            }),
        other => Err(ManifestError::UnsupportedMediaType(other.to_string())),
    }
}

/// Picks the manifest for `wanted` from an index.
pub fn select_platform(index: &ImageIndex, wanted: &Platform) -> Result<BlobRef, ManifestError> {
    let mut available = Vec::new();
    for d in index.manifests() {
        let Some(p) = d.platform() else { continue };
        let p = Platform::from_oci(p);
        if wanted.matches(&p) {
            return BlobRef::from_descriptor(d);
        }
        available.push(p.to_string());
    }
    Err(ManifestError::NoPlatform {
        wanted: wanted.clone(),
        available: if available.is_empty() {
            "none".into()
        } else {
            available.join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_docker_list_and_selects_platform() {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D}","size":7,"platform":{{"architecture":"arm","os":"linux","variant":"v6"}}}},
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D}","size":9,"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#
        );
        let Manifest::Index(idx) = parse(doc.as_bytes(), None).unwrap() else {
            panic!()
        };
        let b = select_platform(&idx, &"linux/arm64/v8".parse().unwrap()).unwrap();
        assert_eq!(b.size, 9);
        let err = select_platform(&idx, &"linux/amd64".parse().unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("linux/arm/v6, linux/arm64"),
            "{err}"
        );
    }

    #[test]
    fn refuses_schema1_and_garbage() {
        let s1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert!(matches!(
            parse(s1, None),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            parse(b"{not json", None),
            Err(ManifestError::Malformed { .. })
        ));
        let bad = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":3}}"#);
        assert!(matches!(
            parse(bad.as_bytes(), None),
            Err(ManifestError::Malformed { .. })
        ));
    }

    #[test]
    fn layer_media_types() {
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd").unwrap(),
            Compression::Zstd
        );
        assert!(Compression::from_media_type("application/x-foo").is_err());
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
    }
}
