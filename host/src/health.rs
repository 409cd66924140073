//! The health check a job's service passes before the host registers it in discoverd: its
//! service port accepts a TCP connection, or (with an [`HttpCheck`]) answers a `GET` of the
//! check's path with a passing status. Nothing is needed inside the image.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use host_api::HttpCheck;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one attempt may take.
const ATTEMPT: Duration = Duration::from_secs(2);
/// Time between TCP attempts.
pub const TCP_EVERY: Duration = Duration::from_millis(50);
/// Time between HTTP attempts (each is a request the job serves and may log).
pub const HTTP_EVERY: Duration = Duration::from_millis(250);

/// One attempt of the check against `addr`.
pub async fn passes(addr: SocketAddr, http: Option<&HttpCheck>) -> bool {
    let Ok(Ok(stream)) = tokio::time::timeout(ATTEMPT, TcpStream::connect(addr)).await else {
        return false;
    };
    let Some(check) = http else {
        return true;
    };
    let get = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = hyper::Request::get(check.path.as_str())
            .header("host", addr.to_string())
            .header("user-agent", "flynn-host-health-check")
            .body(Empty::<Bytes>::new())
            .ok()?;
        let resp = sender.send_request(req).await.ok()?;
        Some(resp.status().as_u16())
    };
    match tokio::time::timeout(ATTEMPT, get).await {
        Ok(Some(status)) => check.passes(status),
        _ => false,
    }
}
