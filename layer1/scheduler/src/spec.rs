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
