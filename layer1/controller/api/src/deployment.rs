//! Deployments: replacing an app's running release with a new one, by the app's strategy.
//! The controller records them (one unfinished per app); the scheduler's leader carries
//! them out and reports how they end.

use std::collections::BTreeMap;

use flynn_http::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{ProcessTypeName, Strategy};

flynn_http::wire_enum! {
    /// Where a deployment is.
    pub enum DeploymentStatus("deployment status") {
        /// Recorded; no scheduler has taken it yet.
        Pending = "pending",
        /// Being carried out.
        Running = "running",
        /// Done: the new release runs and is the app's current release.
        Complete = "complete",
        /// Given up and rolled back; `error` says why.
        Failed = "failed",
    }
}

impl DeploymentStatus {
    /// True once it ended (complete or failed).
    pub fn is_final(self) -> bool {
        matches!(self, DeploymentStatus::Complete | DeploymentStatus::Failed)
    }
}

/// A deployment of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Its id.
    pub id: String,
    /// The app id.
    pub app: String,
    /// The release that ran before (none for an app's first release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_release: Option<String>,
    /// The release deployed.
    pub new_release: String,
    /// How old jobs are replaced.
    pub strategy: Strategy,
    /// Where it is.
    pub status: DeploymentStatus,
    /// The job counts the new release gets (the old formation's).
    #[serde(default)]
    pub processes: BTreeMap<ProcessTypeName, u32>,
    /// The host tags the new release gets.
    #[serde(default)]
    pub tags: BTreeMap<ProcessTypeName, BTreeMap<String, String>>,
    /// Seconds each step may take before the deployment fails.
    pub deploy_timeout: u32,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
}

/// `POST /apps/{app}/deploy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    /// The release to deploy.
    pub release: String,
}

/// `PUT /apps/{app}/deployments/{id}`: the scheduler's report of progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentUpdate {
    /// The new status: `running`, `complete` or `failed`.
    pub status: DeploymentStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
