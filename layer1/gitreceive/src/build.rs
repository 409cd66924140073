//! The build job: `flynn-slugbuilder` in the build stack, run on the build host with the
//! app's cache volume, a memory limit and the app's env. The pushed tree goes to its stdin
//! over the attach protocol; its output lines come back as they are written, and its last
//! stdout line names the image it pushed.

use std::collections::BTreeMap;

use host_api::attach::Frame;
use host_api::{CreateJob, ErrorCode, JobId};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use flynn_http::service::Shutdown;

use crate::error::GitReceiveError;
use crate::settings::Settings;

/// The prefix of the build job's result line (`flynn-slugbuilder` writes it last).
const RESULT_PREFIX: &str = "SLUG_RESULT ";

/// How long a build job gets to stop after a cancelled push.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// What a build produced.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildResult {
    /// The image pushed, by digest (`REGISTRY/apps/APP@sha256:...`).
    pub image: String,
    /// The buildpacks that ran.
    #[serde(default)]
    pub buildpacks: Vec<String>,
    /// Process types to their commands.
    #[serde(default)]
    pub process_types: BTreeMap<String, String>,
}

/// One build.
#[derive(Debug, Clone)]
pub struct Build<'a> {
    /// The app's id (its cache volume and image repository are named after it).
    pub app_id: &'a str,
    /// The app's name.
    pub app_name: &'a str,
    /// The commit built.
    pub rev: &'a str,
    /// The app's env (its current release's), which buildpacks read from ENV_DIR.
    pub env: BTreeMap<String, String>,
    /// The memory limit in bytes: the app's `slugbuilder` process limit, else `BUILD_MEMORY`.
    pub memory: Option<u64>,
}

impl Build<'_> {
    /// The memory limit the build job gets.
    fn memory(&self, s: &Settings) -> u64 {
        self.memory.unwrap_or(s.build_memory)
    }
}

/// The host job that runs `build`.
fn job_request(s: &Settings, b: &Build<'_>) -> CreateJob {
    let short = &b.rev[..b.rev.len().min(12)];
    let mut args = vec![
        "flynn-slugbuilder".to_string(),
        "--image".into(),
        format!("{}/apps/{}:{short}", s.registry, b.app_id),
        "--stack-image".into(),
        format!("{}/{}", s.registry, s.stack_image),
        "--source-version".into(),
        b.rev.to_string(),
    ];
    if s.registry_insecure {
        args.extend(["--insecure-registry".into(), s.registry.clone()]);
    }
    let mut req = CreateJob::new(&s.build_image, args);
    req.config.env = b.env.clone();
    if let Some(c) = &s.registry_creds {
        req.config
            .env
            .insert("SLUGBUILDER_REGISTRY_CREDS".into(), c.clone());
    }
    req.config.stdin = true;
    req.config.resources.memory = Some(b.memory(s));
    req.config.volumes.push(host_api::VolumeMount {
        name: cache_volume(b.app_id),
        target: "/cache".into(),
        readonly: false,
    });
    req.metadata
        .insert("flynn-gitreceive-app".into(), b.app_name.to_string());
    req.metadata
        .insert("flynn-gitreceive-rev".into(), b.rev.into());
    req
}

/// The app's build cache volume on the build host.
pub fn cache_volume(app_id: &str) -> String {
    format!("build-cache-{app_id}")
}

/// Stops and removes a build job.
async fn remove(host: &host_api::client::Client, id: &JobId) {
    let _ = host.stop(id, STOP_GRACE).await;
    let _ = host.delete_job(id, true).await;
}

/// Runs `build` with `tree` (a tar of the pushed commit) on its stdin; every line it prints
/// goes to `line` as it comes. Returns what it built, or why it failed. When `cancel` fires
/// (the push was cancelled) the job is stopped and removed.
pub async fn run(
    s: &Settings,
    b: &Build<'_>,
    tree: impl AsyncRead + Unpin + Send + 'static,
    mut line: impl FnMut(&str),
    cancel: Shutdown,
) -> Result<BuildResult, GitReceiveError> {
    let host = s.host();
    // The cache volume may exist already; a real failure shows when the job is created.
    let _ = host.create_volume(&cache_volume(b.app_id)).await;
    let req = job_request(s, b);
    let job = match host.create_job(&req).await {
        Err(e) if e.code() == Some(ErrorCode::NoSuchImage) => {
            line(&format!("-----> Pulling the build stack {}", s.build_image));
            host.pull_complete(&s.build_image)
                .await
                .map_err(GitReceiveError::Host)?;
            host.create_job(&req).await
        }
        r => r,
    }
    .map_err(GitReceiveError::Host)?;
    let outcome = tokio::select! {
        r = follow(b.memory(s), &host, &job.id, tree, line) => r,
        _ = cancel.wait() => Err(GitReceiveError::BuildFailed(
            "the push was cancelled: build stopped".into(),
        )),
    };
    remove(&host, &job.id).await;
    outcome
}

