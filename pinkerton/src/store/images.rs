//! Image records: which manifest, config and layers a name stands for.

use std::fs;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{io_at, write_atomic, Store, StoreError};
use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Reference;

/// One named image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The full reference it was pulled or imported as, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// The image id: the digest of its config.
    pub id: Digest,
    /// The manifest digest, for images that came with a manifest (registries, OCI layouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Digest>,
    /// Layer diff_ids, base first.
    pub layers: Vec<Digest>,
    /// The platform of the image.
    pub platform: Platform,
    /// Sum of the uncompressed layer sizes in bytes.
    pub size: u64,
    /// When it was stored, in seconds since the Unix epoch.
    pub created: u64,
}

impl ImageRecord {
    /// Seconds since the epoch, for `created`.
    pub fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn matches(&self, query: &str, as_ref: Option<&str>) -> bool {
        self.name == query || as_ref == Some(self.name.as_str())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ImagesFile {
    images: Vec<ImageRecord>,
}

impl Store {
    fn images_path(&self) -> std::path::PathBuf {
        self.root.join("images.json")
    }

    /// All image records, sorted by name.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let p = self.images_path();
        match fs::read(&p) {
            Ok(bytes) => {
                let f: ImagesFile =
                    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                        path: p,
                        reason: e.to_string(),
                    })?;
                Ok(f.images)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_at(&p)(e)),
        }
    }

    fn write_images(&self, mut images: Vec<ImageRecord>) -> Result<(), StoreError> {
        images.sort_by(|a, b| a.name.cmp(&b.name));
        let json = serde_json::to_vec_pretty(&ImagesFile { images }).expect("records serialise");
        write_atomic(&self.images_path(), &json)
    }

    /// Adds `rec`, replacing any record of the same name.
    pub fn add_image(&self, rec: ImageRecord) -> Result<(), StoreError> {
        let _l = self.lock_file("images.lock", nix::fcntl::FlockArg::LockExclusive)?;
        let mut images = self.images()?;
        images.retain(|r| r.name != rec.name);
        images.push(rec);
        self.write_images(images)
    }

    /// Finds images by name (any form `docker pull` accepts), id, or unique id prefix.
    fn select(&self, images: &[ImageRecord], query: &str) -> Result<Vec<usize>, StoreError> {
        let as_ref = query.parse::<Reference>().ok().map(|r| r.to_string());
        let by_name: Vec<usize> = (0..images.len())
            .filter(|&i| images[i].matches(query, as_ref.as_deref()))
            .collect();
        if !by_name.is_empty() {
            return Ok(by_name);
        }
        let hex = query.strip_prefix("sha256:").unwrap_or(query);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let by_id: Vec<usize> = (0..images.len())
                .filter(|&i| images[i].id.hex().starts_with(hex))
                .collect();
            let mut ids: Vec<&Digest> = by_id.iter().map(|&i| &images[i].id).collect();
            ids.dedup();
            if ids.len() > 1 {
                return Err(StoreError::Ambiguous(query.to_string()));
            }
            if !by_id.is_empty() {
                return Ok(by_id);
            }
        }
        Err(StoreError::NoSuchImage(query.to_string()))
    }

    /// The image a name, id or id prefix refers to.
    pub fn find_image(&self, query: &str) -> Result<ImageRecord, StoreError> {
        let images = self.images()?;
        let found = self.select(&images, query)?;
        Ok(images[found[0]].clone())
    }

    /// Removes the records `query` matches (a name removes that name; an id removes every name
    /// of it) and deletes layers and blobs nothing references any more.
    pub fn remove_image(
        &self,
        query: &str,
    ) -> Result<(Vec<ImageRecord>, super::GcReport), StoreError> {
        let _l = self.lock_exclusive()?;
        let _i = self.lock_file("images.lock", nix::fcntl::FlockArg::LockExclusive)?;
        let mut images = self.images()?;
        let found = self.select(&images, query)?;
        let uses = self.uses()?;
        for &i in &found {
            // The last name of an image in use cannot go: its layers are read by a job.
            let others = images
                .iter()
                .enumerate()
                .any(|(j, r)| r.id == images[i].id && !found.contains(&j));
            if let Some((user, _)) = uses.iter().find(|(_, u)| u.image == images[i].id) {
                if !others {
                    return Err(StoreError::InUse {
                        image: query.to_string(),
                        user: user.clone(),
                    });
                }
            }
        }
        let mut removed = Vec::new();
        for i in found.into_iter().rev() {
            removed.push(images.remove(i));
        }
        removed.reverse();
        self.write_images(images)?;
        let report = self.gc_locked()?;
        Ok((removed, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, id: &[u8]) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            id: Digest::of(id),
            manifest: None,
            layers: vec![],
            platform: Platform::host(),
            size: 0,
            created: 0,
        }
    }

    #[test]
    fn lookup_by_name_forms_and_id_prefix() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        s.add_image(rec("docker.io/library/busybox:latest", b"a"))
            .unwrap();
        s.add_image(rec("127.0.0.1:5000/app:v1", b"b")).unwrap();
        assert_eq!(s.find_image("busybox").unwrap().id, Digest::of(b"a"));
        assert_eq!(
            s.find_image("127.0.0.1:5000/app:v1").unwrap().id,
            Digest::of(b"b")
        );
        let b = Digest::of(b"b");
        assert_eq!(
            s.find_image(&b.hex()[..8]).unwrap().name,
            "127.0.0.1:5000/app:v1"
        );
        assert!(matches!(
            s.find_image("nothere"),
            Err(StoreError::NoSuchImage(_))
        ));
        s.add_image(rec("docker.io/library/busybox:latest", b"c"))
            .unwrap();
        assert_eq!(s.images().unwrap().len(), 2);
        let (removed, _) = s.remove_image("busybox:latest").unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(s.images().unwrap().len(), 1);
    }
}
