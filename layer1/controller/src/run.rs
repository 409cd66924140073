//! One-off jobs (`POST /apps/{app}/jobs`, what `flynn run` and builds use) and kills
//! (`DELETE /apps/{app}/jobs/{id}`). A one-off job runs a command of a release on a host
//! picked at random, under the init, with the release's env; the controller records it at
//! once and follows the job on its host until it ends, recording that too (the scheduler
//! reports its states as well, as it does for every job, but one may not be running).

use std::time::Duration;

use controller_api::spec::{self, OneOff};
use controller_api::{Job, JobState, NewJob, PutJob};
use host_api::client::Client as HostClient;
use host_api::JobId;

use crate::controller::Controller;
use crate::error::ControllerError;
use crate::store::Store;

/// How long a kill lets the job handle SIGTERM before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(10);

fn host_error(host: &str) -> impl Fn(flynn_http::client::ClientError) -> ControllerError + '_ {
    move |e| ControllerError::Host {
        host: host.to_string(),
        source: Box::new(e),
    }
}

impl<S: Store> Controller<S> {
    /// Starts a one-off job of `app` (its current release unless `new` names one); with
    /// `stdin`, its stdin stays open for a client that attaches. Returns the job as recorded
    /// and its host, for attaching.
    pub async fn run_job(
        &self,
        app: &str,
        new: NewJob,
        stdin: bool,
    ) -> Result<(Job, HostClient), ControllerError> {
        let a = self.app(app).await?;
        let release = match &new.release {
            Some(id) => self.release_of(&a, id).await?,
            None => self.app_release(&a.id).await?,
        };
        let Some(artifact) = release.artifacts.first() else {
            return Err(ControllerError::NotDeployable(release.id.clone()));
        };
        let image = self.artifact(artifact).await?.uri;
        let (host, client) = self.hosts()?.any().await?;
        let id = spec::job_id(&host);
        let one_off = OneOff {
            app_name: a.name.as_str(),
            release: &release,
            image: &image,
            job: &new,
            stdin,
        };
        let req = spec::one_off_job(one_off, &id);
        client
            .pull_complete(&image)
            .await
            .map_err(host_error(&host))?;
        let created = client.create_job(&req).await.map_err(host_error(&host))?;
        tracing::info!(job = %id, host = %host, app = %a.name, "one-off job started");
        let put = spec::report(&created, &release.id, "", &host, 0);
        let job = self.put_job(&a.id, id.as_str(), put).await?;
        let (me, follow) = (self.clone(), client.clone());
        let (app_id, release_id) = (a.id.clone(), release.id.clone());
        tokio::spawn(async move {
            me.follow_one_off(follow, app_id, release_id, host, id)
                .await;
        });
        Ok((job, client))
    }

    /// Waits for one-off job `id` to end on its host (its event stream), then records it
    /// down with its exit status or error.
    async fn follow_one_off(
        &self,
        client: HostClient,
        app_id: String,
        release_id: String,
        host: String,
        id: JobId,
    ) {
        let filter = host_api::EventFilter {
            job: Some(id.clone()),
            ..Default::default()
        };
        let ended = async {
            let mut events = client.events(&filter).await.ok()?;
            // It may have ended before the stream was opened.
            if let Ok(j) = client.job(&id).await {
                if j.state.is_final() {
                    return Some(j);
                }
            }
            while let Ok(Some(e)) = events.next().await {
                if let host_api::EventPayload::Job { job, .. } = e.payload {
                    if job.state.is_final() {
                        return Some(*job);
                    }
                }
            }
            None
        };
        let Some(job) = ended.await else {
            tracing::warn!(job = %id, host = %host, "lost a one-off job's event stream; its end is left to the scheduler's report");
            return;
        };
        let put = spec::report(&job, &release_id, "", &host, 0);
        if let Err(e) = self.put_job(&app_id, id.as_str(), put).await {
            tracing::warn!(job = %id, error = %e, "recording a one-off job's end");
        }
    }

    /// Stops job `id` of `app` on its host (SIGTERM, SIGKILL after [`KILL_GRACE`]) and
    /// records it down (a job whose host is no longer registered is recorded down as lost).
    /// A formation's job is replaced by the scheduler, as after a crash.
    pub async fn kill_job(&self, app: &str, id: &str) -> Result<Job, ControllerError> {
        let job = self.job(app, id).await?;
        if job.state == JobState::Down {
            return Ok(job);
        }
        let client = match self.hosts()?.get(&job.host_id).await {
            Ok(c) => c,
            // Its host is gone, and the job with it: recorded down.
            Err(ControllerError::HostGone(host)) => {
                let put = PutJob {
                    state: JobState::Down,
                    exit_status: None,
                    host_error: Some(format!("host {host} was lost")),
                    ..job.report()
                };
                return self.put_job(&job.app, id, put).await;
            }
            Err(e) => return Err(e),
        };
        let host_id: JobId = id
            .parse()
            .map_err(|_| ControllerError::Invalid(format!("job id {id:?} is not a host job id")))?;
        let stopped = client
            .stop(&host_id, KILL_GRACE)
            .await
            .map_err(host_error(&job.host_id))?;
        let put = spec::report(
            &stopped,
            &job.release,
            &job.kind,
            &job.host_id,
            job.restarts,
        );
        self.put_job(&job.app, id, put).await
    }
}
