//! Events: what the controller's event log records, in commit order (`/events`, SSE), and
//! the objects they are about.

use flynn_http::Timestamp;
use serde::{Deserialize, Serialize};

flynn_http::wire_enum! {
    /// What an event is about (a type a newer controller adds reads as `Unknown` in events).
    #[derive(Hash, PartialOrd, Ord)]
    pub enum ObjectType("object type") {
        /// An app was created or updated (data: the app).
        App = "app",
        /// An app was deleted (data: the app).
        AppDeletion = "app_deletion",
        /// An app's current release changed (data: `{release, prev_release}`).
        AppRelease = "app_release",
        /// An artifact was created.
        Artifact = "artifact",
        /// A release was created.
        Release = "release",
        /// A formation was set or removed (data: the formation; removal: counts empty).
        Formation = "formation",
        /// A route was set.
        Route = "route",
        /// A route was removed.
        RouteDeletion = "route_deletion",
        /// A job changed state (data: the job).
        Job = "job",
        /// A deployment was made or changed status (data: the deployment).
        Deployment = "deployment",
        /// A scale request was made or changed state (data: the request).
        ScaleRequest = "scale_request",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_about_a_type_a_newer_controller_adds_is_read_as_unknown() {
        let json = r#"{"id":7,"object_type":"volume","object_id":"v1","data":{},
            "created_at":"2026-12-07T10:00:00Z"}"#;
        assert!(serde_json::from_str::<Event>(json).is_err(), "strict");
        let e: Event = flynn_http::json::from_str(json).unwrap();
        assert_eq!((e.id, e.object_type), (7, ObjectType::Unknown));
        assert_eq!(
            "route_deletion".parse::<ObjectType>().unwrap(),
            ObjectType::RouteDeletion
        );
        assert!("volume"
            .parse::<ObjectType>()
            .unwrap_err()
            .starts_with("unknown object type \"volume\": use app, app_deletion,"));
    }
}
