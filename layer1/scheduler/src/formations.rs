//! Following the controller's formations: every active one, then formation events as the
//! controller commits them, each resolved to its release, image and app name (releases are
//! immutable, so each is read once).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use controller_api::client::{Client, ClientError, EventQuery};
use controller_api::{Formation, ObjectType, Release};
use flynn_http::Timestamp;
use tokio::sync::mpsc;

use crate::error::FollowError;
use crate::scheduler::Input;

/// A formation with what its jobs need.
#[derive(Debug, Clone)]
pub struct Active {
    /// The app id.
    pub app: String,
    /// The app name.
    pub app_name: String,
    /// The release.
    pub release: Release,
    /// The image its jobs run.
    pub image: String,
    /// Jobs per process type.
    pub processes: BTreeMap<String, u32>,
    /// Host tags per process type.
    pub tags: BTreeMap<String, BTreeMap<String, String>>,
    /// When the formation last changed (an older event never overrides a newer state).
    pub updated_at: Timestamp,
}

#[derive(Default)]
struct Cache {
    releases: HashMap<String, (Release, String)>,
    apps: HashMap<String, String>,
}

impl Cache {
    async fn resolve(&mut self, c: &Client, f: Formation) -> Result<Active, ClientError> {
        if !self.releases.contains_key(&f.release) {
            let release = c.release(&f.release).await?;
            let artifact = match release.artifacts.first() {
                Some(a) => c.artifact(a).await?.uri,
                None => String::new(),
            };
            self.releases.insert(f.release.clone(), (release, artifact));
        }
        if !self.apps.contains_key(&f.app) {
            let app = c.app(&f.app).await?;
            self.apps.insert(f.app.clone(), app.name.to_string());
        }
        let (release, image) = self.releases[&f.release].clone();
        Ok(Active {
            app: f.app.clone(),
            app_name: self.apps[&f.app].clone(),
            release,
            image,
            processes: f
                .processes
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            tags: f
                .tags
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            updated_at: f.updated_at,
        })
    }
}

/// Follows the controller's formations until the receiver goes away; every break in the
/// event stream is followed by a full re-read.
pub async fn follow(client: Client, tx: mpsc::Sender<Input>) {
    let mut cache = Cache::default();
    loop {
        match follow_once(&client, &mut cache, &tx).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "following the controller's formations; again in 1 s")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn follow_once(
    client: &Client,
    cache: &mut Cache,
    tx: &mpsc::Sender<Input>,
) -> Result<(), FollowError> {
    let q = EventQuery {
        object_types: vec![ObjectType::Formation],
        ..EventQuery::default()
    };
    let mut events = client
        .follow_events(&q)
        .await
        .map_err(FollowError::Controller)?;
    let mut all = Vec::new();
    for f in client
        .all_formations(true)
        .await
        .map_err(FollowError::Controller)?
    {
        all.push(
            cache
                .resolve(client, f)
                .await
                .map_err(FollowError::Controller)?,
        );
    }
    if tx.send(Input::Formations(all)).await.is_err() {
        return Ok(());
    }
    while let Some(ev) = events.next().await.map_err(FollowError::Controller)? {
        let f: Formation = match flynn_http::json::from_value(ev.data) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(event = ev.id, error = %e, "a formation event that is not a formation");
                continue;
            }
        };
        let input = if f.processes.values().all(|n| *n == 0) {
            Input::FormationGone {
                app: f.app,
                release: f.release,
            }
        } else {
            Input::Formation(Box::new(
                cache
                    .resolve(client, f)
                    .await
                    .map_err(FollowError::Controller)?,
            ))
        };
        if tx.send(input).await.is_err() {
            return Ok(());
        }
    }
    Err(FollowError::StreamEnded("controller"))
}
