//! git's smart HTTP protocol, served by the real git:
//!
//! ```text
//! GET  /{app}.git/info/refs?service=git-receive-pack|git-upload-pack   ref advertisement
//! POST /{app}.git/git-receive-pack                                     a push
//! POST /{app}.git/git-upload-pack                                      a fetch or clone
//! ```
//!
//! Every request needs a controller key (Basic password, as git's credential helpers send
//! it, or a bearer token; 401 with `WWW-Authenticate: Basic` without one) and an app the
//! controller knows (404 otherwise). Request bodies stream into `git SERVICE --stateless-rpc`
//! and its output streams back, so a push's hook output reaches the user while it runs. A
//! client that goes away stops the git process group, and with it the hook and its build.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use flynn_http::server::keys::Keys;
use flynn_http::server::{stream_response, ApiError, Body, Params, Query, Router};
use flynn_http::ErrorCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::repo::Repos;
use crate::settings::Settings;

/// Largest gzip-encoded request body accepted (git compresses only fetch negotiations).
const MAX_GZIP_BODY: usize = 64 << 20;

/// The server's state.
#[derive(Debug)]
pub struct State {
    /// The settings (handed to hooks).
    pub settings: Settings,
    /// The keys pushes authenticate with.
    pub keys: Keys,
    /// The repositories.
    pub repos: Repos,
}

type Shared = Arc<State>;
type Answer = Result<Response<Body>, ApiError>;

/// The two services git's smart HTTP offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Receive,
    Upload,
}

impl Service {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "git-receive-pack" => Some(Self::Receive),
            "git-upload-pack" => Some(Self::Upload),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Receive => "git-receive-pack",
            Self::Upload => "git-upload-pack",
        }
    }

    /// The git subcommand.
    fn command(self) -> &'static str {
        match self {
            Self::Receive => "receive-pack",
            Self::Upload => "upload-pack",
        }
    }
}

/// The routes.
pub fn router() -> Router<Shared> {
    Router::new()
        .not_found_message("gitreceive serves git's smart HTTP protocol: /APP.git")
        .guard(|st: &Shared, req| st.keys.check(req))
        .route(Method::GET, "/{repo}/info/refs", info_refs)
        .route(Method::POST, "/{repo}/git-receive-pack", |st, req, p| {
            rpc(st, req, p, Service::Receive)
        })
        .route(Method::POST, "/{repo}/git-upload-pack", |st, req, p| {
            rpc(st, req, p, Service::Upload)
        })
}

/// One pkt-line: its length (4 hex digits, itself included), then the data.
fn pkt_line(data: &str) -> String {
    format!("{:04x}{data}", data.len() + 4)
}

/// The app a repository path names (`APP.git` or `APP`), as the controller has it.
async fn app(st: &State, repo: &str) -> Result<controller_api::App, ApiError> {
    let name = repo.strip_suffix(".git").unwrap_or(repo);
    let not_found = || {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no app named {name:?}: create it with `flynn create {name}`"),
        )
    };
    if name.parse::<controller_api::AppName>().is_err() {
        return Err(not_found());
    }
    match st.settings.controller().app(name).await {
        Ok(a) => Ok(a),
        Err(e) if e.status() == Some(404) => Err(not_found()),
        Err(e) => Err(ApiError::new(
            ErrorCode::Unavailable,
            format!("cannot ask the controller about {name}: {e}"),
        )),
    }
}

async fn repository(st: &State, app: &controller_api::App) -> Result<PathBuf, ApiError> {
    st.repos
        .open(&app.id)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

async fn info_refs(st: Shared, req: Request<Incoming>, p: Params) -> Answer {
    let q = Query::of(&req);
    let Some(service) = q.get("service").and_then(Service::parse) else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "only git's smart HTTP protocol is served: use git 1.6.6 or newer",
        ));
    };
    let app = app(&st, p.get("repo")).await?;
    let repo = repository(&st, &app).await?;
    let out = tokio::process::Command::new("git")
        .args([service.command(), "--stateless-rpc", "--advertise-refs"])
        .arg(&repo)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("running git: {e}")))?;
    if !out.status.success() {
        return Err(ApiError::new(
            ErrorCode::Internal,
            format!(
                "git {} failed: {}",
                service.command(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let mut body = pkt_line(&format!("# service={}\n", service.name())).into_bytes();
    body.extend_from_slice(b"0000");
    body.extend_from_slice(&out.stdout);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(
            "content-type",
            format!("application/x-{}-advertisement", service.name()),
        )
        .header("cache-control", "no-cache")
        .body(http_body_util::Full::new(Bytes::from(body)).boxed())
        .expect("valid response"))
}

/// Stops a process group (the git command, its hook and the hook's build) when dropped
/// before it was disarmed.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            tracing::info!(pgid, "client went away: stopping its git process group");
            let group = nix::unistd::Pid::from_raw(pgid);
            if let Err(e) = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM) {
                tracing::warn!(pgid, error = %e, "stopping a git process group");
            }
        }
    }
}

async fn rpc(st: Shared, req: Request<Incoming>, p: Params, service: Service) -> Answer {
    let expected = format!("application/x-{}-request", service.name());
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != expected {
        return Err(ApiError::with_status(
            415,
            ErrorCode::BadRequest,
            format!("expected Content-Type: {expected}"),
        ));
    }
    let gzip = req
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"));
    let app = app(&st, p.get("repo")).await?;
    let repo = repository(&st, &app).await?;
    let mut cmd = tokio::process::Command::new("git");
    cmd.args([service.command(), "--stateless-rpc"])
        .arg(&repo)
        .envs(st.settings.env())
        .env("FLYNN_APP", app.name.as_str())
        .env("FLYNN_APP_ID", &app.id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("running git: {e}")))?;
    let mut guard = GroupGuard(child.id().map(|p| p as i32));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let body = req.into_body();
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let feed = async move {
            let ok = feed_body(body, &mut stdin, gzip).await;
            drop(stdin);
            ok
        };
        let relay = async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdout.read(&mut buf).await {
                    Ok(0) => return true,
                    Ok(n) => {
                        if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            // The client is gone.
                            return false;
                        }
                    }
                    Err(_) => return false,
                }
            }
        };
        let (fed, relayed) = tokio::join!(feed, relay);
        if fed && relayed {
            let _ = child.wait().await;
            guard.disarm();
        }
        // Otherwise the guard stops the group as it drops here.
    });
    Ok(stream_response(
        &format!("application/x-{}-result", service.name()),
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ))
}

/// Copies the request body into git's stdin (gunzipped when it came compressed); false when
/// the client broke off or the body is not valid gzip.
async fn feed_body(mut body: Incoming, stdin: &mut tokio::process::ChildStdin, gzip: bool) -> bool {
    if gzip {
        let Ok(collected) = http_body_util::Limited::new(body, MAX_GZIP_BODY)
            .collect()
            .await
        else {
            return false;
        };
        let raw = collected.to_bytes();
        let decoded = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
                .map(|_| out)
        })
        .await;
        return match decoded {
            Ok(Ok(data)) => stdin.write_all(&data).await.is_ok(),
            _ => false,
        };
    }
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return false };
        if let Ok(data) = frame.into_data() {
            if stdin.write_all(&data).await.is_err() {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkt_lines_count_their_own_length() {
        assert_eq!(
            pkt_line("# service=git-receive-pack\n"),
            "001f# service=git-receive-pack\n"
        );
        assert_eq!(Service::parse("git-upload-pack"), Some(Service::Upload));
        assert_eq!(Service::parse("git-annex"), None);
    }
}
