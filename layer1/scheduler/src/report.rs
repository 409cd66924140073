//! Reporting jobs to the controller: every state change of every job the scheduler runs is
//! sent, in order, as `PUT /apps/{app}/jobs/{id}`, retried while the controller is away
//! (up to a minute, as Flynn's scheduler did), so `GET /apps/{app}/jobs` and job events show
//! what runs where.

use std::time::{Duration, Instant};

use controller_api::client::Client;
use controller_api::PutJob;
use tokio::sync::mpsc;

/// One report: the app id, the job id, what it is now.
pub type Report = (String, String, PutJob);

/// How long one report is retried.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// Sends reports in the order they come until the sender is gone.
pub async fn run(client: Client, mut rx: mpsc::UnboundedReceiver<Report>) {
    while let Some((app, id, put)) = rx.recv().await {
        let started = Instant::now();
        loop {
            match client.put_job(&app, &id, &put).await {
                Ok(_) => break,
                // The app is gone: its jobs are being stopped, nothing to record.
                Err(e) if e.code() == Some(controller_api::client::ErrorCode::NoSuchApp) => break,
                Err(e) if started.elapsed() < RETRY_FOR => {
                    tracing::debug!(job = %id, error = %e, "reporting a job; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "could not report a job to the controller");
                    break;
                }
            }
        }
    }
}
