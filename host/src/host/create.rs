//! Creating a job: validation, the image's rootfs, the runtime's container and network,
//! the job's record as it moves to running (or failed), and its registration in discoverd.

use host_api::{CreateJob, Job, JobState, Timestamp};
use runtime::{JobId, JobSpec, NetworkMode, RuntimeError};
use tracing::Instrument;

use super::{lock, random_id, Host, ABANDONED};
use crate::error::HostError;

impl Host {
    /// Creates and starts a job; returns it running (or ended already, for very short jobs).
    ///
    /// The creation runs as a task of its own: a caller that goes away (a client that
    /// disconnects) does not interrupt it half-way, so the job is always recorded as running
    /// or failed.
    pub async fn create(&self, mut req: CreateJob) -> Result<Job, HostError> {
        let id = match req.id.clone() {
            Some(id) => id,
            None => random_id()
                .parse()
                .expect("16 hex digits are a valid job id"),
        };
        req.id = Some(id.clone());
        let host = self.clone();
        let span = tracing::info_span!("job", id = %id);
        tokio::spawn(async move { host.create_now(id, req).await }.instrument(span)).await?
    }

    async fn create_now(&self, id: JobId, req: CreateJob) -> Result<Job, HostError> {
        crate::validate::job_request(&req)?;
        if self.draining() {
            return Err(HostError::Draining(self.inner.id.clone()));
        }
        let store = self.inner.store.clone();
        let image = req.config.image.clone();
        tokio::task::spawn_blocking(move || store.find_image(&image)).await??;
        let spec = self.spec_for(&id, &req);
        let job = Job {
            id: id.clone(),
            state: JobState::Starting,
            config: req,
            created_at: Timestamp::now(),
            started_at: None,
            ended_at: None,
            pid: None,
            ip: None,
            ports: Vec::new(),
            exit: None,
            error: None,
            restarts: 0,
            stopped: false,
        };
        {
            let mut jobs = lock(&self.inner.jobs);
            if jobs.contains_key(&id) {
                return Err(HostError::JobExists(id));
            }
            jobs.insert(id.clone(), job.clone());
        }
        if let Err(e) = self.save(job.clone()) {
            lock(&self.inner.jobs).remove(&id);
            return Err(e);
        }
        self.start(id, spec, false).await
    }

    /// The runtime's spec of job `id` as `req` asks for it.
    pub(super) fn spec_for(&self, id: &JobId, req: &CreateJob) -> JobSpec {
        let mut spec = self.inner.config.job_spec(id.clone(), req);
        if spec.config.network == NetworkMode::Host {
            spec.config
                .env
                .entry(runtime::EXTERNAL_IP.into())
                .or_insert_with(|| self.inner.registrations.host_ip().to_string());
            let etcd = lock(&self.inner.cluster_etcd);
            if !etcd.is_empty() {
                spec.config
                    .env
                    .entry(flynn_etcd::CLUSTER_ENDPOINTS_ENV.into())
                    .or_insert_with(|| etcd.join(","));
            }
        }
        spec
    }

