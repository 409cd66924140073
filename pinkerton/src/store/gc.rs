//! Garbage collection: deleting layers and blobs that no image references.

use std::collections::HashSet;
use std::fs;

use super::{io_at, remove_path, Store, StoreError};
use crate::digest::Digest;

impl Store {
    /// Removes the entries of `sub` (named by digest hex) that `keep` rejects; unparsable names
    /// are removed too.
    fn sweep(
        &self,
        sub: &str,
        keep: impl Fn(&Digest) -> bool,
        mut removed: impl FnMut(&Digest),
    ) -> Result<(), StoreError> {
        let dir = self.root.join(sub);
        for e in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let e = e.map_err(io_at(&dir))?;
            let digest = format!("sha256:{}", e.file_name().to_string_lossy()).parse::<Digest>();
            if digest.as_ref().is_ok_and(&keep) {
                continue;
            }
            if let Ok(d) = &digest {
                removed(d);
            }
            remove_path(&e.path())?;
        }
        Ok(())
    }
}

/// What a collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    /// Layers deleted.
    pub layers: usize,
    /// Blobs deleted.
    pub blobs: usize,
    /// Uncompressed bytes of the deleted layers.
    pub layer_bytes: u64,
    /// Leftover temporary directories deleted.
    pub temp_dirs: usize,
}

impl Store {
    /// Deletes every layer and blob that no image references, and leftover temporary work.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let _l = self.lock_exclusive()?;
        self.gc_locked()
    }

    /// [`Store::gc`] for a caller that already holds the exclusive lock.
    pub(super) fn gc_locked(&self) -> Result<GcReport, StoreError> {
        let images = self.images()?;
        let uses = self.uses()?;
        let layers: HashSet<&Digest> = images
            .iter()
            .flat_map(|i| &i.layers)
            .chain(uses.iter().flat_map(|(_, u)| &u.layers))
            .collect();
        let blobs: HashSet<&Digest> = images
            .iter()
            .flat_map(|i| std::iter::once(&i.id).chain(&i.manifest))
            .collect();
        let mut report = GcReport::default();
        self.sweep(
            "layers/sha256",
            |d| layers.contains(d),
            |d| {
                report.layers += 1;
                report.layer_bytes += self.layer_info(d).map_or(0, |i| i.size);
            },
        )?;
        self.sweep("blobs/sha256", |d| blobs.contains(d), |_| report.blobs += 1)?;
        // Nobody holds the shared lock, so nothing in tmp/ is in use.
        let dir = self.root.join("tmp");
        for e in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let e = e.map_err(io_at(&dir))?;
            remove_path(&e.path())?;
            report.temp_dirs += 1;
        }
        Ok(report)
    }
}
