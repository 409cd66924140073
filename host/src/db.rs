//! The daemon's embedded database (redb, one file under the state directory): job records and
//! a few host settings. Every write is one committed transaction, so a daemon killed at any
//! point finds each record either before or after a change, never half-way.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};

use host_api::Job;

const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// A database operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// redb failed.
    #[error(
        "state database {path}: {source}; check the disk and permissions of the state directory"
    )]
    Redb {
        /// The database file.
        path: PathBuf,
        /// Why it failed (the underlying error).
        source: Box<redb::Error>,
    },
    /// A record does not parse.
    #[error("state database {path}: record {key} is corrupt: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The record.
        key: String,
        /// The parse error.
        reason: String,
    },
}

/// The job and settings database.
#[derive(Debug)]
pub struct Db {
    db: Database,
    path: PathBuf,
}

impl Db {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let path = path.to_path_buf();
        let err = |e: redb::Error| DbError::Redb {
            path: path.clone(),
            source: Box::new(e),
        };
        let db = Database::create(&path).map_err(|e| err(e.into()))?;
        // Job records hold environments: root only.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| err(redb::Error::Io(e)))?;
        let tx = db.begin_write().map_err(|e| err(e.into()))?;
        tx.open_table(JOBS).map_err(|e| err(e.into()))?;
        tx.open_table(META).map_err(|e| err(e.into()))?;
        tx.commit().map_err(|e| err(e.into()))?;
        Ok(Self { db, path })
    }

    fn err(&self, e: impl Into<redb::Error>) -> DbError {
        DbError::Redb {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    /// Stores (replacing) a job record.
    pub fn put_job(&self, job: &Job) -> Result<(), DbError> {
        let bytes = serde_json::to_vec(job).expect("jobs serialise");
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(JOBS).map_err(|e| self.err(e))?;
            t.insert(job.id.as_str(), bytes.as_slice())
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Removes a job record.
    pub fn delete_job(&self, id: &host_api::JobId) -> Result<(), DbError> {
        let id = id.as_str();
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(JOBS).map_err(|e| self.err(e))?;
            t.remove(id).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Every job record.
    pub fn jobs(&self) -> Result<Vec<Job>, DbError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(JOBS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let job = serde_json::from_slice(v.value()).map_err(|e| DbError::Corrupt {
                path: self.path.clone(),
                key: k.value().to_string(),
                reason: e.to_string(),
            })?;
            out.push(job);
        }
        Ok(out)
    }

    /// A host setting.
    pub fn meta(&self, key: &str) -> Result<Option<String>, DbError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(META).map_err(|e| self.err(e))?;
        let v = t.get(key).map_err(|e| self.err(e))?;
        Ok(v.map(|v| v.value().to_string()))
    }

    /// Sets a host setting.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), DbError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(META).map_err(|e| self.err(e))?;
            t.insert(key, value).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use host_api::{CreateJob, JobState};

    #[test]
    fn records_survive_reopening() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("host.redb");
        let job = Job {
            id: "a".parse().unwrap(),
            state: JobState::Running,
            config: CreateJob::new("busybox", Vec::new()),
            created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            started_at: None,
            ended_at: None,
            pid: Some(7),
            ip: None,
            ports: Vec::new(),
            exit: None,
            error: None,
            restarts: 0,
            stopped: false,
        };
        {
            let db = Db::open(&path).unwrap();
            db.put_job(&job).unwrap();
            db.set_meta("host_id", "h1").unwrap();
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(db.jobs().unwrap(), vec![job.clone()]);
        assert_eq!(db.meta("host_id").unwrap().as_deref(), Some("h1"));
        db.delete_job(&job.id).unwrap();
        assert!(db.jobs().unwrap().is_empty());
    }
}
