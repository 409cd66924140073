//! A pull's progress between pinkerton's [`PullEvent`]s and the API's [`PullMessage`]s, both
//! ways: the daemon sends events as messages, the CLI draws messages as events.

use pinkerton::digest::Digest;
use pinkerton::pull::PullEvent;

use host_api::PullMessage;

/// A progress message with a digest that does not parse, or one that is no progress.
#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    /// A digest is malformed.
    #[error("the daemon sent a malformed digest {0:?} in a pull's progress")]
    BadDigest(String),
    /// The message ends the pull; it has no progress event.
    #[error("the pull's end is not progress")]
    NotProgress,
}

/// The message the API sends for a progress event.
pub fn to_message(e: PullEvent) -> PullMessage {
    match e {
        PullEvent::Resolved { digest, layers } => PullMessage::Resolved {
            digest: digest.to_string(),
            layers,
        },
        PullEvent::LayerExists { digest } => PullMessage::Exists {
            layer: digest.to_string(),
        },
        PullEvent::LayerStarted { digest, size } => PullMessage::Downloading {
            layer: digest.to_string(),
            size,
        },
        PullEvent::LayerProgress { digest, received } => PullMessage::Progress {
            layer: digest.to_string(),
            received,
        },
        PullEvent::LayerDone { digest } => PullMessage::Done {
            layer: digest.to_string(),
        },
    }
}

/// The progress event of a message (`Pulled` and `Error` are none).
pub fn to_event(m: PullMessage) -> Result<PullEvent, ProgressError> {
    let d = |s: String| s.parse::<Digest>().map_err(|_| ProgressError::BadDigest(s));
    Ok(match m {
        PullMessage::Resolved { digest, layers } => PullEvent::Resolved {
            digest: d(digest)?,
            layers,
        },
        PullMessage::Exists { layer } => PullEvent::LayerExists { digest: d(layer)? },
        PullMessage::Downloading { layer, size } => PullEvent::LayerStarted {
            digest: d(layer)?,
            size,
        },
        PullMessage::Progress { layer, received } => PullEvent::LayerProgress {
            digest: d(layer)?,
            received,
        },
        PullMessage::Done { layer } => PullEvent::LayerDone { digest: d(layer)? },
        PullMessage::Pulled { .. } | PullMessage::Error { .. } => {
            return Err(ProgressError::NotProgress)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_round_trips_and_bad_digests_are_errors() {
        let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let e = PullEvent::LayerStarted {
            digest: digest.clone(),
            size: 7,
        };
        let back = to_event(to_message(e)).unwrap();
        assert!(matches!(back, PullEvent::LayerStarted { size: 7, .. }));
        let bad = PullMessage::Done {
            layer: "sha256:nope".into(),
        };
        assert!(matches!(to_event(bad), Err(ProgressError::BadDigest(_))));
    }
}
