//! A job's description, shared by the runtime (which runs it) and the host API (which takes
//! it in requests and reports it): [`JobId`], [`JobConfig`] and its parts, how a job ended
//! ([`ExitStatus`]) and one record of its log ([`LogLine`]); and the attach protocol's frames
//! ([`attach::Frame`]), which every client of an attached job speaks.

pub mod attach;
mod config;
mod id;
mod status;

pub use config::{BindMount, JobConfig, NetworkMode, PortMap, Resources, VolumeMount};
pub use flynn_http::{Proto, Timestamp};
pub use id::{valid_name, JobId, JobIdError};
pub use status::{ExitStatus, LogLine, Stream};
