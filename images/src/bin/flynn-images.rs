//! `flynn-images build RECIPE`: builds an image from a recipe into an OCI layout and, with
//! `--store`, into pinkerton's store.

use std::path::PathBuf;

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
        /// Where Debian bases are cached.
        #[arg(long, env = "FLYNN_IMAGES_CACHE", default_value = images::build::DEFAULT_CACHE)]
        cache: PathBuf,
        /// The Debian mirror for Debian bases.
        #[arg(long, default_value = images::debian::DEFAULT_MIRROR)]
        debian_mirror: String,
    },
    /// Make the Debian bases of recipes in the cache (the step that needs the mirror), so a
    /// later build needs no network.
    Fetch {
        /// The recipes (TOML files, or names in images/recipes).
        #[arg(required = true)]
        recipes: Vec<String>,
        /// Where Debian bases are cached.
        #[arg(long, env = "FLYNN_IMAGES_CACHE", default_value = images::build::DEFAULT_CACHE)]
        cache: PathBuf,
        /// The Debian mirror.
        #[arg(long, default_value = images::debian::DEFAULT_MIRROR)]
        debian_mirror: String,
    },
}

fn recipe_path(recipe: &str) -> PathBuf {
    if recipe.ends_with(".toml") {
        PathBuf::from(recipe)
    } else {
        images::recipes_dir().join(format!("{recipe}.toml"))
    }
}

fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    if let Command::Fetch {
        recipes,
        cache,
        debian_mirror,
    } = &command
    {
        for recipe in recipes {
            let r = images::Recipe::load(&recipe_path(recipe))?;
            match &r.debian {
                Some(d) => println!("{}", d.tar(debian_mirror, cache)?.display()),
                None => println!("{recipe}: no Debian base, nothing to fetch"),
            }
        }
        return Ok(());
    }
    let Command::Build {
        recipe,
        bin_dir,
        out,
        tag,
        store,
        cache,
        debian_mirror,
    } = command
    else {
        unreachable!("fetch returned above");
    };
    let path = recipe_path(&recipe);
    let r = images::Recipe::load(&path)?;
    let short = r.name.rsplit('/').next().unwrap_or(&r.name).to_string();
    let out = out.unwrap_or_else(|| PathBuf::from("target/images").join(&short));
    let tag = tag.unwrap_or_else(|| format!("{}:latest", r.name));
    let inputs = images::Inputs {
        bin_dir,
        cache,
        debian_mirror,
        ..Default::default()
    };
    let w = images::build(&r, &inputs, &out, &tag)?;
    println!("{} {} ({})", out.display(), w.manifest, tag);
    if let Some(store) = store {
        let recs = images::import(&out, &store, &tag)?;
        for rec in recs {
            println!("imported {} ({})", rec.name, rec.id);
        }
    }
    Ok(())
}
