//! `flynn-registry`: writes the cluster registry's config from its settings and execs
//! Debian's `docker-registry` with it.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use cluster_registry::{Settings, Storage, DEFAULT_USER, S3};
use sha2::{Digest, Sha256};

/// The cluster's image registry.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Listen address (default: all addresses, port $PORT or 5000).
    #[arg(long, env = "LISTEN")]
    listen: Option<String>,
    /// The password pushes and pulls use (the platform's registry key).
    #[arg(long, env = "AUTH_KEY", hide_env_values = true)]
    auth_key: String,
    /// The user name they use.
    #[arg(long, env = "REGISTRY_USER", default_value = DEFAULT_USER)]
    user: String,
    /// Directory the images are kept in (a volume), unless S3 is set.
    #[arg(long, env = "DATA_DIR", default_value = "/data")]
    data: PathBuf,
    /// Keep images in this S3 bucket instead.
    #[arg(long, env = "S3_BUCKET")]
    s3_bucket: Option<String>,
    /// The bucket's region.
    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    /// An S3-compatible endpoint (MinIO, Ceph) instead of AWS.
    #[arg(long, env = "S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 access key.
    #[arg(long, env = "S3_ACCESS_KEY", hide_env_values = true)]
    s3_access_key: Option<String>,
    /// S3 secret key.
    #[arg(long, env = "S3_SECRET_KEY", hide_env_values = true)]
    s3_secret_key: Option<String>,
    /// A prefix inside the bucket.
    #[arg(long, env = "S3_ROOT")]
    s3_root: Option<String>,
    /// Where the generated config and htpasswd go.
    #[arg(long, env = "CONFIG_DIR", default_value = "/tmp/flynn-registry")]
    config_dir: PathBuf,
    /// The registry program.
    #[arg(long, default_value = "/bin/docker-registry")]
    registry_bin: PathBuf,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let listen = a.listen.unwrap_or_else(|| {
        format!(
            ":{}",
            std::env::var("PORT").unwrap_or_else(|_| "5000".into())
        )
    });
    let storage = match a.s3_bucket {
        Some(bucket) => Storage::S3(S3 {
            bucket,
            region: a.s3_region,
            endpoint: a.s3_endpoint,
            access_key: a.s3_access_key,
            secret_key: a.s3_secret_key,
            root: a.s3_root,
        }),
        None => Storage::Filesystem(a.data),
    };
    // Every instance derives the same secret from the key, so uploads may cross instances.
    let http_secret = hex::encode(Sha256::digest(format!("flynn-registry\0{}", a.auth_key)));
    let settings = Settings {
        listen,
        storage,
        user: a.user,
        key: a.auth_key,
        http_secret,
    };
    let config = cluster_registry::write(&settings, &a.config_dir)?;
    // The key must not reach the registry's environment (it logs its settings).
    let err = std::process::Command::new(&a.registry_bin)
        .arg("serve")
        .arg(&config)
        .env_remove("AUTH_KEY")
        .env_remove("S3_ACCESS_KEY")
        .env_remove("S3_SECRET_KEY")
        .exec();
    Err(err).with_context(|| format!("running {}", a.registry_bin.display()))
}
