//! `POST /jobs/{id}/attach`: an HTTP upgrade (`Upgrade: flynn-attach`) after which the
//! connection carries the attach protocol ([`runtime::attach`]) straight to the job's shim.

use std::os::fd::AsRawFd;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::error::HostError;
use crate::host::Host;
use flynn_http::server::{ApiError, Body};
use flynn_http::ErrorCode;
use host_api::JobId;
use host_api::JobState;

/// The protocol name in the `Upgrade` header.
pub const PROTOCOL: &str = host_api::ATTACH_PROTOCOL;

pub(super) async fn attach(
    host: &Host,
    id: &JobId,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let job = host.job(id)?;
    let upgrade = req
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(PROTOCOL));
    if !upgrade {
        return Err(ApiError::new(
            ErrorCode::UpgradeRequired,
            format!("attach needs the headers Connection: Upgrade and Upgrade: {PROTOCOL}"),
        ));
    }
    if job.state != JobState::Running {
        return Err(HostError::NotAttachable(id.clone()).into());
    }
    let shim = connect(host, id.as_str())
        .await
        .map_err(|_| ApiError::from(HostError::NotAttachable(id.clone())))?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                let mut shim = shim;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut shim).await;
            }
            Err(e) => tracing::debug!(error = %e, "attach upgrade failed"),
        }
    });
    Ok(flynn_http::server::switching_protocols(PROTOCOL, &[]))
}

/// Connects to the job's `attach.sock` through its run directory's descriptor: the full path may
/// be longer than a socket address holds.
async fn connect(host: &Host, id: &str) -> std::io::Result<UnixStream> {
    let dir = host
        .runtime()
        .job_dir(id)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string()))?;
    let dirfd = std::fs::File::open(dir.run_path())?;
    let path = format!(
        "/proc/self/fd/{}/{}",
        dirfd.as_raw_fd(),
        runtime::job::JobDir::ATTACH_SOCKET
    );
    let s = UnixStream::connect(path).await;
    drop(dirfd);
    s
}
