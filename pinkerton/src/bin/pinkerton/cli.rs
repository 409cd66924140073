//! The command line of `pinkerton`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use pinkerton::platform::Platform;
use pinkerton::progress::parse_size;
use pinkerton::reference::Reference;
use pinkerton::registry::Credentials;
use pinkerton::store::DEFAULT_ROOT;

#[derive(Parser)]
#[command(version, about = "Docker/OCI image import without Docker")]
pub struct Cli {
    /// Store directory.
    #[arg(long, global = true, env = "PINKERTON_STORE", default_value = DEFAULT_ROOT)]
    pub store: PathBuf,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Download an image from a registry, as `docker pull` does.
    Pull {
        /// `name[:tag][@digest]`, e.g. `busybox`, `127.0.0.1:5000/ns/app:v1`.
        reference: Reference,
        /// Platform to pick from multi-platform images (`os/arch[/variant]`).
        #[arg(long)]
        platform: Option<Platform>,
        /// Registry (`host[:port]`) to reach over plain HTTP; repeatable.
        #[arg(long = "insecure-registry")]
        insecure: Vec<String>,
        /// Credentials `USER:PASSWORD` (default: ~/.docker/config.json `auths`).
        #[arg(long, value_parser = |s: &str| Credentials::parse(s).ok_or("expected USER:PASSWORD"))]
        creds: Option<Credentials>,
        /// Largest uncompressed layer accepted (e.g. 4G).
        #[arg(long, value_parser = |s: &str| parse_size(s).ok_or("expected a size like 512M or 4G"))]
        max_layer_size: Option<u64>,
        /// Layers downloaded at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
    },
    /// Upload an OCI image layout (directory or tar) or a `docker save` archive to a
    /// registry, as `docker push` does; prints the pushed image by digest.
    Push {
        /// The layout directory or archive file.
        input: PathBuf,
        /// Where to: `registry/name[:tag]`, or `...@sha256:...` to insist on a digest.
        target: Reference,
        /// Push only the image of an OCI layout with this name
        /// (`org.opencontainers.image.ref.name`, as in skopeo's `oci:DIR:NAME`).
        #[arg(long = "ref", value_name = "NAME")]
        reference: Option<String>,
        /// Registry (`host[:port]`) to reach over plain HTTP; repeatable.
        #[arg(long = "insecure-registry")]
        insecure: Vec<String>,
        /// Credentials `USER:PASSWORD` (default: ~/.docker/config.json `auths`).
        #[arg(long, value_parser = |s: &str| Credentials::parse(s).ok_or("expected USER:PASSWORD"))]
        creds: Option<Credentials>,
        /// Blobs larger than this are uploaded in chunks of this size (e.g. 32M).
        #[arg(long, value_parser = |s: &str| parse_size(s).filter(|n| *n > 0).ok_or("expected a size like 512K or 32M"))]
        chunk_size: Option<u64>,
        /// A repository of the same registry to mount blobs from; repeatable.
        #[arg(long = "mount-from", value_name = "REPOSITORY")]
        mount_from: Vec<String>,
        /// Blobs pushed at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
    },
    /// Push a base image of a registry plus one layer as a new image of the same registry,
    /// without downloading the base (its layers are mounted); prints it by digest.
    Append {
        /// The base, e.g. `REGISTRY/flynn/stack-run:latest`.
        #[arg(long)]
        base: Reference,
        /// The layer: a tar (uncompressed, gzip or zstd).
        #[arg(long)]
        layer: PathBuf,
        /// Where to: `REGISTRY/name[:tag]`, in the base's registry.
        target: Reference,
        /// Set `K=V` in the image's environment; repeatable.
        #[arg(long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// The entrypoint, as a JSON array.
        #[arg(long, value_parser = json_args)]
        entrypoint: Option<JsonArgs>,
        /// The cmd, as a JSON array.
        #[arg(long = "cmd", value_parser = json_args)]
        image_cmd: Option<JsonArgs>,
        /// Set a label `K=V`; repeatable.
        #[arg(long = "label", value_name = "K=V")]
        labels: Vec<String>,
        /// Platform to pick from a multi-platform base (`os/arch[/variant]`).
        #[arg(long)]
        platform: Option<Platform>,
        /// Registry (`host[:port]`) to reach over plain HTTP; repeatable.
        #[arg(long = "insecure-registry")]
        insecure: Vec<String>,
        /// Credentials `USER:PASSWORD` (default: ~/.docker/config.json `auths`).
        #[arg(long, value_parser = |s: &str| Credentials::parse(s).ok_or("expected USER:PASSWORD"))]
        creds: Option<Credentials>,
    },
    /// Load a `docker save` archive or an OCI image layout (directory or tar).
    Import {
        /// The archive or layout directory.
        input: PathBuf,
        /// Name for the imported image (default: the names inside the archive).
        #[arg(long)]
        tag: Option<Reference>,
        /// Platform to pick from multi-platform layouts.
        #[arg(long)]
        platform: Option<Platform>,
        /// Import only the image of an OCI layout with this name
        /// (`org.opencontainers.image.ref.name`, as in skopeo's `oci:DIR:NAME`).
        #[arg(long = "ref", value_name = "NAME")]
        reference: Option<String>,
    },
    /// List images.
    Images {
        /// Print JSON records.
        #[arg(long)]
        json: bool,
    },
    /// Show an image's record and its defaults for jobs, as JSON.
    Inspect {
        /// Name, id or id prefix.
        image: String,
    },
    /// Write an image's flattened filesystem to DIR.
    Rootfs {
        /// Name, id or id prefix.
        image: String,
        /// A new or empty directory.
        dir: PathBuf,
    },
    /// Remove images, then the layers and blobs nothing references any more.
    Rm {
        /// Names, ids or id prefixes.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Delete layers and blobs that no image references, and leftover temporary files.
    Gc,
}

/// An argv given as a JSON array.
#[derive(Debug, Clone)]
pub struct JsonArgs(pub Vec<String>);

fn json_args(s: &str) -> Result<JsonArgs, String> {
    serde_json::from_str(s)
        .map(JsonArgs)
        .map_err(|_| "expected a JSON array of strings, e.g. [\"start\",\"web\"]".into())
}
