//! Formation jobs as the scheduler sees them on hosts: the shared job spec
//! ([`controller_api::spec`]) and the formation key a job's labels carry.

use std::collections::BTreeMap;

pub use controller_api::spec::*;

use crate::plan::Key;

/// The formation key and restart count of a host job the scheduler started, from its labels.
pub fn key_of(labels: &BTreeMap<String, String>) -> Option<(Key, u32)> {
    let key = Key {
        app: labels.get(LABEL_APP)?.clone(),
        release: labels.get(LABEL_RELEASE)?.clone(),
        kind: labels.get(LABEL_TYPE)?.clone(),
    };
    let restarts = labels
        .get(LABEL_RESTARTS)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    Some((key, restarts))
}

/// The discoverd service jobs of `p` register under: its first port's service (registered
/// by the host), else the one the process registers itself.
pub fn service(p: &controller_api::ProcessType) -> Option<String> {
    p.ports
        .iter()
        .find_map(|port| port.service.as_ref().map(|s| s.name.to_string()))
        .or_else(|| p.service.as_ref().map(|s| s.to_string()))
}
