//! Starting an ended job again under the same id: what its last run left is removed, its log
//! is kept, so its earlier output reads before the new run's (as one container's log spans
//! its restarts).

use super::{JobState, Runtime, RuntimeError};
use crate::spec::JobSpec;

impl Runtime {
    /// Starts the ended job `spec.id` again from `spec`; returns as [`Runtime::create`] does.
    /// Its log stays; everything else of the ended run (cgroups, network, root filesystem,
    /// image use, state files) is removed first, as [`Runtime::delete`] does.
    pub fn restart(&self, spec: &JobSpec) -> Result<i32, RuntimeError> {
        let (job, dir) = match self.existing(spec.id.as_str()) {
            Ok(found) => found,
            // Its files were lost (the host marked it failed for that): a new start.
            Err(RuntimeError::NoSuchJob(_)) => return self.create(spec),
            Err(e) => return Err(e),
        };
        if let JobState::Running(_) | JobState::Starting = self.state_in(&dir) {
            return Err(RuntimeError::Running(job));
        }
        // The log stays where it is, so that a reader never finds the job without it.
        self.clear(&job, &dir, &[crate::log::CURRENT, crate::log::ROTATED])?;
        self.create_in(spec, &dir)
    }
}
