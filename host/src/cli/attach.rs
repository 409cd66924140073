//! Attaching to a job of this host: the attach connection from the host API, the session
//! itself from `flynn-term`.

use anyhow::Context;
use host_api::client::Client;
use host_api::JobId;

pub use flynn_term::attach::exit_code;

/// Attaches to job `id` until it exits; returns its exit code.
pub async fn session(c: &Client, id: &JobId, tty: bool, stdin: bool) -> anyhow::Result<i32> {
    let io = c.attach(id).await?;
    flynn_term::attach::session(io, tty, stdin)
        .await
        .with_context(|| format!("attached to job {id}"))
}
