//! Volumes: directories the runtime manages under `ROOT/volumes/NAME/data`, which outlive the
//! jobs that use them and can be attached to later jobs.

use std::fs;
use std::path::PathBuf;

use crate::spec::valid_name as valid;

/// A volume operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The name is not valid.
    #[error("invalid volume name {0:?}: use 1-64 letters, digits, '_', '.' or '-', not starting with '.' or '-'")]
    BadName(String),
    /// No volume has this name.
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    /// The volume exists.
    #[error("volume {0} already exists")]
    Exists(String),
    /// A job that is not deleted still uses the volume.
    #[error("volume {name} is used by job {job}; delete the job first")]
    InUse {
        /// The volume.
        name: String,
        /// A job using it.
        job: String,
    },
    /// A filesystem operation failed.
    #[error("volume {name}: {source}")]
    Io {
        /// The volume.
        name: String,
        /// Why it failed (the underlying error).
        source: std::io::Error,
    },
}

pub use runtime_api::VolumeMount;

/// The volumes under one root.
#[derive(Debug, Clone)]
pub struct Volumes {
    root: PathBuf,
}

impl Volumes {
    /// Volumes kept in `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn dir(&self, name: &str) -> Result<PathBuf, VolumeError> {
        if !valid(name) {
            return Err(VolumeError::BadName(name.to_string()));
        }
        Ok(self.root.join(name))
    }

    /// Creates an empty volume; returns its data directory.
    pub fn create(&self, name: &str) -> Result<PathBuf, VolumeError> {
        let dir = self.dir(name)?;
        let io = |source| VolumeError::Io {
            name: name.to_string(),
            source,
        };
        fs::create_dir_all(&self.root).map_err(io)?;
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(VolumeError::Exists(name.to_string()))
            }
            Err(e) => return Err(io(e)),
        }
        fs::create_dir(dir.join("data")).map_err(io)?;
        Ok(dir.join("data"))
    }

    /// The data directory of an existing volume.
    pub fn path(&self, name: &str) -> Result<PathBuf, VolumeError> {
        let data = self.dir(name)?.join("data");
        if !data.is_dir() {
            return Err(VolumeError::NoSuchVolume(name.to_string()));
        }
        Ok(data)
    }

    /// Names of all volumes.
    pub fn list(&self) -> Result<Vec<String>, VolumeError> {
        let mut out: Vec<String> = match fs::read_dir(&self.root) {
            Ok(entries) => entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| valid(n))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(VolumeError::Io {
                    name: String::new(),
                    source,
                })
            }
        };
        out.sort();
        Ok(out)
    }

    /// Deletes a volume and its data (the caller checks that no job uses it).
    pub fn delete(&self, name: &str) -> Result<(), VolumeError> {
        let dir = self.dir(name)?;
        if !dir.is_dir() {
            return Err(VolumeError::NoSuchVolume(name.to_string()));
        }
        fs::remove_dir_all(&dir).map_err(|source| VolumeError::Io {
            name: name.to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_and_bad_names() {
        let t = tempfile::tempdir().unwrap();
        let v = Volumes::new(t.path().join("volumes"));
        assert!(v.list().unwrap().is_empty());
        let data = v.create("pgdata").unwrap();
        fs::write(data.join("f"), b"x").unwrap();
        assert!(matches!(v.create("pgdata"), Err(VolumeError::Exists(_))));
        assert_eq!(v.list().unwrap(), ["pgdata"]);
        assert_eq!(v.path("pgdata").unwrap(), data);
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(
                matches!(v.create(bad), Err(VolumeError::BadName(_))),
                "{bad}"
            );
        }
        v.delete("pgdata").unwrap();
        assert!(matches!(
            v.path("pgdata"),
            Err(VolumeError::NoSuchVolume(_))
        ));
    }
}
