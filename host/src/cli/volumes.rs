//! `volume create|ls|rm`: the host's volumes.

use clap::Subcommand;

use super::table;
use host_api::client::Client;

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
