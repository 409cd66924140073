//! Images on the host: pulls with a progress stream, listing, deletion of unused images.

use pinkerton::pull::{PullEvent, PullOptions};
use pinkerton::reference::Reference;
use pinkerton::registry::RegistryOptions;
use pinkerton::store::ImageRecord;
use tokio::sync::mpsc;

use crate::error::HostError;
use crate::host::{Host, REGISTRY_AUTH_FILE};
use host_api::{ErrorBody, ErrorCode, Image, ImageAction, PullMessage, Timestamp};

impl Host {
    /// Checks a reference before a pull starts.
    pub fn parse_reference(image: &str) -> Result<Reference, HostError> {
        image
            .parse()
            .map_err(|e| HostError::BadRequest(format!("image reference {image:?}: {e}")))
    }

    /// Pulls `reference`, sending progress and then `Pulled` or `Error` into `tx`.
    pub async fn pull(&self, reference: Reference, tx: mpsc::Sender<PullMessage>) {
        let config = &self.inner.config;
        // A registry on this host's job gateway (the cluster registry that bootstrap runs as a
        // job) is reached over plain HTTP, as a loopback one is: its traffic never leaves
        // the machine.
        let mut insecure = config.insecure_registries.clone();
        insecure.push(self.runtime().network().gateway().to_string());
        // So is the cluster registry on another host of the cluster (read at each pull, as
        // join writes it while the daemon runs).
        match self.cluster() {
            Ok(Some(c)) => insecure.push(c.registry),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the cluster file; pulls from the cluster registry need TLS")
            }
        }
        // Credentials: the operator's file, else the one bootstrap writes (read at each pull,
        // so a cluster bootstrapped after the daemon started needs no restart), else the
        // Docker default.
        let written = config.state.join(REGISTRY_AUTH_FILE);
        let docker_config = config
            .registry_auth
            .clone()
            .or_else(|| written.exists().then_some(written));
        let opts = PullOptions {
            registry: RegistryOptions {
                insecure,
                docker_config,
                ..Default::default()
            },
            ..Default::default()
        };
        let progress_tx = tx.clone();
        let progress = std::sync::Arc::new(move |e: PullEvent| {
            let msg = crate::pull_progress::to_message(e);
            // Progress is dropped rather than stalling the pull when the client reads slowly.
            let _ = progress_tx.try_send(msg);
        });
        let result = pinkerton::pull::pull(&self.inner.store, &reference, &opts, progress).await;
        let last = match result {
            Ok(rec) => {
                let image = image_of(&rec);
                self.inner.events.image(image.clone(), ImageAction::Pulled);
                PullMessage::Pulled { image }
            }
            Err(e) => PullMessage::Error {
                error: ErrorBody::new(ErrorCode::PullFailed, flynn_http::error::message_chain(&e)),
            },
        };
        let _ = tx.send(last).await;
    }

    /// The images in the store.
    pub async fn images(&self) -> Result<Vec<Image>, HostError> {
        let store = self.inner.store.clone();
        let recs = tokio::task::spawn_blocking(move || store.images()).await??;
        Ok(recs.iter().map(image_of).collect())
    }

    /// Deletes the images `query` names (name, id or id prefix) unless a job that is not
    /// removed uses them; returns them.
    pub async fn delete_image(&self, query: &str) -> Result<Vec<Image>, HostError> {
        let store = self.inner.store.clone();
        let q = query.to_string();
        let target = tokio::task::spawn_blocking(move || store.find_image(&q)).await??;
        for job in self.jobs() {
            let store = self.inner.store.clone();
            let name = job.config.config.image.clone();
            let used = tokio::task::spawn_blocking(move || store.find_image(&name)).await?;
            if used.is_ok_and(|r| r.id == target.id) {
                return Err(HostError::ImageInUse {
                    image: query.into(),
                    job: job.id.to_string(),
                });
            }
        }
        let store = self.inner.store.clone();
        let q = query.to_string();
        let (removed, _) = tokio::task::spawn_blocking(move || store.remove_image(&q)).await??;
        let removed: Vec<Image> = removed.iter().map(image_of).collect();
        for i in &removed {
            self.inner.events.image(i.clone(), ImageAction::Deleted);
        }
        Ok(removed)
    }
}

/// The API's view of a stored image.
pub(crate) fn image_of(r: &ImageRecord) -> Image {
    Image {
        name: r.name.clone(),
        id: r.id.to_string(),
        digest: r.manifest.as_ref().map(|d| d.to_string()),
        size: r.size,
        created: Timestamp::from_unix_seconds(r.created as i64),
    }
}
