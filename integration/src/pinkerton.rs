//! Driving the `pinkerton` binary against a private store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{run, workspace_bin};

/// A `pinkerton` CLI with its own temporary store and an empty Docker config.
#[derive(Debug)]
pub struct Pinkerton {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Default for Pinkerton {
    fn default() -> Self {
        Self::new()
    }
}

impl Pinkerton {
    /// A fresh store.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("docker")).unwrap();
        Self {
            dir,
            bin: workspace_bin("pinkerton"),
        }
    }

    /// The store directory.
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// A scratch directory beside the store.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The Docker config directory the CLI reads credentials from.
    pub fn docker_config_dir(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    /// A command with `--store` set.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--store")
            .arg(self.store())
            .env("DOCKER_CONFIG", self.docker_config_dir());
        c
    }

    /// Runs with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        run(self.cmd().args(args))
    }

    /// Runs with `args`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        crate::run_ok(self.cmd().args(args))
    }

    /// Runs with `args`, which must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "pinkerton {args:?} succeeded but should have failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}
