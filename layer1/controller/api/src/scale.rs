//! Scale requests: `PUT /apps/{app}/scale/{release}` changes the counts (and tags) of some
//! process types of a release's formation and is `pending` until the scheduler's job reports
//! show exactly those counts up, then `complete`; a newer request cancels a pending one.

use std::collections::BTreeMap;

use flynn_http::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ProcessTypeName;

flynn_http::wire_enum! {
    /// Where a scale request is.
    pub enum ScaleRequestState("scale request state") {
        /// The formation is set; not every job is up (or down) yet.
        Pending = "pending",
        /// A newer request of the app replaced it.
        Cancelled = "cancelled",
        /// The app's jobs match it.
        Complete = "complete",
    }
}

/// A scale request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleRequest {
    /// Its id.
    pub id: String,
    /// The app id.
    pub app: String,
    /// The release whose formation it changes.
    pub release: String,
    /// Its state.
    pub state: ScaleRequestState,
    /// The formation's counts before.
    pub old_processes: BTreeMap<ProcessTypeName, u32>,
    /// The formation's counts after (every type, changed or not).
    pub new_processes: BTreeMap<ProcessTypeName, u32>,
    /// The formation's tags before.
    pub old_tags: BTreeMap<ProcessTypeName, BTreeMap<String, String>>,
    /// The formation's tags after.
    pub new_tags: BTreeMap<ProcessTypeName, BTreeMap<String, String>>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// `PUT /apps/{app}/scale/{release}`: only the types named change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewScaleRequest {
    /// New counts of these process types.
    #[serde(default)]
    pub processes: BTreeMap<ProcessTypeName, u32>,
    /// New host tags of these process types.
    #[serde(default)]
    pub tags: BTreeMap<ProcessTypeName, BTreeMap<String, String>>,
}
