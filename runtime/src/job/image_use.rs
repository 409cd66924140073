//! A job's use of its image in the store: taken before the job is set up and dropped when it
//! is released, so that `pinkerton rm` and `gc` never delete the layers under a job.

use super::{Runtime, RuntimeError};
use crate::spec::JobId;

impl Runtime {
    /// The name the job's use of its image has in the store.
    pub(super) fn store_user(&self, id: &JobId) -> String {
        format!("{}.{id}", self.cgroup_parent)
    }

    /// Drops the store uses of jobs of this runtime that no longer exist (a daemon killed
    /// between taking a use and writing the job's files leaves one); returns them.
    pub fn prune_store_uses(&self) -> Result<Vec<String>, RuntimeError> {
        let live: Vec<String> = self.list()?.iter().map(|id| self.store_user(id)).collect();
        let prefix = format!("{}.", self.cgroup_parent);
        let mut dropped = Vec::new();
        let uses = self.store.uses().map_err(|source| RuntimeError::Image {
            image: "(store uses)".into(),
            source,
        })?;
        for (user, _) in uses {
            if user.starts_with(&prefix) && !live.contains(&user) {
                let _ = self.store.remove_use(&user);
                dropped.push(user);
            }
        }
        Ok(dropped)
    }

    /// Drops the job's use of its image's layers.
    pub(super) fn release_image(&self, job: &JobId) -> Result<(), RuntimeError> {
        self.store
            .remove_use(&self.store_user(job))
            .map_err(|source| RuntimeError::Image {
                image: format!("(use of job {job})"),
                source,
            })
    }
}
