//! Events: what the controller's event log records, in commit order (`/events`, SSE), and
//! the objects they are about.

use flynn_http::Timestamp;
use serde::{Deserialize, Serialize};

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectType {
    /// An app was created or updated (data: the app).
    App,
    /// An app was deleted (data: the app).
    AppDeletion,
    /// An app's current release changed (data: `{release, prev_release}`).
    AppRelease,
    /// An artifact was created.
    Artifact,
    /// A release was created.
    Release,
    /// A formation was set or removed (data: the formation; removal: counts empty).
    Formation,
    /// A route was set.
    Route,
    /// A route was removed.
    RouteDeletion,
    /// A job changed state (data: the job).
    Job,
    /// A deployment was made or changed status (data: the deployment).
    Deployment,
    /// A scale request was made or changed state (data: the request).
    ScaleRequest,
}

impl ObjectType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::App => "app",
            ObjectType::AppDeletion => "app_deletion",
            ObjectType::AppRelease => "app_release",
            ObjectType::Artifact => "artifact",
            ObjectType::Release => "release",
            ObjectType::Formation => "formation",
            ObjectType::Route => "route",
            ObjectType::RouteDeletion => "route_deletion",
            ObjectType::Job => "job",
            ObjectType::Deployment => "deployment",
            ObjectType::ScaleRequest => "scale_request",
        }
    }

    /// Every object type.
    pub const ALL: [ObjectType; 11] = [
        ObjectType::App,
        ObjectType::AppDeletion,
        ObjectType::AppRelease,
        ObjectType::Artifact,
        ObjectType::Release,
        ObjectType::Formation,
        ObjectType::Route,
        ObjectType::RouteDeletion,
        ObjectType::Job,
        ObjectType::Deployment,
        ObjectType::ScaleRequest,
    ];
}

impl std::str::FromStr for ObjectType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown object type {s:?}: use one of {}", names.join(", "))
            })
    }
}

/// A change, in the order the store committed it (ids only grow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Its id: 1, 2, 3, ... in commit order.
    pub id: u64,
    /// The app it concerns (its id), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// What it is about.
    pub object_type: ObjectType,
    /// The id of that object.
    pub object_id: String,
    /// The object (or what changed).
    pub data: serde_json::Value,
    /// When it was committed.
    pub created_at: Timestamp,
}

/// `PUT /apps/{app}/release` and the `app_release` event's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppReleaseChange {
    /// The new current release.
    pub release: String,
    /// The one before, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_release: Option<String>,
}
