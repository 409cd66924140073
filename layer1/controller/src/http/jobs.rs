//! `POST /apps/{app}/jobs`: a one-off job. With `Upgrade: flynn-attach` the answer is `101`
//! and the connection carries the host's attach protocol for the job (stdin, stdout, stderr,
//! resize, and the exit last); the job id is in the `Flynn-Job-Id` header. A job that ended
//! before the attach was made (`echo hi`) still gives its client its output (from its log)
//! and its exit.

use controller_api::NewJob;
use flynn_http::server::{json, read_json, switching_protocols, ApiError, Body};
use host_api::attach::Frame;
use host_api::client::Client as HostClient;
use host_api::{JobId, LogOptions, Stream, ATTACH_PROTOCOL};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{Answer, Shared};
use crate::store::Store;

/// The `101` header naming the job an attached client runs.
pub const JOB_ID_HEADER: &str = "flynn-job-id";

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

/// Sends an ended job's log as output frames, then its exit.
async fn replay(host: &HostClient, id: &JobId, out: &mut (impl AsyncRead + AsyncWrite + Unpin)) {
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
    let exit = host.job(id).await.ok().and_then(|j| j.exit);
    let exit = exit.unwrap_or(host_api::ExitStatus {
        code: None,
        signal: None,
        oom_killed: false,
    });
    let _ = out.write_all(&Frame::Exit(exit).encode()).await;
    let _ = out.shutdown().await;
}

/// `Response<Body>` of the kill.
pub(super) fn killed(job: &controller_api::Job) -> Response<Body> {
    json(StatusCode::OK, job)
}
