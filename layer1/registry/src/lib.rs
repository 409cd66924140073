//! The cluster registry: Debian's `docker-registry` (the CNCF distribution registry) set up
//! for the platform. Images built on the platform are pushed here and hosts pull them from
//! here, both with the platform credential (HTTP basic auth, user `flynn`, the registry key
//! as password). Storage is a directory (a flynn-host volume) or S3.
//!
//! `flynn-registry` writes the registry's config and htpasswd file from its settings, then
//! execs the registry, which stays the job's process.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// The user name pushes and pulls authenticate as.
pub const DEFAULT_USER: &str = "flynn";

/// bcrypt cost of the htpasswd entry. The registry checks it on every request, and the
/// password is a random key (not a word a person chose), so a low cost is safe and keeps a
/// push of many blobs from spending its time in bcrypt.
pub const BCRYPT_COST: u32 = 6;

/// Setting up the registry failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key could not be hashed.
    #[error("hashing the registry key: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    /// A setting is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// Where blobs and manifests are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A directory (by default a flynn-host volume mounted at `/data`).
    Filesystem(PathBuf),
    /// An S3 bucket (or an S3-compatible store at `endpoint`).
    S3(S3),
}

/// S3 settings, as the registry's `s3` storage driver takes them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3 {
    /// The bucket.
    pub bucket: String,
    /// Its region.
    pub region: String,
    /// An S3-compatible endpoint (MinIO, Ceph), instead of AWS.
    pub endpoint: Option<String>,
    /// Access key; without one, the driver's usual sources (instance role, environment).
    pub access_key: Option<String>,
    /// Secret key.
    pub secret_key: Option<String>,
    /// A prefix inside the bucket.
    pub root: Option<String>,
}

/// What the registry is set up with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address, `HOST:PORT` or `:PORT`.
    pub listen: String,
    /// Storage.
    pub storage: Storage,
    /// The user name.
    pub user: String,
    /// The password (the registry key).
    pub key: String,
    /// Secret the registry signs upload state with; the same for every instance of one
    /// cluster, so an upload may move between instances behind the router.
    pub http_secret: String,
}

impl Settings {
    /// Refuses settings the registry would run badly with.
    pub fn check(&self) -> Result<(), RegistryError> {
        if self.key.len() < 16 {
            return Err(RegistryError::Invalid(
                "the registry key must have at least 16 characters (set AUTH_KEY)".into(),
            ));
        }
        if self.user.is_empty() || self.user.contains(':') {
            return Err(RegistryError::Invalid(format!(
                "user name {:?} must be non-empty, without ':'",
                self.user
            )));
        }
        if let Storage::S3(s3) = &self.storage {
            if s3.bucket.is_empty() || s3.region.is_empty() {
                return Err(RegistryError::Invalid(
                    "S3 storage needs a bucket and a region (S3_BUCKET, S3_REGION)".into(),
                ));
            }
        }
        Ok(())
    }
}

/// The registry's configuration document (JSON is YAML, which the registry reads).
pub fn config(settings: &Settings, htpasswd: &Path) -> Value {
    let storage = match &settings.storage {
        Storage::Filesystem(dir) => json!({"filesystem": {"rootdirectory": dir}}),
        Storage::S3(s3) => {
            let mut d = json!({"bucket": s3.bucket, "region": s3.region});
            for (k, v) in [
                ("regionendpoint", &s3.endpoint),
                ("accesskey", &s3.access_key),
                ("secretkey", &s3.secret_key),
                ("rootdirectory", &s3.root),
            ] {
                if let Some(v) = v {
                    d[k] = json!(v);
                }
            }
            json!({ "s3": d })
        }
    };
    let mut storage = storage;
    storage["delete"] = json!({"enabled": true});
    storage["cache"] = json!({"blobdescriptor": "inmemory"});
    json!({
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": "registry"}},
        "storage": storage,
        "http": {
            "addr": settings.listen,
            "secret": settings.http_secret,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "auth": {"htpasswd": {"realm": "flynn", "path": htpasswd}},
        "health": {"storagedriver": {"enabled": true, "interval": "10s", "threshold": 3}},
    })
}

/// The htpasswd line for `user` with password `key` (bcrypt, as the registry requires).
pub fn htpasswd_line(user: &str, key: &str) -> Result<String, RegistryError> {
    Ok(format!("{user}:{}\n", bcrypt::hash(key, BCRYPT_COST)?))
}

/// Writes `config.yml` and `htpasswd` into `dir` (made private to root), each complete or
/// not at all; returns the config's path.
pub fn write(settings: &Settings, dir: &Path) -> Result<PathBuf, RegistryError> {
    settings.check()?;
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RegistryError::Write { path, source }
    };
    fs::create_dir_all(dir).map_err(at(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(at(dir))?;
    let htpasswd = dir.join("htpasswd");
    write_private(
        &htpasswd,
        htpasswd_line(&settings.user, &settings.key)?.as_bytes(),
    )?;
    let config_path = dir.join("config.yml");
    let doc = serde_json::to_vec_pretty(&config(settings, &htpasswd)).expect("JSON serializes");
    write_private(&config_path, &doc)?;
    Ok(config_path)
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), RegistryError> {
    let err = |source| RegistryError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(storage: Storage) -> Settings {
        Settings {
            listen: ":5000".into(),
            storage,
            user: DEFAULT_USER.into(),
            key: "0123456789abcdef0123".into(),
            http_secret: "s".into(),
        }
    }

    #[test]
    fn the_htpasswd_entry_verifies_the_key_only() {
        let line = htpasswd_line("flynn", "0123456789abcdef0123").unwrap();
        let (user, hash) = line.trim().split_once(':').unwrap();
        assert_eq!(user, "flynn");
        assert!(hash.starts_with("$2"), "{hash}");
        assert!(bcrypt::verify("0123456789abcdef0123", hash).unwrap());
        assert!(!bcrypt::verify("0123456789abcdef0124", hash).unwrap());
    }

    #[test]
    fn config_names_storage_auth_and_listen_address() {
        let c = config(
            &settings(Storage::Filesystem("/data".into())),
            Path::new("/x/htpasswd"),
        );
        assert_eq!(c["storage"]["filesystem"]["rootdirectory"], "/data");
        assert_eq!(c["auth"]["htpasswd"]["path"], "/x/htpasswd");
        assert_eq!(c["http"]["addr"], ":5000");
        let s3 = S3 {
            bucket: "b".into(),
            region: "r".into(),
            endpoint: Some("http://minio:9000".into()),
            ..S3::default()
        };
        let c = config(&settings(Storage::S3(s3)), Path::new("/h"));
        assert_eq!(c["storage"]["s3"]["regionendpoint"], "http://minio:9000");
        assert!(c["storage"]["s3"].get("accesskey").is_none());
    }

    #[test]
    fn bad_settings_are_refused_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(Storage::Filesystem("/data".into()));
        s.key = "short".into();
        assert!(write(&s, &dir.path().join("cfg")).is_err());
        assert!(!dir.path().join("cfg").exists());
        s.key = "0123456789abcdef0123".into();
        s.storage = Storage::S3(S3::default());
        assert!(write(&s, &dir.path().join("cfg"))
            .unwrap_err()
            .to_string()
            .contains("S3_BUCKET"));
        s.storage = Storage::Filesystem("/data".into());
        let cfg = write(&s, &dir.path().join("cfg")).unwrap();
        let mode = fs::metadata(&cfg).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
