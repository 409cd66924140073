//! Where routes come from: a [`RouteSource`] yields updates (a full set, or one route set or
//! removed); the router applies each to its current routes and keeps the last good table
//! when one is refused or the source fails. [`FileSource`] serves a router running alone: a
//! JSON routes file, read again whenever it changes. [`ControllerSource`] follows the
//! controller: every route, then its route events as they are committed.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use router_api::{Route, RouteFile};

/// One change of the routes.
#[derive(Debug, Clone)]
pub enum Update {
    /// Every route (replaces all).
    Full(Vec<Route>),
    /// A route added or changed.
    Set(Route),
    /// A route removed, by id.
    Remove(String),
}

/// Why a source could not give the next update (the router keeps what it has and asks
/// again).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The routes file cannot be read.
    #[error("reading routes file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The routes file is not a routes file.
    #[error("routes file {path} is not valid: {source} (expected {{\"routes\": [{{\"type\": \"http\", \"id\": ..., \"domain\": ..., \"service\": ...}}]}})")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: serde_json::Error,
    },
    /// The controller cannot be reached or refused.
    #[error("controller routes: {0}")]
    Controller(#[source] controller_api::client::ClientError),
    /// The controller's event stream ended (it restarts, say); it is followed again.
    #[error("the controller's event stream ended; following it again")]
    StreamEnded,
}

/// A stream of route updates.
pub trait RouteSource: Send {
    /// The next update; waits until there is one.
    fn next(&mut self) -> impl Future<Output = Result<Update, SourceError>> + Send;
}

/// Routes from a JSON file (`{"routes": [...]}`), checked for changes every `interval`
/// (size, modification time and inode, so an editor's rename-into-place counts).
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    interval: Duration,
    seen: Option<Stamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        inode: m.ino(),
    })
}

impl FileSource {
    /// Routes from `path`, checked every second.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_interval(path, Duration::from_secs(1))
    }

    /// Routes from `path`, checked every `interval`.
    pub fn with_interval(path: impl Into<PathBuf>, interval: Duration) -> Self {
        Self {
            path: path.into(),
            interval,
            seen: None,
        }
    }

    fn read(&self) -> Result<Update, SourceError> {
        let text = std::fs::read(&self.path).map_err(|source| SourceError::Read {
            path: self.path.clone(),
            source,
        })?;
        let file: RouteFile =
            serde_json::from_slice(&text).map_err(|source| SourceError::Parse {
                path: self.path.clone(),
                source,
            })?;
        Ok(Update::Full(file.routes))
    }
}

impl RouteSource for FileSource {
    async fn next(&mut self) -> Result<Update, SourceError> {
        if self.seen.is_some() {
            loop {
                tokio::time::sleep(self.interval).await;
                if stamp(&self.path) != self.seen {
                    break;
                }
            }
        }
        self.seen = stamp(&self.path).or(Some(Stamp {
            len: 0,
            modified: None,
            inode: 0,
        }));
        self.read()
    }
}

/// Routes from the controller: on (re)connecting, its event stream of route changes is
/// opened first and then every route read (so no change falls between the two); then each
/// route event is an update. A set re-reads every route (events carry routes without their
/// certificate keys); a removal removes by id.
#[derive(Debug)]
pub struct ControllerSource {
    client: controller_api::client::Client,
    events: Option<flynn_http::client::Lines<controller_api::Event>>,
}

impl ControllerSource {
    /// Follows the controller `client` talks to.
    pub fn new(client: controller_api::client::Client) -> Self {
        Self {
            client,
            events: None,
        }
    }

    async fn all(&self) -> Result<Update, SourceError> {
        let routes = self
            .client
            .routes()
            .await
            .map_err(SourceError::Controller)?;
        Ok(Update::Full(routes))
    }
}

impl RouteSource for ControllerSource {
    async fn next(&mut self) -> Result<Update, SourceError> {
        use controller_api::client::EventQuery;
        use controller_api::ObjectType;
        let Some(events) = self.events.as_mut() else {
            let q = EventQuery {
                object_types: vec![ObjectType::Route, ObjectType::RouteDeletion],
                ..EventQuery::default()
            };
            let stream = self
                .client
                .follow_events(&q)
                .await
                .map_err(SourceError::Controller)?;
            let full = self.all().await?;
            self.events = Some(stream);
            return Ok(full);
        };
        let event = match events.next().await {
            Ok(Some(e)) => e,
            Ok(None) => {
                self.events = None;
                return Err(SourceError::StreamEnded);
            }
            Err(e) => {
                self.events = None;
                return Err(SourceError::Controller(e));
            }
        };
        match event.object_type {
            ObjectType::RouteDeletion => Ok(Update::Remove(event.object_id)),
            _ => self.all().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_then_waits_for_a_change_and_reports_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.json");
        std::fs::write(
            &path,
            r#"{"routes":[{"type":"tcp","id":"t","service":"db","port":3001}]}"#,
        )
        .unwrap();
        let mut s = FileSource::with_interval(&path, Duration::from_millis(10));
        match s.next().await.unwrap() {
            Update::Full(r) => assert_eq!(r.len(), 1),
            other => panic!("{other:?}"),
        }
        let tmp = dir.path().join("new");
        std::fs::write(&tmp, r#"{"routes": [}"#).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let err = s.next().await.unwrap_err();
        assert!(err.to_string().contains("is not valid"), "{err}");
        std::fs::write(&tmp, r#"{"routes":[]}"#).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(matches!(s.next().await.unwrap(), Update::Full(r) if r.is_empty()));
    }
}