    /// Starts recorded job `id` (state `starting`) from `spec`: a new job, or with `restart`
    /// an ended one again; records it running, or failed (a refused new job leaves no
    /// record; a restart that fails is scheduled again under its policy).
    pub(super) async fn start(
        &self,
        id: JobId,
        spec: JobSpec,
        restart: bool,
    ) -> Result<Job, HostError> {
        let permit = self.inner.starts.acquire().await;
        let rt = self.inner.runtime.clone();
        let started = tokio::task::spawn_blocking(move || {
            let pid = match restart {
                true => rt.restart(&spec)?,
                false => rt.create(&spec)?,
            };
            let att = rt.attachment(spec.id.as_str()).ok().flatten();
            Ok::<_, RuntimeError>((pid, att))
        })
        .await?;
        drop(permit);
        match started {
            Ok((pid, att)) => {
                let mut job = self.job(&id)?;
                job.state = JobState::Running;
                job.started_at = Some(Timestamp::now());
                job.pid = (pid > 0).then_some(pid);
                if let Some(att) = att {
                    job.ip = Some(att.ip);
                    job.ports = att.ports;
                }
                let job = self.save(job)?;
                self.spawn_watch(id);
                Ok(job)
            }
            Err(e) if !restart && HostError::from_refused(&e) => {
                // The request itself was wrong (an unknown user, a missing program or
                // volume): refused like any bad request, with no record left behind.
                tokio::task::block_in_place(|| self.inner.db.delete_job(&id))?;
                if let Some(job) = lock(&self.inner.jobs).remove(&id) {
                    self.inner.events.job_deleted(&job);
                }
                Err(e.into())
            }
            Err(e) => {
                let mut job = self.job(&id)?;
                job.state = JobState::Failed;
                job.ended_at = Some(Timestamp::now());
                job.error = Some(e.to_string());
                let job = self.save(job)?;
                if restart {
                    self.after_end(&job);
                }
                Err(e.into())
            }
        }
    }

    pub(super) fn mark_running(&self, id: &JobId, pid: i32) -> Result<(), HostError> {
        let mut job = self.job(id)?;
        job.state = JobState::Running;
        job.pid = Some(pid);
        job.started_at.get_or_insert_with(Timestamp::now);
        if let Ok(Some(att)) = self.inner.runtime.attachment(id.as_str()) {
            job.ip = Some(att.ip);
            job.ports = att.ports;
        }
        self.save(job).map(|_| ())
    }

    /// Records how a job ended, once its shim is gone; gives back its network and mounts.
    /// Returns the job as it is (unchanged when it still runs or ended already).
    #[tracing::instrument(name = "job", skip(self), fields(id = %id))]
    pub(crate) async fn finalize(&self, id: &JobId) -> Result<Job, HostError> {
        let _t = self.inner.transitions.lock().await;
        let job = self.job(id)?;
        if job.state.is_final() {
            return Ok(job);
        }
        let rt = self.inner.runtime.clone();
        let rid = id.as_str().to_string();
        let ended = tokio::task::spawn_blocking(
            move || -> Option<(JobState, Option<runtime::ExitStatus>, Option<String>)> {
                match rt.state(&rid) {
                    Ok(runtime::JobState::Exited(s)) => {
                        if let Err(e) = rt.release(&rid) {
                            tracing::warn!(job = %rid, error = %e, "releasing an ended job");
                        }
                        Some((JobState::Exited, Some(s), None))
                    }
                    Ok(runtime::JobState::Failed) => {
                        let reason = rt.error(&rid).ok().flatten();
                        let _ = rt.release(&rid);
                        Some((JobState::Failed, None, reason))
                    }
                    Ok(_) if rt.shim_running(&rid).unwrap_or(false) => None,
                    Ok(_) => match rt.abandon(&rid, ABANDONED) {
                        Ok(()) => Some((JobState::Failed, None, Some(ABANDONED.into()))),
                        Err(e) => Some((
                            JobState::Failed,
                            None,
                            Some(format!("{ABANDONED}; cleanup failed: {e}")),
                        )),
                    },
                    Err(_) => {
                        let _ = rt.purge(&rid);
                        Some((
                            JobState::Failed,
                            None,
                            Some("the job's files are gone".into()),
                        ))
                    }
                }
            },
        )
        .await?;
        let Some((state, exit, error)) = ended else {
            return Ok(job);
        };
        let mut job = job;
        job.state = state;
        job.exit = exit;
        job.error = error;
        if let Some(reason) = lock(&self.inner.failing).remove(id) {
            job.state = JobState::Failed;
            job.error = Some(reason);
        }
        if lock(&self.inner.stopping).remove(id) {
            job.stopped = true;
        }
        job.ended_at = Some(Timestamp::now());
        self.save(job)
    }
}
