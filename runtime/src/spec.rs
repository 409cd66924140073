//! The spec the runtime starts a job from: its id and [`JobConfig`] (defined in
//! `runtime-api`, shared with the host API), plus what the host adds.

pub use runtime_api::{
    valid_name, BindMount, JobConfig, JobId, JobIdError, NetworkMode, PortMap, Proto, Resources,
    VolumeMount,
};
use serde::{Deserialize, Serialize};

/// Everything needed to start a job: its id, its configuration and what the host adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The job's id.
    pub id: JobId,
    /// What it runs and how.
    pub config: JobConfig,
    /// Cap on the job's log on disk in bytes (oldest lines rotated out); default 100 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_max_bytes: Option<u64>,
}

impl JobSpec {
    /// A spec running `args` from `image` with every other setting at its default.
    pub fn new(id: JobId, image: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            id,
            config: JobConfig::new(image, args),
            log_max_bytes: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_with_a_bad_id_does_not_parse() {
        let spec: Result<JobSpec, _> =
            serde_json::from_str(r#"{"id":"../x","config":{"image":"i"}}"#);
        assert!(spec.is_err());
    }
}
