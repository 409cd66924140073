//! Images and volumes: pulls and their progress, stored images, volumes.

use flynn_http::{ErrorBody, Timestamp};
use serde::{Deserialize, Serialize};

/// `POST /images`: what to pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// The image reference, e.g. `127.0.0.1:5000/web:v1` or `busybox`.
    pub image: String,
}

/// One line of a pull's progress stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PullMessage {
    /// The manifest was resolved.
    Resolved {
        /// Manifest digest.
        digest: String,
        /// Number of layers.
        layers: usize,
    },
    /// A layer is already stored.
    Exists {
        /// Layer blob digest.
        layer: String,
    },
    /// A layer download began.
    Downloading {
        /// Layer blob digest.
        layer: String,
        /// Compressed size.
        size: u64,
    },
    /// Bytes of a layer arrived.
    Progress {
        /// Layer blob digest.
        layer: String,
        /// Bytes so far.
        received: u64,
    },
    /// A layer is stored and verified.
    Done {
        /// Layer blob digest.
        layer: String,
    },
    /// The pull finished; the last message of a successful pull.
    Pulled {
        /// The stored image.
        image: Image,
    },
    /// The pull failed; the last message of a failed pull. Nothing was stored.
    Error {
        /// What went wrong.
        error: ErrorBody,
    },
}

/// An image in the host's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The full reference.
    pub name: String,
    /// The image id (config digest).
    pub id: String,
    /// The manifest digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// When it was stored.
    pub created: Timestamp,
}

/// `POST /volumes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVolume {
    /// The volume name.
    pub name: String,
}

/// A volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// The volume name.
    pub name: String,
    /// Where it is on the host.
    pub path: String,
}
