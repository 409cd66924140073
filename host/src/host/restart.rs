//! Restart policies (`CreateJob::restart`): a job that ends is started again under the same
//! id and request, its log kept, after a delay that doubles with each short run. A stop or
//! delete through the API marks the job `stopped` first, and a stopped job stays ended.

use std::time::Duration;

use host_api::{Job, JobState, RestartPolicy};
use runtime::JobId;
use tracing::Instrument;

use super::{lock, Host};
use crate::error::HostError;

/// The delay before the first restart after a short run.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest delay between restarts.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// The delay before a restart after `short` runs in a row shorter than
/// [`RestartPolicy::STEADY`] (0: the last run was steady).
fn delay(short: u32) -> Duration {
    let doubled = FIRST_DELAY.saturating_mul(1u32 << short.saturating_sub(1).min(16));
    doubled.min(MAX_DELAY)
}

impl Host {
    /// Schedules the restart of `job`, which ended, when its policy asks for one; a restart
    /// already scheduled is not scheduled twice.
    pub(super) fn after_end(&self, job: &Job) {
        if !job.config.restart.restarts(job) {
            lock(&self.inner.short_runs).remove(&job.id);
            return;
        }
        if !lock(&self.inner.pending_restarts).insert(job.id.clone()) {
            return;
        }
        let ran = match (&job.started_at, &job.ended_at) {
            (Some(s), Some(e)) => (e.as_datetime() - s.as_datetime())
                .to_std()
                .unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let short = {
            let mut runs = lock(&self.inner.short_runs);
            let n = runs.entry(job.id.clone()).or_insert(0);
            *n = if ran >= RestartPolicy::STEADY {
                0
            } else {
                *n + 1
            };
            *n
        };
        let wait = delay(short);
        tracing::info!(
            job = %job.id,
            policy = job.config.restart.as_str(),
            state = %job.state,
            restarts = job.restarts,
            delay_ms = wait.as_millis() as u64,
            "the job ended; starting it again under its restart policy"
        );
        let host = self.clone();
        let id = job.id.clone();
        let span = tracing::info_span!("job", id = %id);
        tokio::spawn(
            async move {
                tokio::time::sleep(wait).await;
                lock(&host.inner.pending_restarts).remove(&id);
                if let Err(e) = host.restart(&id).await {
                    tracing::error!(job = %id, error = %e, "restarting a job");
                }
            }
            .instrument(span),
        );
    }

    /// Starts ended job `id` again, unless it was deleted, stopped or started meanwhile.
    async fn restart(&self, id: &JobId) -> Result<(), HostError> {
        let spec = {
            // Under the transitions lock: a stop or delete that comes later waits for the
            // record to say `starting` and handles the job from there.
            let _t = self.inner.transitions.lock().await;
            let Ok(mut job) = self.job(id) else {
                return Ok(());
            };
            if !job.config.restart.restarts(&job) || lock(&self.inner.stopping).contains(id) {
                return Ok(());
            }
            let spec = self.spec_for(id, &job.config);
            job.state = JobState::Starting;
            job.restarts += 1;
            (job.started_at, job.ended_at, job.pid, job.ip) = (None, None, None, None);
            (job.exit, job.error) = (None, None);
            job.ports.clear();
            self.save(job)?;
            spec
        };
        self.start(id.clone(), spec, true).await.map(|_| ())
    }

    /// Marks job `id` as being stopped through the API, so that its end is not restarted;
    /// returns once no restart of it is half-way through its record change.
    pub(super) async fn stopping(&self, id: &JobId) {
        lock(&self.inner.stopping).insert(id.clone());
        drop(self.inner.transitions.lock().await);
    }

    /// Marks ended job `id` stopped (its pending restart, if any, is dropped).
    pub(super) async fn stopped(&self, id: &JobId) -> Result<Job, HostError> {
        let _t = self.inner.transitions.lock().await;
        lock(&self.inner.stopping).remove(id);
        let mut job = self.job(id)?;
        if job.state.is_final() && !job.stopped && !job.config.restart.is_no() {
            job.stopped = true;
            return self.save(job);
        }
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_with_short_runs_up_to_thirty_seconds() {
        let ms = |n| delay(n).as_millis();
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(3), ms(4)],
            [100, 100, 200, 400, 800]
        );
        assert_eq!(ms(9), 25_600);
        assert_eq!(ms(10), 30_000);
        assert_eq!(ms(u32::MAX), 30_000);
    }
}
