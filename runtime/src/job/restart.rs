//! Starting an ended job again under the same id: what its last run left is removed, its log
//! is kept, so its earlier output reads before the new run's (as one container's log spans
//! its restarts).

use std::fs;
use std::path::PathBuf;

use super::{io, JobDir, JobState, Runtime, RuntimeError};
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
        let kept = self.kept_log_dir(spec.id.as_str());
        fs::create_dir_all(&kept).map_err(io(format!("creating {}", kept.display())))?;
        move_logs(&dir, &JobDir::new(&kept))?;
        self.clear(&job, &dir)?;
        fs::create_dir(dir.path()).map_err(io(format!("creating {}", dir.display())))?;
        move_logs(&JobDir::new(&kept), &dir)?;
        let _ = fs::remove_dir(&kept);
        self.create_in(spec, &dir)
    }

    /// Where a restarting job's log waits while its directory is renewed; a daemon killed in
    /// between leaves it, and the job's next restart or its delete takes it.
    pub(super) fn kept_log_dir(&self, id: &str) -> PathBuf {
        self.root
            .parent()
            .unwrap_or(&self.root)
            .join("restarting")
            .join(id)
    }
}

/// Moves the log files (current and rotated) from `from` to `to`; missing ones are skipped.
fn move_logs(from: &JobDir, to: &JobDir) -> Result<(), RuntimeError> {
    for name in [crate::log::CURRENT, crate::log::ROTATED] {
        match fs::rename(from.file(name), to.file(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("keeping the log {}", from.file(name).display()))(e)),
        }
    }
    Ok(())
}
