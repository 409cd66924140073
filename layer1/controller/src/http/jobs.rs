//! `POST /apps/{app}/jobs`: a one-off job. With `Upgrade: flynn-attach` the answer is `101`
//! and the connection carries the host's attach protocol for the job (stdin, stdout, stderr,
//! resize, and the exit last); the job id is in the `Flynn-Job-Id` header. A job that ended
//! before the attach was made (`echo hi`) still gives its client its output (from its log)
//! and its exit.

use controller_api::{NewJob, JOB_ID_HEADER};
use flynn_http::server::{json, read_json, switching_protocols, ApiError};
use host_api::attach::Frame;
use host_api::client::Client as HostClient;
use host_api::{EventFilter, JobId, LogOptions, Stream, ATTACH_PROTOCOL};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{Answer, Shared};
use crate::store::Store;

fn wants_attach(req: &Request<Incoming>) -> bool {
    req.headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(ATTACH_PROTOCOL))
}

pub(super) async fn run<S: Store>(st: Shared<S>, mut req: Request<Incoming>, app: &str) -> Answer {
    let on_upgrade = wants_attach(&req).then(|| hyper::upgrade::on(&mut req));
    let new: NewJob = read_json(req).await?;
    let (job, host) = st
        .controller
        .run_job(app, new, on_upgrade.is_some())
        .await?;
    let Some(on_upgrade) = on_upgrade else {
        return Ok(json(StatusCode::CREATED, &job));
    };
    let id: JobId = job
        .id
        .parse()
        .map_err(|_| ApiError::new(flynn_http::ErrorCode::Internal, "job id"))?;
    // Attach before answering, so a job still running loses no output; one that already
    // ended is replayed from its log.
    let attached = host.attach(&id).await.ok();
    let header = id.to_string();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut client = TokioIo::new(upgraded);
        match attached {
            Some(mut job) => {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut job).await;
            }
            None => replay(&host, &id, &mut client).await,
        }
    });
    Ok(switching_protocols(
        ATTACH_PROTOCOL,
        &[(JOB_ID_HEADER, header.as_str())],
    ))
}

/// How long a job the host could not attach to may take to be recorded as ended (its process
/// is gone, its monitor has yet to say so).
const END_WAIT: Duration = Duration::from_secs(30);

/// The job once the host records it as ended: a job whose process has exited can still read
/// as running for a moment, so its exit is awaited through the host's events for it.
async fn ended(host: &HostClient, id: &JobId) -> Option<host_api::Job> {
    let filter = EventFilter {
        job: Some(id.clone()),
        kind: None,
    };
    // Subscribed before the look, so an end between the two is not missed.
    let mut events = host.events(&filter).await.ok()?;
    let job = host.job(id).await.ok()?;
    if job.state.is_final() {
        return Some(job);
    }
    tokio::time::timeout(END_WAIT, async {
        while let Ok(Some(e)) = events.next().await {
            if let Some(j) = e.job().filter(|j| j.state.is_final()) {
                return Some(j.clone());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// Sends an ended job's log as output frames, then its exit.
async fn replay(host: &HostClient, id: &JobId, out: &mut (impl AsyncRead + AsyncWrite + Unpin)) {
    let job = ended(host, id).await;
    if let Ok(mut lines) = host.logs(id, &LogOptions::default()).await {
        while let Ok(Some(l)) = lines.next().await {
            let mut data = l.line.into_bytes();
            if !l.partial {
                data.push(b'\n');
            }
            let frame = match l.stream {
                Stream::Stderr => Frame::Stderr(data),
                _ => Frame::Stdout(data),
            };
            if out.write_all(&frame.encode()).await.is_err() {
                return;
            }
        }
    }
    let exit = job.and_then(|j| j.exit).unwrap_or(host_api::ExitStatus {
        code: None,
        signal: None,
        oom_killed: false,
    });
    let _ = out.write_all(&Frame::Exit(exit).encode()).await;
    let _ = out.shutdown().await;
}
