//! Recipes: what an image holds, declared in TOML (`images/recipes/NAME.toml`).
//!
//! ```toml
//! name = "flynn/host-cli"            # the image name
//! base = "busybox"                   # "busybox" (busybox-static applets), "scratch" or "debian"
//! binaries = ["flynn-host"]          # from the workspace's build directory, into /bin
//! strip = true                       # drop their debug information (the default)
//! entrypoint = ["/bin/flynn-host"]
//! cmd = ["--help"]
//! env = { RUST_LOG = "info" }
//! ports = ["1111/tcp", "53/udp"]
//! [[files]]                          # extra files: host path -> image path
//! source = "images/files/motd"
//! target = "/etc/motd"
//! mode = 0o644
//! [debian]                           # with base = "debian": a Debian root filesystem layer
//! suite = "bookworm"
//! packages = ["python3"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A recipe that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The file cannot be read.
    #[error("recipe {path}: {source}")]
    Read {
        /// The recipe file.
        path: PathBuf,
        /// Why it failed (the underlying error).
        source: std::io::Error,
    },
    /// The TOML does not parse or has unknown keys.
    #[error("recipe {path}: {message}")]
    Parse {
        /// The recipe file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is not acceptable.
    #[error("recipe {path}: {message}")]
    Invalid {
        /// The recipe file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// What the image starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Base {
    /// Nothing: only what the recipe names.
    Scratch,
    /// `/bin/busybox` (busybox-static) with a link per applet: a shell and tools for debugging.
    Busybox,
    /// A Debian root filesystem made by mmdebstrap (the recipe's `[debian]` table), as the
    /// image's first layer; the recipe's own files are a second layer.
    Debian,
}

/// An extra file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Path on the build host (relative ones from the recipe's directory); a directory
    /// brings every file under it, below `target`.
    pub source: PathBuf,
    /// Absolute path in the image.
    pub target: String,
    /// Permission bits (default 0o644; for a directory's files, their own).
    #[serde(default)]
    pub mode: Option<u32>,
}

/// One image's recipe.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The image name (repository), e.g. `flynn/discoverd`.
    pub name: String,
    /// What it starts from.
    pub base: Base,
    /// The Debian base, with `base = "debian"`.
    #[serde(default)]
    pub debian: Option<crate::debian::DebianBase>,
    /// Workspace binaries to put in `/bin`, with the shared libraries they load.
    #[serde(default)]
    pub binaries: Vec<String>,
    /// Programs of the build host (absolute paths, e.g. Debian's `/usr/bin/docker-registry`)
    /// to put in `/bin` under their file names, with the shared libraries they load; copied
    /// as installed.
    #[serde(default)]
    pub host_binaries: Vec<PathBuf>,
    /// Strip debug information from the binaries (default true; needs binutils' `strip`).
    #[serde(default = "yes")]
    pub strip: bool,
    /// Extra files.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// The entrypoint.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// The default arguments.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Environment (PATH defaults to /bin).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Exposed ports, `PORT/tcp` or `PORT/udp`.
    #[serde(default)]
    pub ports: Vec<String>,
    /// The recipe's directory, for relative file sources.
    #[serde(skip)]
    pub dir: PathBuf,
}

fn yes() -> bool {
    true
}

impl Recipe {
    /// Reads and checks the recipe at `path`.
    pub fn load(path: &Path) -> Result<Self, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read {
            path: path.into(),
            source,
        })?;
        let mut r: Recipe = toml::from_str(&text).map_err(|e| RecipeError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        r.dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        r.check().map_err(|message| RecipeError::Invalid {
            path: path.into(),
            message,
        })?;
        Ok(r)
    }

    fn check(&self) -> Result<(), String> {
        if self
            .name
            .parse::<pinkerton::reference::Reference>()
            .is_err()
            || self.name.contains(':')
        {
            return Err(format!(
                "name {:?} is not an image name (no tag)",
                self.name
            ));
        }
        for b in &self.binaries {
            if b.is_empty() || b.contains('/') {
                return Err(format!("binary {b:?} must be a plain file name"));
            }
        }
        for b in &self.host_binaries {
            if !b.is_absolute() || b.file_name().is_none() {
                return Err(format!(
                    "host binary {} must be an absolute path to a program",
                    b.display()
                ));
            }
        }
        for f in &self.files {
            if !f.target.starts_with('/') || f.target.split('/').any(|c| c == "..") {
                return Err(format!(
                    "file target {:?} must be absolute, without ..",
                    f.target
                ));
            }
        }
        for p in &self.ports {
            let ok = p.split_once('/').is_some_and(|(n, proto)| {
                n.parse::<u16>().is_ok_and(|n| n > 0) && matches!(proto, "tcp" | "udp")
            });
            if !ok {
                return Err(format!("port {p:?}: use PORT/tcp or PORT/udp"));
            }
        }
        match (&self.base, &self.debian) {
            (Base::Debian, None) => return Err("base \"debian\" needs a [debian] table".into()),
            (Base::Debian, Some(d)) => d.check()?,
            (_, Some(_)) => return Err("a [debian] table needs base = \"debian\"".into()),
            _ => {}
        }
        if self.entrypoint.is_empty() && self.cmd.is_empty() {
            return Err("give an entrypoint or a cmd".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Recipe, RecipeError> {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("r.toml");
        std::fs::write(&p, text).unwrap();
        Recipe::load(&p)
    }

    #[test]
    fn recipes_parse_and_bad_ones_are_refused() {
        let r = parse(
            "name = \"flynn/x\"\nbase = \"scratch\"\nbinaries = [\"x\"]\nentrypoint = [\"/bin/x\"]\nports = [\"80/tcp\"]\n",
        )
        .unwrap();
        assert_eq!((r.base, r.binaries.len()), (Base::Scratch, 1));
        for bad in [
            "name = \"flynn/x\"\nbase = \"scratch\"\n",
            "name = \"Bad Name\"\nbase = \"scratch\"\ncmd = [\"x\"]\n",
            "name = \"x\"\nbase = \"alpine\"\ncmd = [\"x\"]\n",
            "name = \"x\"\nbase = \"scratch\"\ncmd = [\"x\"]\nports = [\"http\"]\n",
            "name = \"x\"\nbase = \"scratch\"\ncmd = [\"x\"]\nbinaries = [\"../x\"]\n",
            "name = \"x\"\nbase = \"scratch\"\ncmd = [\"x\"]\nunknown = 1\n",
            "name = \"x\"\nbase = \"debian\"\ncmd = [\"x\"]\n",
            "name = \"x\"\nbase = \"scratch\"\ncmd = [\"x\"]\n[debian]\nsuite = \"bookworm\"\n",
            "name = \"x\"\nbase = \"debian\"\ncmd = [\"x\"]\n[debian]\nsuite = \"bookworm\"\npackages = [\"-x\"]\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
