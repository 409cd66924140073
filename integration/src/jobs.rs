//! A runtime with a busybox image pulled by pinkerton from a real registry, for job tests.

use std::path::PathBuf;
use std::time::Duration;

use runtime::{ExitStatus, JobId, JobSpec, Runtime};

use crate::pinkerton::Pinkerton;
use crate::registry::Registry;
use crate::workspace_bin;

/// A runtime whose store holds `busybox` (the image name to use in specs).
#[derive(Debug)]
pub struct Jobs {
    /// The runtime.
    pub rt: Runtime,
    /// The pinkerton CLI and its store.
    pub pinkerton: Pinkerton,
    /// The image name of the busybox image.
    pub image: String,
    _registry: Registry,
    root: PathBuf,
}

impl Default for Jobs {
    fn default() -> Self {
        Self::new()
    }
}

impl Jobs {
    /// Pushes a busybox image to a fresh registry, pulls it, and sets up a runtime.
    pub fn new() -> Self {
        let registry = Registry::start();
        let p = Pinkerton::new();
        let image = crate::image::push_busybox(&registry.addr, p.scratch());
        p.ok(&["pull", &image]);
        let root = p.scratch().join("runtime");
        let store = pinkerton::store::Store::open(p.store()).unwrap();
        // As the daemon's: a standby shim takes the next job.
        let rt = Runtime::new(&root, store, workspace_bin("flynn-shim"))
            .unwrap()
            .with_standby_shim();
        // As the daemon does: the tests' own mount namespace takes the tmpfs with it.
        assert!(rt.keep_run_files_in_memory().unwrap());
        let root = rt.jobs_dir().to_path_buf();
        Self {
            rt,
            pinkerton: p,
            image,
            _registry: registry,
            root,
        }
    }

    /// Runs `spec` to completion; returns its exit status and its stdout joined by newlines.
    pub fn output(&self, spec: &JobSpec) -> (ExitStatus, String) {
        let (status, lines) = self.run(spec);
        (status, lines.join("\n"))
    }

    /// The directory jobs live in.
    pub fn root(&self) -> &PathBuf {
        &self.root
    }

    /// A spec running `sh -c script`.
    pub fn sh(&self, id: &str, script: &str) -> JobSpec {
        let id: JobId = id.parse().unwrap();
        JobSpec::new(
            id,
            &self.image,
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        )
    }

    /// Runs `spec` to completion; returns its exit status and stdout lines, and deletes it.
    pub fn run(&self, spec: &JobSpec) -> (ExitStatus, Vec<String>) {
        self.rt
            .create(spec)
            .unwrap_or_else(|e| panic!("create {}: {e}", spec.id));
        let status = self
            .rt
            .wait(spec.id.as_str(), Duration::from_secs(60))
            .unwrap();
        let lines = self
            .rt
            .logs(spec.id.as_str())
            .unwrap()
            .into_iter()
            .filter(|l| l.stream == runtime::log::Stream::Stdout)
            .map(|l| l.line)
            .collect();
        self.rt.delete(spec.id.as_str()).unwrap();
        (status, lines)
    }
}

/// Publishes job port `job` on host port `host` (0: any), TCP.
pub fn port(host: u16, job: u16) -> runtime::net::PortMap {
    runtime::net::PortMap {
        host,
        job,
        proto: runtime::net::Proto::Tcp,
    }
}
