//! `append`: a new image made of a base image in a registry plus one layer, pushed to the
//! same registry without downloading the base: the base's layers are mounted from its
//! repository, only the new layer and config are uploaded. This is how a build's `/app`
//! becomes an image on top of the run stack.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::archive::at;
use crate::digest::Digest;
use crate::import::ImportError;
use crate::manifest::{self, BlobRef};
use crate::platform::Platform;
use crate::push::{self, Blob, BlobPushed, PushError, PushOptions, PushReport};
use crate::reference::Reference;
use crate::registry::{Registry, MAX_DOCUMENT};

/// What the new image changes in the base's config.
#[derive(Debug, Clone, Default)]
pub struct ConfigChanges {
    /// `K=V` entries set in `Env` (replacing the base's value of the same key).
    pub env: Vec<String>,
    /// A new `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// A new `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// A new `WorkingDir`.
    pub working_dir: Option<String>,
    /// Labels set.
    pub labels: BTreeMap<String, String>,
    /// The history entry of the new layer.
    pub created_by: String,
}

/// Pushes `base` plus the layer tar `layer` (uncompressed, or gzip/zstd) as `target`, which
/// must be in the base's registry; `platform` picks from a multi-platform base.
pub async fn append(
    base: &Reference,
    layer: &Path,
    target: &Reference,
    changes: &ConfigChanges,
    platform: &Platform,
    opts: &PushOptions,
    on_blob: &(dyn Fn(&BlobPushed) + Sync),
) -> Result<PushReport, PushError> {
    if base.registry() != target.registry() {
        return Err(PushError::OtherRegistry {
            base: base.to_string(),
            target: target.to_string(),
        });
    }
    let from = Registry::new(base, &opts.registry)?;
    let (base_bytes, _, base_manifest) = crate::pull::resolve(&from, base, platform).await?;
    let docker = media_type_of(&base_bytes) == Some(manifest::DOCKER_MANIFEST.to_string());
    let config_ref = BlobRef::from_descriptor(base_manifest.config())?;
    let config_bytes = from.blob_bytes(&config_ref.digest, MAX_DOCUMENT).await?;
    if Digest::of(&config_bytes) != config_ref.digest {
        return Err(ImportError::DigestMismatch {
            path: format!("{base} config").into(),
            expected: config_ref.digest,
            actual: Digest::of(&config_bytes),
        }
        .into());
    }

    let scratch = tempfile::tempdir().map_err(at(&std::env::temp_dir()))?;
    let gz = scratch.path().join("layer.tar.gz");
    let (layer_digest, layer_size, diff_id) = {
        let (src, out) = (layer.to_path_buf(), gz.clone());
        tokio::task::spawn_blocking(move || push::gzip_layer(&src, &out))
            .await
            .expect("the gzip task does not panic")?
    };

    let config = new_config(&config_bytes, &diff_id, changes)?;
    let config_digest = Digest::of(&config);
    let config_path = scratch.path().join("config.json");
    std::fs::write(&config_path, &config).map_err(at(&config_path))?;

    let (config_type, layer_type) = if docker {
        (
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    let mut layers: Vec<Value> = Vec::new();
    let mut blobs = Vec::new();
    for d in base_manifest.layers() {
        let r = BlobRef::from_descriptor(d)?;
        layers.push(
            json!({"mediaType": r.media_type, "digest": r.digest.to_string(), "size": r.size}),
        );
        blobs.push(Blob {
            path: None,
            digest: r.digest,
            size: r.size,
        });
    }
    layers.push(
        json!({"mediaType": layer_type, "digest": layer_digest.to_string(), "size": layer_size}),
    );
    blobs.push(Blob {
        path: Some(gz),
        digest: layer_digest,
        size: layer_size,
    });
    blobs.push(Blob {
        path: Some(config_path),
        digest: config_digest.clone(),
        size: config.len() as u64,
    });
    let media_type = if docker {
        manifest::DOCKER_MANIFEST
    } else {
        manifest::OCI_MANIFEST
    };
    let doc = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers,
    });
    let doc = serde_json::to_vec(&doc).expect("a JSON value serializes");

    let registry = Registry::for_push(target, &opts.registry)?;
    let mut opts = opts.clone();
    if !opts.mount_from.iter().any(|r| r == base.repository()) {
        opts.mount_from.insert(0, base.repository().to_string());
    }
    let mut pushed = Vec::new();
    for b in &blobs {
        let action = push::push_blob(&registry, b, &opts).await?;
        let done = BlobPushed {
            digest: b.digest.clone(),
            size: b.size,
            action,
        };
        on_blob(&done);
        pushed.push(done);
    }
    let digest = Digest::of(&doc);
    registry
        .put_manifest(&target.manifest_selector(), media_type, Bytes::from(doc))
        .await?;
    Ok(PushReport {
        pinned: target.with_digest(digest.clone()),
        digest,
        blobs: pushed,
    })
}

