//! Image, volume, event and status commands.

use anyhow::bail;
use clap::{Args, Subcommand};
use pinkerton::digest::Digest;
use pinkerton::progress::human_size;
use pinkerton::pull::PullEvent;

use super::table;
use crate::api::{EventKind, PullMessage};
use crate::client::Client;

/// Pulls `image`, drawing progress on stderr (bars on a terminal, lines otherwise).
pub async fn pull(c: &Client, image: &str) -> anyhow::Result<()> {
    let progress = pinkerton::progress::stderr_progress();
    let mut stream = c.pull(image).await?;
    let digest = |s: &str| s.parse::<Digest>().ok();
    while let Some(msg) = stream.next().await? {
        let event = match msg {
            PullMessage::Resolved { digest: d, layers } => {
                digest(&d).map(|digest| PullEvent::Resolved { digest, layers })
            }
            PullMessage::Exists { layer } => {
                digest(&layer).map(|digest| PullEvent::LayerExists { digest })
            }
            PullMessage::Downloading { layer, size } => {
                digest(&layer).map(|digest| PullEvent::LayerStarted { digest, size })
            }
            PullMessage::Progress { layer, received } => {
                digest(&layer).map(|digest| PullEvent::LayerProgress { digest, received })
            }
            PullMessage::Done { layer } => {
                digest(&layer).map(|digest| PullEvent::LayerDone { digest })
            }
            PullMessage::Pulled { image } => {
                eprintln!("pulled {} ({})", image.name, image.id);
                return Ok(());
            }
            PullMessage::Error { error } => bail!("pull failed: {}", error.message),
        };
        if let Some(e) = event {
            progress(e);
        }
    }
    bail!("the daemon ended the pull of {image} without a result")
}

/// `images`.
pub async fn images(c: &Client, json: bool) -> anyhow::Result<i32> {
    let images = c.images().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&images)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            let short =
                i.id.trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect();
            vec![i.name.clone(), short, human_size(i.size)]
        })
        .collect();
    table::print(&["NAME", "IMAGE ID", "SIZE"], &rows);
    Ok(0)
}

/// `rmi`.
pub async fn rmi(c: &Client, images: &[String]) -> anyhow::Result<i32> {
    let mut code = 0;
    for name in images {
        match c.delete_image(name).await {
            Ok(removed) => removed
                .iter()
                .for_each(|i| println!("deleted {} ({})", i.name, i.id)),
            Err(e) => {
                eprintln!("Error: {name}: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `volume` subcommands.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume.
    Create {
        /// Its name.
        name: String,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove volumes no job uses.
    Rm {
        /// Names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `volume`.
pub async fn volume(c: &Client, cmd: VolumeCommand) -> anyhow::Result<i32> {
    match cmd {
        VolumeCommand::Create { name } => {
            let v = c.create_volume(&name).await?;
            println!("{}", v.name);
        }
        VolumeCommand::Ls { json } => {
            let vols = c.volumes().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&vols)?);
            } else {
                let rows: Vec<Vec<String>> = vols
                    .iter()
                    .map(|v| vec![v.name.clone(), v.path.clone()])
                    .collect();
                table::print(&["VOLUME", "PATH"], &rows);
            }
        }
        VolumeCommand::Rm { names } => {
            let mut code = 0;
            for n in &names {
                match c.delete_volume(n).await {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("Error: {n}: {e}");
                        code = 1;
                    }
                }
            }
            return Ok(code);
        }
    }
    Ok(0)
}

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events of this job.
    #[arg(long)]
    job: Option<String>,
    /// Print each event as JSON.
    #[arg(long)]
    json: bool,
}

/// `events`: prints events as they happen until interrupted.
pub async fn events(c: &Client, args: EventsArgs) -> anyhow::Result<i32> {
    let query = args.job.map(|j| format!("job={j}")).unwrap_or_default();
    let mut stream = c.events(&query).await?;
    while let Some(e) = stream.next_event().await? {
        if args.json {
            println!("{}", serde_json::to_string(&e)?);
            continue;
        }
        match (e.kind, &e.job, &e.image) {
            (EventKind::Job, Some(j), _) => {
                let detail = match (&j.exit, &j.error) {
                    (Some(s), _) => format!(" code={:?} signal={:?}", s.code, s.signal),
                    (_, Some(err)) => format!(" error={err:?}"),
                    _ => String::new(),
                };
                println!("{} job {} {}{detail}", e.time, j.id, j.state.as_str());
            }
            (EventKind::Image, _, Some(i)) => {
                let action = e.action.as_deref().unwrap_or("");
                println!("{} image {} {action} {}", e.time, i.name, i.id);
            }
            _ => {}
        }
    }
    Ok(0)
}

/// `status`.
pub async fn status(c: &Client, json: bool) -> anyhow::Result<i32> {
    let s = c.status().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(0);
    }
    println!("host:    {} (flynn-host {})", s.id, s.version);
    let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("tags:    {}", tags.join(" "));
    println!(
        "cpus:    {} (load {:.2} {:.2} {:.2})",
        s.cpus, s.load[0], s.load[1], s.load[2]
    );
    println!(
        "memory:  {} available of {}",
        human_size(s.memory.available),
        human_size(s.memory.total)
    );
    println!(
        "disk:    {} available of {}",
        human_size(s.disk.available),
        human_size(s.disk.total)
    );
    let jobs: Vec<String> = s.jobs.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!(
        "jobs:    {}",
        if jobs.is_empty() {
            "none".into()
        } else {
            jobs.join(", ")
        }
    );
    println!("uptime:  {} s", s.uptime);
    Ok(0)
}