/// Feeds `tree` to the build job `id` and reads its output until it exits.
async fn follow(
    memory: u64,
    host: &host_api::client::Client,
    id: &JobId,
    mut tree: impl AsyncRead + Unpin + Send + 'static,
    mut line: impl FnMut(&str),
) -> Result<BuildResult, GitReceiveError> {
    let io_err = |message: String| GitReceiveError::BuildIo {
        job: id.to_string(),
        message,
    };
    let io = host.attach(id).await.map_err(GitReceiveError::Host)?;
    let (mut rd, mut wr) = tokio::io::split(io);
    // The tree goes in while the output comes out: a build that prints before it has read
    // all its input must not stall the upload.
    let feed = tokio::spawn(async move {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = tree.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            wr.write_all(&Frame::Stdin(buf[..n].to_vec()).encode())
                .await?;
        }
        wr.write_all(&Frame::CloseStdin.encode()).await?;
        wr.flush().await?;
        // Kept open until the job ends: a closed write half would end the attach.
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    });
    let mut lines = Lines::default();
    let mut result = None;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let status = 'read: loop {
        while let Some((frame, used)) =
            Frame::parse(&buf).map_err(|e| io_err(format!("bad attach frame: {e}")))?
        {
            buf.drain(..used);
            match frame {
                Frame::Stdout(d) | Frame::Stderr(d) => {
                    for l in lines.push(&d) {
                        match l.strip_prefix(RESULT_PREFIX) {
                            Some(json) => result = serde_json::from_str(json).ok(),
                            None => line(&l),
                        }
                    }
                }
                Frame::Exit(status) => break 'read status,
                _ => {}
            }
        }
        let n = rd
            .read(&mut chunk)
            .await
            .map_err(|e| io_err(e.to_string()))?;
        if n == 0 {
            return Err(io_err("the connection ended before the job did".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    feed.abort();
    if let Some(l) = lines.rest() {
        line(&l);
    }
    match (status.code, result) {
        (Some(0), Some(r)) => Ok(r),
        // The kernel may have killed a process of the build rather than the builder.
        _ if status.oom_killed => Err(GitReceiveError::BuildFailed(format!(
            "the build ran out of memory (its limit is {} MiB): raise the app's slugbuilder \
             memory limit (flynn limit set slugbuilder memory=...)",
            memory >> 20
        ))),
        (Some(0), None) => Err(GitReceiveError::BuildFailed(
            "the build job ended without naming an image".into(),
        )),
        (Some(c), _) => Err(GitReceiveError::BuildFailed(format!(
            "the build failed (exit status {c})"
        ))),
        (None, _) => Err(GitReceiveError::BuildFailed(format!(
            "the build was killed by signal {}",
            status.signal.unwrap_or(0)
        ))),
    }
}

/// Splits output into lines (a lone carriage return ends a line too: progress bars).
#[derive(Debug, Default)]
struct Lines {
    partial: Vec<u8>,
    after_cr: bool,
}

impl Lines {
    fn push(&mut self, data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in data {
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                // The second half of a CRLF.
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    out.push(String::from_utf8_lossy(&self.partial).into_owned());
                    self.partial.clear();
                }
                _ => self.partial.push(b),
            }
        }
        out
    }

    fn rest(&mut self) -> Option<String> {
        (!self.partial.is_empty())
            .then(|| String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_splits_into_lines_across_chunks() {
        let mut l = Lines::default();
        assert_eq!(l.push(b"one\ntw"), vec!["one"]);
        assert_eq!(l.push(b"o\r\n\nthree"), vec!["two", ""]);
        assert_eq!(l.rest().as_deref(), Some("three"));
        assert_eq!(l.rest(), None);
    }
}
