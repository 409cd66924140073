//! The image configuration, parsed into typed defaults for jobs.

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::platform::Platform;

/// An image config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The JSON does not parse as an image config.
    #[error("malformed image config: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A diff_id is not a sha256 digest.
    #[error("image config has a diff_id that is not a sha256 digest: {0:?}")]
    DiffId(String),
    /// The config lacks what an operation needs.
    #[error("unusable image config: {0}")]
    Invalid(String),
}

/// What a job started from the image gets unless its spec says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDefaults {
    /// Entrypoint (argv prefix).
    pub entrypoint: Vec<String>,
    /// Default arguments (or the whole argv when there is no entrypoint).
    pub cmd: Vec<String>,
    /// `KEY=VALUE` environment.
    pub env: Vec<String>,
    /// Working directory, if set.
    pub working_dir: Option<String>,
    /// User (`name`, `uid`, `name:group`, `uid:gid`), if set.
    pub user: Option<String>,
    /// Exposed ports, e.g. `8080/tcp`.
    pub exposed_ports: Vec<String>,
    /// Volume mount points.
    pub volumes: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Signal that stops the job, e.g. `SIGQUIT`.
    pub stop_signal: Option<String>,
}

/// A parsed image config.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    /// Uncompressed digests of the layers, base first.
    pub diff_ids: Vec<Digest>,
    /// The platform the image is built for.
    pub platform: Platform,
    /// Defaults for jobs.
    pub defaults: ImageDefaults,
}

impl ImageConfig {
    /// Parses the config JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let c: ImageConfiguration = serde_json::from_slice(bytes)?;
        let diff_ids = c
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| d.parse().map_err(|_| ConfigError::DiffId(d.clone())))
            .collect::<Result<_, _>>()?;
        let platform = Platform {
            os: c.os().to_string(),
            architecture: c.architecture().to_string(),
            variant: c.variant().clone(),
        };
        let defaults = match c.config() {
            None => ImageDefaults::default(),
            Some(cfg) => {
                let mut ports = cfg.exposed_ports().clone().unwrap_or_default();
                ports.sort();
                let mut volumes = cfg.volumes().clone().unwrap_or_default();
                volumes.sort();
                ImageDefaults {
                    entrypoint: cfg.entrypoint().clone().unwrap_or_default(),
                    cmd: cfg.cmd().clone().unwrap_or_default(),
                    env: cfg.env().clone().unwrap_or_default(),
                    working_dir: cfg.working_dir().clone().filter(|w| !w.is_empty()),
                    user: cfg.user().clone().filter(|u| !u.is_empty()),
                    exposed_ports: ports,
                    volumes,
                    labels: cfg
                        .labels()
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                    stop_signal: cfg.stop_signal().clone(),
                }
            }
        };
        Ok(Self {
            diff_ids,
            platform,
            defaults,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_parses_into_defaults() {
        let json = br#"{"architecture":"amd64","os":"linux","config":{
            "Env":["PATH=/bin"],"Entrypoint":["/init"],"Cmd":["serve"],"WorkingDir":"/app",
            "User":"1000:1000","ExposedPorts":{"8080/tcp":{},"53/udp":{}},
            "Volumes":{"/data":{}},"Labels":{"a":"b"},"StopSignal":"SIGQUIT"},
            "container_config":{"Hostname":"x"},
            "rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#;
        let c = ImageConfig::parse(json).unwrap();
        assert_eq!(c.diff_ids.len(), 1);
        assert_eq!(c.platform.to_string(), "linux/amd64");
        let d = c.defaults;
        assert_eq!(d.entrypoint, ["/init"]);
        assert_eq!(d.exposed_ports, ["53/udp", "8080/tcp"]);
        assert_eq!(d.volumes, ["/data"]);
        assert_eq!(d.working_dir.as_deref(), Some("/app"));
        assert_eq!(d.stop_signal.as_deref(), Some("SIGQUIT"));
    }

    #[test]
    fn bad_diff_id_is_refused() {
        let json = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["md5:00"]}}"#;
        assert!(matches!(
            ImageConfig::parse(json),
            Err(ConfigError::DiffId(_))
        ));
    }
}
