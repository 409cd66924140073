//! Buildpacks (the Heroku buildpack API): `bin/detect BUILD_DIR`, `bin/compile BUILD_DIR
//! CACHE_DIR ENV_DIR`, `bin/release BUILD_DIR`, each run as the unprivileged build user with
//! a clean environment (the app's env reaches compile only as files in ENV_DIR).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{io, BuildError};
use crate::procfile::{parse_release, ProcessTypes};

/// A buildpack on disk.
#[derive(Debug, Clone)]
pub struct Buildpack {
    /// Its name (the directory name without an `NN-` order prefix, or the URL).
    pub name: String,
    /// Its directory (with `bin/`).
    pub dir: PathBuf,
}

/// Who buildpacks run as, and the environment they all get.
#[derive(Debug, Clone)]
pub struct Runner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// `STACK`, `SOURCE_VERSION`, `HOME` and `PATH`.
    pub env: Vec<(String, String)>,
}

impl Runner {
    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env_clear().envs(self.env.iter().map(|(k, v)| (k, v)));
        // As root (the build job), drop to the build user; otherwise (a developer running
        // the builder by hand) run as whoever that is.
        if nix::unistd::geteuid().is_root() {
            // std clears the supplementary groups when root sets a uid.
            c.uid(self.uid).gid(self.gid);
        }
        c
    }
}

/// The built-in buildpacks under `root`, in directory order.
pub fn builtins(root: &Path) -> Result<Vec<Buildpack>, BuildError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(io(root))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("bin/detect").is_file())
        .collect();
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|dir| {
            let base = dir.file_name().unwrap_or_default().to_string_lossy();
            let name = match base.split_once('-') {
                Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest.to_string(),
                _ => base.to_string(),
            };
            Buildpack { name, dir }
        })
        .collect())
}

/// Clones the buildpack at a git `url` (`URL#REF` for a branch or tag) into `into`.
pub fn fetch(url: &str, into: &Path) -> Result<Buildpack, BuildError> {
    let (repo, reference) = match url.rsplit_once('#') {
        Some((r, f)) if !f.is_empty() => (r, Some(f)),
        _ => (url, None),
    };
    let mut c = Command::new("git");
    c.args(["clone", "--quiet", "--depth", "1"]);
    if let Some(r) = reference {
        c.args(["--branch", r]);
    }
    let out = c
        .arg("--")
        .arg(repo)
        .arg(into)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BuildError::Fetch {
            url: url.into(),
            reason: format!("running git: {e}"),
        })?;
    if !out.status.success() {
        return Err(BuildError::Fetch {
            url: url.into(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    if !into.join("bin/compile").is_file() {
        return Err(BuildError::Fetch {
            url: url.into(),
            reason: "it has no bin/compile".into(),
        });
    }
    Ok(Buildpack {
        name: url.to_string(),
        dir: into.to_path_buf(),
    })
}

impl Buildpack {
    /// What `bin/detect` prints when it accepts the app (its name if it prints nothing).
    pub fn detect(&self, runner: &Runner, build: &Path) -> Result<Option<String>, BuildError> {
        let detect = self.dir.join("bin/detect");
        if !detect.is_file() {
            return Ok(Some(self.name.clone()));
        }
        let out = runner
            .command(&detect)
            .arg(build)
            .stdin(Stdio::null())
            .output()
            .map_err(io(&detect))?;
        if !out.status.success() {
            return Ok(None);
        }
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(Some(if said.is_empty() {
            self.name.clone()
        } else {
            said
        }))
    }

    /// Runs `bin/compile`, its output going where the builder's goes.
    pub fn compile(
        &self,
        runner: &Runner,
        build: &Path,
        cache: &Path,
        env_dir: &Path,
    ) -> Result<(), BuildError> {
        let compile = self.dir.join("bin/compile");
        let status = runner
            .command(&compile)
            .arg(build)
            .arg(cache)
            .arg(env_dir)
            .current_dir(build)
            .stdin(Stdio::null())
            .status()
            .map_err(io(&compile))?;
        if status.success() {
            return Ok(());
        }
        Err(BuildError::Compile {
            buildpack: self.name.clone(),
            status: status.to_string(),
        })
    }

    /// The default process types of `bin/release` (none without one).
    pub fn release(&self, runner: &Runner, build: &Path) -> Result<ProcessTypes, BuildError> {
        let release = self.dir.join("bin/release");
        if !release.is_file() {
            return Ok(ProcessTypes::new());
        }
        let out = runner
            .command(&release)
            .arg(build)
            .stdin(Stdio::null())
            .output()
            .map_err(io(&release))?;
        if !out.status.success() {
            return Err(BuildError::Malformed {
                what: format!("{} bin/release", self.name),
                reason: format!("exited with {}", out.status),
            });
        }
        parse_release(&String::from_utf8_lossy(&out.stdout))
    }
}