fn media_type_of(doc: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(doc)
        .ok()?
        .get("mediaType")?
        .as_str()
        .map(str::to_string)
}

/// The base's config with the new layer's diff_id, a history entry and the changes.
fn new_config(
    base: &[u8],
    diff_id: &Digest,
    changes: &ConfigChanges,
) -> Result<Vec<u8>, PushError> {
    let malformed = |m: &str| crate::config::ConfigError::Invalid(m.to_string());
    let mut c: Value = serde_json::from_slice(base)
        .map_err(|_| ImportError::from(malformed("the base's config is not JSON")))?;
    let ids = c
        .pointer_mut("/rootfs/diff_ids")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| ImportError::from(malformed("the base's config has no rootfs.diff_ids")))?;
    ids.push(json!(diff_id.to_string()));
    if !c["history"].is_array() {
        c["history"] = json!([]);
    }
    if let Some(h) = c["history"].as_array_mut() {
        h.push(json!({"created": "1970-01-01T00:00:00Z", "created_by": changes.created_by}));
    }
    if !c["config"].is_object() {
        c["config"] = json!({});
    }
    let cfg = &mut c["config"];
    if !changes.env.is_empty() {
        let mut env: Vec<String> = cfg["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for kv in &changes.env {
            let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
            env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
            env.push(kv.clone());
        }
        cfg["Env"] = json!(env);
    }
    if let Some(e) = &changes.entrypoint {
        cfg["Entrypoint"] = json!(e);
    }
    if let Some(cmd) = &changes.cmd {
        cfg["Cmd"] = json!(cmd);
    }
    if let Some(w) = &changes.working_dir {
        cfg["WorkingDir"] = json!(w);
    }
    if !changes.labels.is_empty() {
        if !cfg["Labels"].is_object() {
            cfg["Labels"] = json!({});
        }
        for (k, v) in &changes.labels {
            cfg["Labels"][k] = json!(v);
        }
    }
    Ok(serde_json::to_vec(&c).expect("a JSON value serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_gains_the_layer_and_the_changes() {
        let base = br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","PORT=1"]},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;
        let d = Digest::of(b"layer");
        let changes = ConfigChanges {
            env: vec!["PORT=5000".into(), "STACK=bookworm".into()],
            cmd: Some(vec!["start".into(), "web".into()]),
            labels: [("git.commit".to_string(), "abc".to_string())].into(),
            created_by: "slugbuilder".into(),
            ..Default::default()
        };
        let c: Value = serde_json::from_slice(&new_config(base, &d, &changes).unwrap()).unwrap();
        assert_eq!(c["rootfs"]["diff_ids"][1], d.to_string());
        assert_eq!(
            c["config"]["Env"],
            json!(["PATH=/bin", "PORT=5000", "STACK=bookworm"])
        );
        assert_eq!(c["config"]["Cmd"], json!(["start", "web"]));
        assert_eq!(c["config"]["Labels"]["git.commit"], "abc");
        assert_eq!(c["history"][0]["created_by"], "slugbuilder");
        assert!(new_config(b"{}", &d, &changes).is_err());
    }
}
