//! `flynn-images build RECIPE`: builds an image from a recipe into an OCI layout and, with
//! `--store`, into pinkerton's store. `fetch` makes the Debian bases of recipes in the cache
//! (or again, after a Debian point release); `prune` removes the bases no recipe uses.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

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
    /// Remove from the cache the Debian bases no recipe uses any more (made for a package
    /// list or mirror since changed) and files left by fetches that did not finish.
    Prune {
        /// The recipes whose bases stay (default: every recipe in images/recipes).
        recipes: Vec<String>,
        /// Where Debian bases are cached.
        #[arg(long, env = "FLYNN_IMAGES_CACHE", default_value = images::build::DEFAULT_CACHE)]
        cache: PathBuf,
        /// The Debian mirror the kept bases were made from.
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

/// `flynn-images prune`: keeps the bases of `recipes` (all recipes when none is named).
fn prune(recipes: &[String], cache: &Path, mirror: &str) -> anyhow::Result<()> {
    let paths: Vec<PathBuf> = if recipes.is_empty() {
        let dir = images::recipes_dir();
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                all.push(path);
            }
        }
        all
    } else {
        recipes.iter().map(|r| recipe_path(r)).collect()
    };
    let mut keep = Vec::new();
    for path in &paths {
        if let Some(d) = images::Recipe::load(path)?.debian {
            keep.push(d.path(mirror, cache));
        }
    }
    let pruned = images::prune::prune(cache, &keep)?;
    let bytes: u64 = pruned.iter().map(|p| p.bytes).sum();
    for p in &pruned {
        println!("removed {} ({}): {}", p.path.display(), mib(p.bytes), p.why);
    }
    println!(
        "{}: removed {} ({}), kept {}",
        cache.display(),
        count(pruned.len(), "file"),
        mib(bytes),
        count(keep.len(), "base")
    );
    Ok(())
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
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
    if let Command::Prune {
        recipes,
        cache,
        debian_mirror,
    } = &command
    {
        return prune(recipes, cache, debian_mirror);
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
        unreachable!("fetch and prune returned above");
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
