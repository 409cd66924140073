//! The repositories: one bare repository per app (by app id, so a deleted app's name used
//! again starts empty) under the data directory, kept between pushes so a second push sends
//! only new objects. Each has a `pre-receive` hook that runs `flynn-gitreceive hook`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::GitReceiveError;

/// Where the repositories live.
#[derive(Debug, Clone)]
pub struct Repos {
    root: PathBuf,
    /// The program the hooks run (this binary).
    hook_program: PathBuf,
}

impl Repos {
    /// Repositories under `root`, whose hooks run `hook_program hook`.
    pub fn new(root: PathBuf, hook_program: PathBuf) -> Self {
        Self { root, hook_program }
    }

    /// The repository of app `app_id`, made (bare, hook installed) if it is new.
    pub async fn open(&self, app_id: &str) -> Result<PathBuf, GitReceiveError> {
        let path = self.root.join(format!("{app_id}.git"));
        let io = |source| GitReceiveError::Repo {
            path: path.display().to_string(),
            source,
        };
        if !path.join("HEAD").exists() {
            // Made beside its final name and renamed into place, so a half-made repository
            // is never served.
            tokio::fs::create_dir_all(&self.root).await.map_err(io)?;
            let tmp = tempdir_in(&self.root).map_err(io)?;
            git(
                &tmp,
                &[
                    "init",
                    "--bare",
                    "--quiet",
                    "--template=",
                    "--initial-branch=main",
                ],
            )
            .await?;
            match tokio::fs::rename(&tmp, &path).await {
                Ok(()) => {}
                // Another push made it first.
                Err(_) if path.join("HEAD").exists() => {
                    let _ = tokio::fs::remove_dir_all(&tmp).await;
                }
                Err(e) => return Err(io(e)),
            }
        }
        self.install_hook(&path).await.map_err(io)?;
        Ok(path)
    }

    /// Writes the `pre-receive` hook (every time: the binary's path may change between
    /// releases of gitreceive).
    async fn install_hook(&self, repo: &Path) -> std::io::Result<()> {
        let hooks = repo.join("hooks");
        tokio::fs::create_dir_all(&hooks).await?;
        let script = format!(
            "#!/bin/sh\nexec '{}' hook\n",
            self.hook_program
                .display()
                .to_string()
                .replace('\'', "'\\''")
        );
        let hook = hooks.join("pre-receive");
        if tokio::fs::read_to_string(&hook).await.ok().as_deref() == Some(script.as_str()) {
            return Ok(());
        }
        let tmp = hooks.join(".pre-receive.tmp");
        tokio::fs::write(&tmp, script).await?;
        tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).await?;
        tokio::fs::rename(&tmp, &hook).await
    }
}

/// A new empty directory in `dir`.
fn tempdir_in(dir: &Path) -> std::io::Result<PathBuf> {
    for n in 0..100u32 {
        let p = dir.join(format!(".new-{}-{n}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary directory name"))
}

/// Runs `git ARGS` in `dir`; its stderr is the error when it fails.
pub async fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitReceiveError> {
    let what = args.first().copied().unwrap_or("").to_string();
    let out = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| GitReceiveError::Git {
            what: what.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(GitReceiveError::GitFailed {
            what,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_repository_is_made_once_with_its_hook() {
        let t = tempfile::tempdir().unwrap();
        let repos = Repos::new(t.path().join("repos"), "/bin/flynn-gitreceive".into());
        let a = repos.open("app1").await.unwrap();
        assert!(a.join("HEAD").exists());
        let hook = std::fs::read_to_string(a.join("hooks/pre-receive")).unwrap();
        assert_eq!(hook, "#!/bin/sh\nexec '/bin/flynn-gitreceive' hook\n");
        std::fs::write(a.join("marker"), "x").unwrap();
        assert_eq!(repos.open("app1").await.unwrap(), a);
        assert!(a.join("marker").exists(), "an existing repository is kept");
        let names: Vec<_> = std::fs::read_dir(t.path().join("repos"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("app1.git")]);
    }
}
