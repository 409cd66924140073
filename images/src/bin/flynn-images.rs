//! `flynn-images build RECIPE`: builds an image from a recipe into an OCI layout and, with
//! `--store`, into pinkerton's store.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use images::debian::Fetched;

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
    /// later build needs no network; a base made from an older release of its suite than the
    /// mirror's (a Debian point release since) is made again.
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
            let Some(d) = &r.debian else {
                println!("{recipe}: no Debian base, nothing to fetch");
                continue;
            };
            match d.fetch(debian_mirror, cache)? {
                Fetched::Made(path) => println!("{}", path.display()),
                Fetched::Current(path, release) => println!(
                    "{}: up to date ({} of {})",
                    path.display(),
                    d.suite,
                    release.describe()
                ),
                Fetched::Remade(path, release) => println!(
                    "{}: made again from {} of {} (the mirror's release changed)",
                    path.display(),
                    d.suite,
                    release.describe()
                ),
                Fetched::Unchecked(path, e) => {
                    println!("{}", path.display());
                    eprintln!("warning: {recipe}: the cached base is kept, unchecked: {e}");
                }
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
