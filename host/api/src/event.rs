//! `GET /events`: job state changes and image pulls and deletions, as server-sent events.

use flynn_http::Timestamp;
use runtime_api::JobId;
use serde::{Deserialize, Serialize};

use crate::image::Image;
use crate::job::Job;

/// One message of `GET /events` (server-sent events; `event:` is the kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Increasing number within one daemon run.
    pub seq: u64,
    /// When it happened.
    pub time: Timestamp,
    /// What happened, tagged by `kind`.
    #[serde(flatten)]
    pub payload: EventPayload,
}

impl Event {
    /// What the event is about.
    pub fn kind(&self) -> EventKind {
        match self.payload {
            EventPayload::Job { .. } => EventKind::Job,
            EventPayload::Image { .. } => EventKind::Image,
        }
    }

    /// The job, for job events.
    pub fn job(&self) -> Option<&Job> {
        match &self.payload {
            EventPayload::Job { job, .. } => Some(job),
            EventPayload::Image { .. } => None,
        }
    }
}

/// What an event says, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EventPayload {
    /// A job changed state (`action` absent), or its record was removed.
    Job {
        /// The job as it is now (as it was last, when deleted).
        job: Box<Job>,
        /// `deleted` when the record is gone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<JobAction>,
    },
    /// An image was pulled or deleted.
    Image {
        /// The image.
        image: Image,
        /// Which.
        action: ImageAction,
    },
}

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A job changed state.
    Job,
    /// An image was pulled or deleted.
    Image,
}

impl EventKind {
    /// The wire name, also the SSE `event:` field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Job => "job",
            EventKind::Image => "image",
        }
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "job" => Ok(EventKind::Job),
            "image" => Ok(EventKind::Image),
            _ => Err("use job or image".into()),
        }
    }
}

/// What happened to a job's record, beyond a state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobAction {
    /// The record was removed (deleted, or its start refused as a bad request).
    Deleted,
}

/// What happened to an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageAction {
    /// It was pulled (or imported).
    Pulled,
    /// It was deleted.
    Deleted,
}

/// Which events `GET /events` sends: `?job=ID`, `?kind=job|image`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events about this job.
    pub job: Option<JobId>,
    /// Only events of this kind.
    pub kind: Option<EventKind>,
}

impl EventFilter {
    /// True when `event` passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        self.kind.is_none_or(|k| k == event.kind())
            && self
                .job
                .as_ref()
                .is_none_or(|j| event.job().is_some_and(|x| &x.id == j))
    }

    /// The query string (without `?`).
    pub fn to_query(&self) -> String {
        let mut q = Vec::new();
        if let Some(j) = &self.job {
            q.push(format!("job={j}"));
        }
        if let Some(k) = self.kind {
            q.push(format!("kind={}", k.as_str()));
        }
        q.join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_events_are_tagged_by_kind() {
        let json = r#"{"seq":3,"time":"2026-12-01T10:00:00Z","kind":"image","image":{"name":"a","id":"sha256:x","size":1,"created":"2026-12-01T10:00:00Z"},"action":"pulled"}"#;
        let e: Event = serde_json::from_str(json).unwrap();
        assert_eq!(e.kind(), EventKind::Image);
        let back = serde_json::to_value(&e).unwrap();
        assert_eq!(back["kind"], "image");
        assert_eq!(back["action"], "pulled");
    }
}
