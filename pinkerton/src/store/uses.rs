//! Uses: a record that something outside the store (a running job) reads an image's layers,
//! so that neither `rm` nor `gc` deletes them, whichever process runs them.
//!
//! ```text
//! ROOT/uses/USER.json   {"image": ID, "layers": [DIFF_ID, ...]}
//! ```
//!
//! A use is added under the shared store lock after checking that the layers are there, and
//! `rm` and `gc` read the uses under the exclusive one, so a layer is either kept or was gone
//! before the use was taken.

use std::fs;

use serde::{Deserialize, Serialize};

use super::{io_at, write_replace, Store, StoreError};
use crate::digest::Digest;

/// What one user holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Use {
    /// The image's id.
    pub image: Digest,
    /// The layers it reads.
    pub layers: Vec<Digest>,
}

/// True for names usable as a user (and so as a file name).
fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 200
        && !user.starts_with('.')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Store {
    fn uses_dir(&self) -> std::path::PathBuf {
        self.root.join("uses")
    }

    /// Records that `user` reads the layers of the image `query` names, and returns that
    /// image; refused when the image or one of its layers is missing.
    pub fn add_use(&self, user: &str, query: &str) -> Result<super::ImageRecord, StoreError> {
        if !valid_user(user) {
            return Err(StoreError::NoSuchImage(format!(
                "{query} (invalid store user {user:?})"
            )));
        }
        let _l = self.lock_shared()?;
        let image = self.find_image(query)?;
        if let Some(d) = image.layers.iter().find(|d| !self.has_layer(d)) {
            return Err(StoreError::NoSuchImage(format!(
                "{query} (layer {d} missing; pull it again)"
            )));
        }
        let dir = self.uses_dir();
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let u = Use {
            image: image.id.clone(),
            layers: image.layers.clone(),
        };
        let json = serde_json::to_vec(&u).expect("uses serialise");
        // Not synced: after a power loss the job is gone too.
        write_replace(&dir.join(format!("{user}.json")), &json, false)?;
        Ok(image)
    }

    /// Drops `user`'s use; missing is fine.
    pub fn remove_use(&self, user: &str) -> Result<(), StoreError> {
        if !valid_user(user) {
            return Ok(());
        }
        let path = self.uses_dir().join(format!("{user}.json"));
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_at(&path)(e)),
        }
    }

    /// Every use, by user.
    pub fn uses(&self) -> Result<Vec<(String, Use)>, StoreError> {
        let dir = self.uses_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&dir)(e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(io_at(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(user) = name.strip_suffix(".json") else {
                continue;
            };
            let path = e.path();
            let bytes = fs::read(&path).map_err(io_at(&path))?;
            let u: Use = serde_json::from_slice(&bytes).map_err(|err| StoreError::Corrupt {
                path: path.clone(),
                reason: err.to_string(),
            })?;
            out.push((user.to_string(), u));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platform;
    use crate::store::{ImageRecord, LayerInfo};

    #[test]
    fn layers_in_use_survive_rm_and_gc() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let layer = Digest::of(b"layer");
        let tmp = s.temp_dir().unwrap();
        fs::create_dir_all(tmp.path().join("fs")).unwrap();
        let info = LayerInfo {
            diff_id: layer.clone(),
            size: 1,
            entries: 1,
        };
        s.commit_layer(tmp, &info).unwrap();
        s.add_image(ImageRecord {
            name: "app:v1".into(),
            id: Digest::of(b"config"),
            manifest: None,
            layers: vec![layer.clone()],
            platform: Platform::host(),
            size: 1,
            created: 0,
        })
        .unwrap();
        s.add_use("job-1", "app:v1").unwrap();
        assert!(matches!(
            s.remove_image("app:v1"),
            Err(StoreError::InUse { .. })
        ));
        assert!(s.has_layer(&layer) && s.find_image("app:v1").is_ok());
        s.gc().unwrap();
        assert!(s.has_layer(&layer));
        s.remove_use("job-1").unwrap();
        s.remove_image("app:v1").unwrap();
        assert!(!s.has_layer(&layer));
        assert!(s.add_use("job-2", "app:v1").is_err());
        assert!(s.uses().unwrap().is_empty());
    }
}
