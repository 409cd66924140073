//! `GET /apps/{app}/log?follow=&lines=&job_id=&process_type=`: NDJSON [`LogMessage`]s, the
//! history of the app's jobs merged in time order, then (following) each running job's new
//! lines and those of jobs that come up later, until the client goes.

use std::collections::HashSet;

use controller_api::{Job, JobState, LogMessage, ObjectType};
use flynn_http::server::{ndjson, Query};
use flynn_http::Timestamp;
use host_api::LogOptions;
use hyper::body::Incoming;
use hyper::Request;
use tokio::sync::mpsc;

use super::{Answer, Shared};
use crate::logs::{LogQuery, LogSource, DEFAULT_LINES};
use crate::store::Store;

/// Most lines of history one request may ask for.
const MAX_LINES: u64 = 100_000;

pub(super) async fn log<S: Store>(st: Shared<S>, req: Request<Incoming>, app: &str) -> Answer {
    let q = Query::of(&req);
    let query = LogQuery {
        job_id: q.get("job_id").map(str::to_string),
        process_type: q.get("process_type").map(str::to_string),
        lines: q.number("lines", 0, MAX_LINES)?.map(|n| n as usize),
        follow: q.flag("follow")?,
    };
    let app_id = st.controller.app(app).await?.id;
    // Subscribed before the jobs are listed: a job that comes up meanwhile is not missed.
    let live = match query.follow {
        true => Some(
            st.controller
                .store()
                .subscribe()
                .await
                .map_err(crate::error::ControllerError::from)?,
        ),
        false => None,
    };
    let sources = st.controller.log_sources(app, &query).await?;
    let lines = query.lines.unwrap_or(DEFAULT_LINES);
    let (history, last) = st.controller.log_history(&sources, lines).await;
    let (tx, rx) = mpsc::channel::<LogMessage>(256);
    tokio::spawn(async move {
        for m in history {
            if tx.send(m).await.is_err() {
                return;
            }
        }
        let Some(mut live) = live else {
            return;
        };
        let mut followed = HashSet::new();
        for s in sources.into_iter().filter(|s| s.job.state == JobState::Up) {
            followed.insert(s.job.id.clone());
            let after = last.get(&s.job.id).copied();
            follow(s, after, tx.clone());
        }
        loop {
            let ev = tokio::select! {
                ev = live.recv() => ev,
                _ = tx.closed() => return,
            };
            // A broken subscription ends the stream; the client asks again.
            let Some(ev) = ev else { return };
            if ev.object_type != ObjectType::Job || ev.app.as_deref() != Some(app_id.as_str()) {
                continue;
            }
            let Ok(job) = flynn_http::json::from_value::<Job>(ev.data) else {
                continue;
            };
            if job.state != JobState::Up || !query.wants(&job) || followed.contains(&job.id) {
                continue;
            }
            let Ok(hosts) = st.controller.hosts() else {
                return;
            };
            let (Ok(host), Ok(id)) = (hosts.get(&job.host_id).await, job.id.parse()) else {
                continue;
            };
            followed.insert(job.id.clone());
            // A job listed before but not up then (its record lagging behind the host) may
            // have written lines already: those up to the history's last are not new.
            let after = last.get(&job.id).copied();
            follow(LogSource { job, id, host }, after, tx.clone());
        }
    });
    Ok(ndjson(rx))
}

/// Sends the lines `s` writes (after `after`, where its history ended) until it ends or the
/// client goes.
fn follow(s: LogSource, after: Option<Timestamp>, tx: mpsc::Sender<LogMessage>) {
    tokio::spawn(async move {
        let opts = LogOptions {
            follow: true,
            since: after,
            ..LogOptions::default()
        };
        let Ok(mut lines) = s.host.logs(&s.id, &opts).await else {
            return;
        };
        loop {
            let line = tokio::select! {
                l = lines.next() => l,
                _ = tx.closed() => return,
            };
            match line {
                Ok(Some(l)) if after.is_some_and(|a| l.time <= a) => {}
                Ok(Some(l)) => {
                    if tx.send(s.message(l)).await.is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    });
}
