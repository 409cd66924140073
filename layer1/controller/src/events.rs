//! The event log: every committed change, in commit order, filtered for readers.

use controller_api::{Event, ObjectType};

use crate::controller::Controller;
use crate::error::ControllerError;
use crate::store::Store;

/// Events read from the store per page while filtering.
const PAGE: usize = 1000;
/// Most events one list returns.
pub const MAX_COUNT: u64 = 1000;

/// Which events a reader wants.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only of this app (its id).
    pub app: Option<String>,
    /// Only of these types (all when empty).
    pub object_types: Vec<ObjectType>,
    /// Only of this object.
    pub object_id: Option<String>,
}

impl EventFilter {
    /// True when `e` passes.
    pub fn matches(&self, e: &Event) -> bool {
        self.app.as_ref().is_none_or(|a| e.app.as_ref() == Some(a))
            && (self.object_types.is_empty() || self.object_types.contains(&e.object_type))
            && self.object_id.as_ref().is_none_or(|o| *o == e.object_id)
    }
}

impl<S: Store> Controller<S> {
    /// The app id `app` (a name or id) stands for, for filters.
    pub async fn app_id(&self, app: &str) -> Result<String, ControllerError> {
        Ok(self.app(app).await?.id)
    }

    /// Events passing `filter` with ids in `(since, before)`: the newest `count`, newest
    /// first.
    pub async fn events(
        &self,
        filter: &EventFilter,
        since: u64,
        before: Option<u64>,
        count: u64,
    ) -> Result<Vec<Event>, ControllerError> {
        let count = count.min(MAX_COUNT) as usize;
        let mut out = std::collections::VecDeque::new();
        let mut after = since;
        loop {
            let page = self.store.events(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            let done = page.len() < PAGE;
            for e in page {
                if before.is_some_and(|b| e.id >= b) {
                    break;
                }
                if filter.matches(&e) {
                    out.push_back(e);
                    if out.len() > count {
                        out.pop_front();
                    }
                }
            }
            if done || before.is_some_and(|b| after + 1 >= b) {
                break;
            }
        }
        Ok(out.into_iter().rev().collect())
    }

    /// One event.
    pub async fn event(&self, id: u64) -> Result<Event, ControllerError> {
        self.store
            .event(id)
            .await?
            .ok_or(ControllerError::NoSuchEvent(id))
    }
}
