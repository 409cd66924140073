//! Running jobs on raw namespaces and cgroups through youki's libcontainer: job specs, OCI
//! runtime specs with security defaults, overlayfs root filesystems from pinkerton's layers,
//! a per-job monitor process (the shim), output logs, and cleanup.

pub mod atomic;
pub use runtime_api::attach;
pub mod exec;
mod hub;
pub mod job;
pub mod log;
pub mod net;
pub mod oci;
pub mod rootfs;
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod user;
pub mod volume;

pub use job::{JobState, Runtime, RuntimeError, EXTERNAL_IP};
pub use shim::ExitStatus;
pub use spec::{JobId, JobSpec, NetworkMode, Resources};
