//! A job's directory, `ROOT/jobs/ID/`: every file the runtime, the shim and the host keep
//! there, named in this one place.

use std::path::{Path, PathBuf};

/// A job's directory and the names of what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDir(PathBuf);

impl JobDir {
    /// The job's spec as created (`JobSpec`, JSON).
    pub const SPEC: &'static str = "job.json";
    /// What the shim is told to run (JSON); its presence marks a job that exists.
    pub const SHIM_CONFIG: &'static str = "shim.json";
    /// The shim's own log (its stderr).
    pub const SHIM_LOG: &'static str = "shim.log";
    /// The shim's pid.
    pub const SHIM_PID: &'static str = "shim.pid";
    /// The job's init pid, once it runs.
    pub const PID: &'static str = "pid";
    /// How the job ended (`ExitStatus`, JSON).
    pub const EXIT: &'static str = "exit.json";
    /// Why the job failed (text).
    pub const ERROR: &'static str = "error";
    /// The job's network attachment (JSON).
    pub const NET: &'static str = "net.json";
    /// The shim's attach socket.
    pub const ATTACH_SOCKET: &'static str = "attach.sock";
    /// The console socket a terminal job's pty arrives on.
    pub const CONSOLE_SOCKET: &'static str = "console.sock";
    /// libcontainer's state directory.
    pub const STATE: &'static str = "state";
    /// The OCI bundle (`config.json` and the root filesystem).
    pub const BUNDLE: &'static str = "bundle";
    /// The OCI runtime spec in the bundle.
    pub const OCI_CONFIG: &'static str = "config.json";
    /// The overlay's upper and work directories.
    pub const UPPER: &'static str = "upper";
    /// See [`JobDir::UPPER`].
    pub const WORK: &'static str = "work";
    /// An empty directory (the lower layer of an image without layers).
    pub const EMPTY: &'static str = "empty";

    /// The directory at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `name` in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The OCI bundle directory.
    pub fn bundle(&self) -> PathBuf {
        self.file(Self::BUNDLE)
    }

    /// The job's root filesystem (the overlay mount point).
    pub fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }

    /// True once the job's files are all written (its shim config exists).
    pub fn exists(&self) -> bool {
        self.file(Self::SHIM_CONFIG).exists()
    }

    /// Writes `name` in the directory atomically (see [`crate::atomic::write`]).
    pub fn write(&self, name: &str, data: &[u8]) -> std::io::Result<()> {
        crate::atomic::write(&self.0, name, data)
    }
}

impl AsRef<Path> for JobDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for JobDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}
