//! Unpacking one layer stream into a temporary directory of the store, verified.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use crate::digest::{Digest, HashingReader};
use crate::manifest::Compression;
use crate::store::{LayerInfo, Store, StoreError, TempDir};
use crate::unpack::{unpack_layer, UnpackError};

/// A layer that could not be unpacked or verified.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tar stream was refused.
    #[error("layer {blob}: {source}")]
    Unpack {
        /// The layer blob's digest.
        blob: Digest,
        /// Why.
        source: UnpackError,
    },
    /// The compressed blob's bytes do not hash to its digest.
    #[error("blob {expected} failed verification: its content hashes to {actual} (corrupt download or tampered registry storage); nothing was stored")]
    DigestMismatch {
        /// The digest from the manifest.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// The blob has a different length than its descriptor says.
    #[error("blob {digest} is {actual} bytes but its descriptor says {expected} (truncated or padded download); nothing was stored")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// The uncompressed stream does not match the config's diff_id.
    #[error(
        "layer {blob} unpacks to {actual} but the image config says {expected}; nothing was stored"
    )]
    DiffIdMismatch {
        /// The layer blob.
        blob: Digest,
        /// The diff_id from the config.
        expected: Digest,
        /// The digest of the uncompressed stream.
        actual: Digest,
    },
}

/// What a layer stream must be.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The compressed blob's digest and size, when known (registries and OCI layouts; a
    /// `docker save` archive has only the diff_id).
    pub blob: Option<(Digest, u64)>,
    /// The config's diff_id for it.
    pub diff_id: Digest,
}

impl Expected {
    fn label(&self) -> Digest {
        self.blob.as_ref().map_or(&self.diff_id, |b| &b.0).clone()
    }
}

/// Unpacks `input` into a new temporary directory and checks it against `expected`.
///
/// The caller holds the layer's lock and commits the result with [`Store::commit_layer`].
pub fn unpack_verified(
    store: &Store,
    input: &mut (dyn Read + Send),
    compression: Compression,
    expected: &Expected,
    limit: u64,
) -> Result<(TempDir, LayerInfo), LayerError> {
    let tmp = store.temp_dir()?;
    let fs_dir = tmp.path().join("fs");
    fs::create_dir(&fs_dir).map_err(|source| StoreError::Io {
        path: fs_dir.clone(),
        source,
    })?;
    fs::set_permissions(&fs_dir, fs::Permissions::from_mode(0o755)).map_err(|source| {
        StoreError::Io {
            path: fs_dir.clone(),
            source,
        }
    })?;
    let mut hashing = HashingReader::new(input, u64::MAX);
    let unpacked = unpack_layer(&mut hashing, compression, &fs_dir, limit);
    // Read what the unpacker left so the blob digest covers every byte, even after a failure:
    // a corrupt blob is better reported as such than as the tar error it causes.
    let drained = hashing.finish();
    if let (Ok((actual, len)), Some((digest, size))) = (drained, &expected.blob) {
        if len != *size {
            return Err(LayerError::SizeMismatch {
                digest: digest.clone(),
                expected: *size,
                actual: len,
            });
        }
        if actual != *digest {
            return Err(LayerError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
    }
    let unpacked = unpacked.map_err(|source| LayerError::Unpack {
        blob: expected.label(),
        source,
    })?;
    if unpacked.diff_id != expected.diff_id {
        return Err(LayerError::DiffIdMismatch {
            blob: expected.label(),
            expected: expected.diff_id.clone(),
            actual: unpacked.diff_id,
        });
    }
    let info = LayerInfo {
        diff_id: unpacked.diff_id,
        size: unpacked.size,
        entries: unpacked.entries,
    };
    Ok((tmp, info))
}
