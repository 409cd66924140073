//! `flynn-slugbuilder`: the build job. The pushed tree arrives as a tar on stdin; the app's
//! environment is the job's (less the builder's own settings); the result is pushed to the
//! cluster registry and named on the last stdout line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use pinkerton::append::ConfigChanges;
use pinkerton::platform::Platform;
use pinkerton::push::PushOptions;
use pinkerton::reference::Reference;
use pinkerton::registry::{Credentials, RegistryOptions};
use slugbuilder::{BuildOptions, RESULT_PREFIX};

/// Builds a pushed app into an image on the run stack.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The image to push, e.g. `REGISTRY/apps/APP:VERSION`.
    #[arg(long)]
    image: Reference,
    /// The run stack image the slug goes on (in the same registry).
    #[arg(long)]
    stack_image: Reference,
    /// The stack's name, given to buildpacks as STACK.
    #[arg(long, env = "STACK", default_value = "bookworm")]
    stack: String,
    /// The commit being built (SOURCE_VERSION).
    #[arg(long, env = "SOURCE_VERSION")]
    source_version: Option<String>,
    /// Registry (`host[:port]`) reached over plain HTTP; repeatable.
    #[arg(long = "insecure-registry")]
    insecure: Vec<String>,
    /// The app directory.
    #[arg(long, default_value = "/app")]
    app_dir: PathBuf,
    /// The build cache (a volume per app).
    #[arg(long, default_value = "/cache")]
    cache_dir: PathBuf,
    /// Scratch space.
    #[arg(long, default_value = "/tmp/slugbuilder")]
    work_dir: PathBuf,
    /// The built-in buildpacks.
    #[arg(long, default_value = "/buildpacks")]
    buildpacks: PathBuf,
    /// The build user's id.
    #[arg(long, default_value_t = 2000)]
    uid: u32,
    /// The build user's group id.
    #[arg(long, default_value_t = 2000)]
    gid: u32,
}

/// Variables of the job that are the builder's or the runtime's, not the app's.
fn is_app_env(key: &str) -> bool {
    !(key.starts_with("SLUGBUILDER_")
        || key.starts_with("FLYNN_")
        || matches!(
            key,
            "PATH"
                | "HOME"
                | "HOSTNAME"
                | "TERM"
                | "PWD"
                | "SHLVL"
                | "container"
                | "STACK"
                | "SOURCE_VERSION"
        ))
}

fn main() -> Result<()> {
    let a = Args::parse();
    let creds = match std::env::var("SLUGBUILDER_REGISTRY_CREDS") {
        Ok(c) => Some(
            Credentials::parse(&c).context("SLUGBUILDER_REGISTRY_CREDS: expected USER:PASSWORD")?,
        ),
        Err(_) => None,
    };
    let env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| is_app_env(k)).collect();
    let opts = BuildOptions {
        app_dir: a.app_dir.clone(),
        cache_dir: a.cache_dir,
        work_dir: a.work_dir.clone(),
        buildpacks_dir: a.buildpacks,
        env,
        uid: a.uid,
        gid: a.gid,
        stack: a.stack.clone(),
        source_version: a.source_version.clone(),
    };
    slugbuilder::ensure_user(a.uid, a.gid)?;
    let mut out = std::io::stdout();
    let built = slugbuilder::build(&opts, std::io::stdin().lock(), &mut out)?;

    println!("-----> Compressing and pushing the image");
    let layer = a.work_dir.join("slug.tar");
    slugbuilder::write_layer(&a.app_dir, &layer)?;
    let size = std::fs::metadata(&layer).map(|m| m.len()).unwrap_or(0);
    println!("       Slug size is {:.1} MB", size as f64 / 1e6);
    let mut labels = BTreeMap::new();
    if let Some(v) = &a.source_version {
        labels.insert("git.commit".to_string(), v.clone());
    }
    let changes = ConfigChanges {
        env: vec![format!("STACK={}", a.stack)],
        labels,
        created_by: "flynn-slugbuilder".into(),
        ..Default::default()
    };
    let push = PushOptions {
        registry: RegistryOptions {
            insecure: a.insecure,
            credentials: creds,
            docker_config: None,
        },
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(pinkerton::append::append(
        &a.stack_image,
        &layer,
        &a.image,
        &changes,
        &Platform::host(),
        &push,
        &|_| {},
    ))?;
    println!("       Image: {}", report.pinned);
    let result = serde_json::json!({
        "image": report.pinned.to_string(),
        "buildpacks": built.buildpacks,
        "process_types": built.process_types,
    });
    println!("{RESULT_PREFIX}{result}");
    Ok(())
}
