//! One bootstrap run's steps: whether a layer-1 job runs, images built into the host's store,
//! images pushed to the cluster registry, volumes, starts, and waits that fail early
//! with the log of a job that ended; and the job requests layer-1 services run as.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use host_api::client::Client;
use host_api::{BindMount, CreateJob, ErrorCode, JobId, JobState, NetworkMode, VolumeMount};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::layer1::Layer1Options;
use super::BootstrapError;

/// One bootstrap run's context.
pub(super) struct Boot<'a> {
    pub(super) c: &'a Client,
    pub(super) opts: &'a Layer1Options,
    pub(super) progress: &'a (dyn Fn(&str) + Sync),
    pub(super) key: &'a str,
}

impl Boot<'_> {
    /// True when job `id` runs; a job of that id in any other state is removed.
    pub(super) async fn runs(&self, id: &str) -> Result<bool, BootstrapError> {
        let jid: JobId = id.parse().expect("a valid job id");
        match self.c.job(&jid).await {
            Ok(j) if j.state == JobState::Running => {
                (self.progress)(&format!("{id}: already runs"));
                Ok(true)
            }
            Ok(j) => {
                (self.progress)(&format!("{id}: job was {}, starting it again", j.state));
                self.c.delete_job(&jid, true).await?;
                Ok(false)
            }
            Err(e) if e.code() == Some(ErrorCode::NoSuchJob) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes image `flynn/NAME:latest` from its recipe into the host's store, unless the
    /// store's image of that name holds the recipe's current files (workspace binaries of
    /// the bin dir, extra files) on its current base (a Debian base as `flynn-images fetch`
    /// last made it): a host whose binaries were upgraded, or whose Debian bases were made
    /// again from a newer Debian release, gets new images.
    pub(super) async fn image(&self, recipe: &str) -> Result<(), BootstrapError> {
        let tag = image_tag(recipe);
        let store = super::open_store(&self.opts.state)?;
        let stored = store
            .images()
            .map_err(|e| BootstrapError::Store(store.root().to_path_buf(), e))?
            .into_iter()
            .find(|i| i.name == tag);
        if let Some(stored) = &stored {
            let (opts, name) = (self.opts.clone(), recipe.to_string());
            let (files, base) = tokio::task::spawn_blocking(move || {
                super::recipe_diff_ids(&opts.bin_dir, &opts.image_cache, &name)
            })
            .await??;
            // A recipe that adds no files of its own, or whose base is not cached, has
            // nothing to compare there.
            let is = |want: &Option<String>, got: Option<&pinkerton::digest::Digest>| {
                want.is_none() || *want == got.map(|d| d.to_string())
            };
            let why = match (
                is(&files, stored.layers.last()),
                is(&base, stored.layers.first()),
            ) {
                (true, true) => return Ok(()),
                (false, _) => "its files changed",
                (true, false) => "its Debian base was made again",
            };
            (self.progress)(&format!(
                "{recipe}: image {tag} in the store is out of date ({why}): rebuilding it"
            ));
        } else {
            (self.progress)(&format!("{recipe}: building image {tag}"));
        }
        let (opts, name) = (self.opts.clone(), recipe.to_string());
        let manifest = tokio::task::spawn_blocking(move || {
            super::build_into_store(&opts.state, &opts.bin_dir, &opts.image_cache, &name)
        })
        .await??;
        (self.progress)(&format!("{recipe}: built {manifest}"));
        Ok(())
    }

    /// Builds image `flynn/RECIPE` and pushes it to the cluster registry as
    /// `REGISTRY/flynn/RECIPE:latest` (blobs it has are skipped); returns the pinned reference
    /// (`REGISTRY/flynn/RECIPE@sha256:...`).
    pub(super) async fn push(
        &self,
        recipe: &str,
        registry: &str,
    ) -> Result<String, BootstrapError> {
        (self.progress)(&format!(
            "{recipe}: building the image for the cluster registry"
        ));
        let (opts, name) = (self.opts.clone(), recipe.to_string());
        let (out, _) = tokio::task::spawn_blocking(move || {
            super::build_layout(&opts.state, &opts.bin_dir, &opts.image_cache, &name)
        })
        .await??;
        let target: pinkerton::reference::Reference = format!("{registry}/flynn/{recipe}:latest")
            .parse()
            .expect("a valid reference");
        let push = pinkerton::push::PushOptions {
            registry: pinkerton::registry::RegistryOptions {
                insecure: vec![registry.to_string()],
                credentials: Some(pinkerton::registry::Credentials {
                    username: "flynn".into(),
                    password: self.key.to_string(),
                }),
                docker_config: None,
            },
            ..Default::default()
        };
        let report = pinkerton::push::push(&out, &target, &push, &|_| {})
            .await
            .map_err(|e| BootstrapError::Push(target.to_string(), Box::new(e)))?;
        (self.progress)(&format!("{recipe}: pushed {}", report.pinned));
        Ok(report.pinned.to_string())
    }

    /// Creates volume `name` unless it exists.
    pub(super) async fn volume(&self, name: &str) -> Result<(), BootstrapError> {
        match self.c.create_volume(name).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(ErrorCode::VolumeExists) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn start(&self, req: CreateJob) -> Result<(), BootstrapError> {
        let id = req.id.clone().expect("layer-1 jobs have ids");
        self.c.create_job(&req).await?;
        (self.progress)(&format!("{id}: started"));
        Ok(())
    }

    /// Waits until `ready` holds, at most the configured wait; fails at once, with the end
    /// of its log, when layer-1 job `job` ends meanwhile.
    pub(super) async fn until<F, Fut>(
        &self,
        what: &str,
        job: &str,
        mut ready: F,
    ) -> Result<(), BootstrapError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + self.opts.wait;
        let id: JobId = job.parse().expect("a valid job id");
        let restarts = self.c.job(&id).await?.restarts;
        while !ready().await {
            let j = self.c.job(&id).await?;
            // Ended, or ended and started again by the host under its restart policy.
            if j.state.is_final() || j.restarts > restarts {
                let state = match j.state.is_final() {
                    true => j.state.to_string(),
                    false => "ended (its host starts it again)".to_string(),
                };
                return Err(BootstrapError::JobEnded {
                    job: job.to_string(),
                    state,
                    error: j.error.unwrap_or_default(),
                    log: self.log_tail(&id).await,
                });
            }
            if Instant::now() > deadline {
                return Err(BootstrapError::NotReady {
                    what: what.to_string(),
                    wait: self.opts.wait,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (self.progress)(&format!("ok: {what}"));
        Ok(())
    }

    /// The last lines job `id` printed.
    async fn log_tail(&self, id: &JobId) -> String {
        let opts = host_api::LogOptions {
            tail: Some(20),
            ..Default::default()
        };
        let mut lines = Vec::new();
        if let Ok(mut logs) = self.c.logs(id, &opts).await {
            while let Ok(Some(l)) = logs.next().await {
                lines.push(l.line);
            }
        }
        lines.join("\n")
    }

    pub(super) fn discoverd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.opts.discoverd_port)
    }

    pub(super) fn discoverd(&self) -> discoverd_api::client::Client {
        discoverd_api::client::Client::new(self.discoverd_url().parse().expect("a valid URL"))
    }

    /// This host's API as it registered in discoverd (where other hosts and build jobs
    /// reach it), waiting a while for the registration the daemon makes once discoverd
    /// answers.
    pub(super) async fn registered(
        &self,
        d: &discoverd_api::client::Client,
        host_id: &str,
    ) -> Result<SocketAddr, BootstrapError> {
        let deadline = Instant::now() + self.opts.wait.min(Duration::from_secs(30));
        loop {
            let found = d
                .instances(host_api::HOST_SERVICE)
                .await
                .ok()
                .and_then(|all| all.into_iter().find(|i| i.id == host_id));
            if let Some(i) = found {
                return Ok(i.addr);
            }
            if Instant::now() > deadline {
                return Err(BootstrapError::NoHostApi);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Removes volume `name`; false when there was none.
pub(super) async fn remove_volume(c: &Client, name: &str) -> Result<bool, BootstrapError> {
    match c.delete_volume(name).await {
        Ok(()) => Ok(true),
        Err(e) if e.code() == Some(ErrorCode::NoSuchVolume) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The running job the scheduler placed on this host for `app`'s process type `process`.
pub(super) async fn scheduled(
    c: &Client,
    app: &str,
    process: &str,
) -> Result<Option<JobId>, BootstrapError> {
    use controller_api::spec::{LABEL_APP_NAME, LABEL_TYPE};
    let filter = host_api::JobFilter {
        state: Some(JobState::Running),
        metadata: vec![
            (LABEL_APP_NAME.into(), app.into()),
            (LABEL_TYPE.into(), process.into()),
        ],
        ..Default::default()
    };
    Ok(c.jobs(&filter).await?.into_iter().next().map(|j| j.id))
}

/// `flynn/NAME:latest`, as the store records it.
pub(super) fn image_tag(recipe: &str) -> String {
    let r: pinkerton::reference::Reference = format!("flynn/{recipe}:latest")
        .parse()
        .expect("a valid reference");
    r.to_string()
}

/// A host-network layer-1 job of image `flynn/ID:latest`, which its host starts again
/// whenever it ends (until it is stopped or deleted, as a hand-over to the scheduler does):
/// the platform's own services must not depend on the scheduler, which depends on them.
pub(super) fn job(id: &str, env: &[(&str, &str)]) -> CreateJob {
    let mut req = CreateJob::new(image_tag(id), Vec::new());
    req.id = Some(id.parse().expect("a valid job id"));
    req.restart = host_api::RestartPolicy::Always;
    req.config.network = NetworkMode::Host;
    req.config.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    req.metadata.insert("flynn.layer".into(), "1".into());
    req
}

pub(super) fn read_only(source: &Path, target: &str) -> BindMount {
    BindMount {
        source: source.display().to_string(),
        target: target.into(),
        readonly: true,
    }
}

pub(super) fn volume(name: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        target: "/data".into(),
        readonly: false,
    }
}

/// The status code of `GET path` with `Host: host` at `addr`, or `None` when nothing answers.
pub(super) async fn http_status(addr: SocketAddr, host: &str, path: &str) -> Option<u16> {
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            match s.read(&mut head[n..]).await.ok()? {
                0 => return None,
                m => n += m,
            }
        }
        let line = std::str::from_utf8(&head[..n]).ok()?;
        line.split(' ').nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}
