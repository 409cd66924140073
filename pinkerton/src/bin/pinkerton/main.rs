//! `pinkerton`: pull, import, list, flatten and remove images without Docker.

mod cli;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{Cli, Cmd};
use pinkerton::platform::Platform;
use pinkerton::progress::{human_size, stderr_progress};
use pinkerton::pull::{PullOptions, DEFAULT_MAX_LAYER_SIZE};
use pinkerton::push::{BlobAction, BlobPushed, PushOptions, DEFAULT_CHUNK_SIZE};
use pinkerton::registry::RegistryOptions;
use pinkerton::store::Store;

fn main() -> std::process::ExitCode {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime starts");
    match rt.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pinkerton: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once (many messages already quote theirs).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

async fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // A push reads its input, not the store.
    let cmd = match cli.cmd {
        Cmd::Push {
            input,
            target,
            reference,
            insecure,
            creds,
            chunk_size,
            mount_from,
            parallel,
        } => {
            let opts = PushOptions {
                registry: RegistryOptions {
                    insecure,
                    credentials: creds,
                    docker_config: None,
                },
                chunk_size: chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE),
                mount_from,
                reference,
                parallel,
            };
            let done = pinkerton::push::push(&input, &target, &opts, &report_blob).await?;
            eprintln!("{}: digest: {}", target.manifest_selector(), done.digest);
            println!("{}", done.pinned);
            return Ok(());
        }
        Cmd::Append {
            base,
            layer,
            target,
            env,
            entrypoint,
            image_cmd,
            labels,
            platform,
            insecure,
            creds,
        } => {
            let mut label_map = std::collections::BTreeMap::new();
            for l in labels {
                let (k, v) = l
                    .split_once('=')
                    .with_context(|| format!("--label {l:?}: use KEY=VALUE"))?;
                label_map.insert(k.to_string(), v.to_string());
            }
            if let Some(bad) = env.iter().find(|e| !e.contains('=')) {
                anyhow::bail!("--env {bad:?}: use KEY=VALUE");
            }
            let changes = pinkerton::append::ConfigChanges {
                env,
                entrypoint: entrypoint.map(|a| a.0),
                cmd: image_cmd.map(|a| a.0),
                labels: label_map,
                created_by: format!("pinkerton append {}", layer.display()),
                ..Default::default()
            };
            let opts = PushOptions {
                registry: RegistryOptions {
                    insecure,
                    credentials: creds,
                    docker_config: None,
                },
                ..Default::default()
            };
            let done = pinkerton::append::append(
                &base,
                &layer,
                &target,
                &changes,
                &platform.unwrap_or_else(Platform::host),
                &opts,
                &report_blob,
            )
            .await?;
            eprintln!("{}: digest: {}", target.manifest_selector(), done.digest);
            println!("{}", done.pinned);
            return Ok(());
        }
        cmd => cmd,
    };
    let store = Store::open(&cli.store)
        .with_context(|| format!("opening the store at {}", cli.store.display()))?;
    match cmd {
        Cmd::Push { .. } | Cmd::Append { .. } => {
            unreachable!("pushes return before the store is opened")
        }
        Cmd::Pull {
            reference,
            platform,
            insecure,
            creds,
            max_layer_size,
            parallel,
        } => {
            let opts = PullOptions {
                platform: platform.unwrap_or_else(Platform::host),
                parallel,
                max_layer_size: max_layer_size.unwrap_or(DEFAULT_MAX_LAYER_SIZE),
                registry: RegistryOptions {
                    insecure,
                    credentials: creds,
                    docker_config: None,
                },
            };
            let rec = pinkerton::pull::pull(&store, &reference, &opts, stderr_progress()).await?;
            println!("{}", rec.name);
            eprintln!(
                "digest: {}",
                rec.manifest
                    .as_ref()
                    .map_or(String::new(), |d| d.to_string())
            );
        }
        Cmd::Import {
            input,
            tag,
            platform,
            reference,
        } => {
            let platform = platform.unwrap_or_else(Platform::host);
            let recs = pinkerton::import::import(
                &store,
                &input,
                tag.as_ref(),
                &platform,
                DEFAULT_MAX_LAYER_SIZE,
                reference.as_deref(),
            )?;
            for r in recs {
                println!("{}", r.name);
            }
        }
        Cmd::Images { json } => {
            let images = store.images()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&images)?);
                return Ok(());
            }
            println!("{:<50} {:<14} {:>10}", "NAME", "IMAGE ID", "SIZE");
            for i in images {
                println!(
                    "{:<50} {:<14} {:>10}",
                    i.name,
                    i.id.short(),
                    human_size(i.size)
                );
            }
        }
        Cmd::Inspect { image } => {
            let rec = store.find_image(&image)?;
            let config = pinkerton::config::ImageConfig::parse(&store.read_blob(&rec.id)?)?;
            let out = serde_json::json!({ "image": rec, "defaults": config.defaults });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Cmd::Rootfs { image, dir } => {
            let rec = store.find_image(&image)?;
            pinkerton::rootfs::flatten(&store, &rec, &dir)?;
            println!("{}", dir.display());
        }
        Cmd::Rm { images } => {
            for image in images {
                let (removed, gc) = store.remove_image(&image)?;
                for r in removed {
                    println!("Untagged: {}", r.name);
                }
                println!(
                    "Deleted: {} layers ({}), {} blobs",
                    gc.layers,
                    human_size(gc.layer_bytes),
                    gc.blobs
                );
            }
        }
        Cmd::Gc => {
            let gc = store.gc()?;
            println!(
                "Deleted: {} layers ({}), {} blobs, {} temporary dirs",
                gc.layers,
                human_size(gc.layer_bytes),
                gc.blobs,
                gc.temp_dirs
            );
        }
    }
    Ok(())
}

/// One line per blob of a push.
fn report_blob(b: &BlobPushed) {
    let what = match &b.action {
        BlobAction::Exists => "already there".to_string(),
        BlobAction::Mounted(from) => format!("mounted from {from}"),
        BlobAction::Uploaded(1) => "pushed".to_string(),
        BlobAction::Uploaded(n) => format!("pushed in {} chunks", n - 1),
    };
    eprintln!("{}: {what} ({})", b.digest.short(), human_size(b.size));
}
