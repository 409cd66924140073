//! `flynn-images build RECIPE`: builds an image from a recipe into an OCI layout and, with
//! `--store`, into pinkerton's store.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "flynn-images",
    about = "Builds the platform's images without Docker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build one recipe.
    Build {
        /// The recipe (a TOML file, or a name in images/recipes).
        recipe: String,
        /// Where the workspace binaries are.
        #[arg(long, default_value = "target/release")]
        bin_dir: PathBuf,
        /// The OCI layout to write (default: target/images/NAME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The tag (default: NAME:latest).
        #[arg(long)]
        tag: Option<String>,
        /// Also import into this pinkerton store.
        #[arg(long)]
        store: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let Command::Build {
        recipe,
        bin_dir,
        out,
        tag,
        store,
    } = Cli::parse().command;
    let path = if recipe.ends_with(".toml") {
        PathBuf::from(&recipe)
    } else {
        images::recipes_dir().join(format!("{recipe}.toml"))
    };
    let r = images::Recipe::load(&path)?;
    let short = r.name.rsplit('/').next().unwrap_or(&r.name).to_string();
    let out = out.unwrap_or_else(|| PathBuf::from("target/images").join(&short));
    let tag = tag.unwrap_or_else(|| format!("{}:latest", r.name));
    let inputs = images::Inputs {
        bin_dir,
        ..Default::default()
    };
    let w = images::build(&r, &inputs, &out, &tag)?;
    println!("{} {} ({})", out.display(), w.manifest, tag);
    if let Some(store) = store {
        let store = pinkerton::store::Store::open(&store)?;
        let reference: pinkerton::reference::Reference = tag.parse().context("the tag")?;
        let recs = pinkerton::import::import(
            &store,
            &out,
            Some(&reference),
            &pinkerton::platform::Platform::host(),
            pinkerton::pull::DEFAULT_MAX_LAYER_SIZE,
            None,
        )?;
        for rec in recs {
            println!("imported {} ({})", rec.name, rec.id);
        }
    }
    Ok(())
}
