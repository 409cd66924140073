//! `events`: the host's events as they happen.

use clap::Args;

use host_api::client::Client;
use host_api::{EventFilter, EventPayload, ImageAction, JobAction, JobId};

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events of this job.
    #[arg(long)]
    job: Option<JobId>,
    /// Print each event as JSON.
    #[arg(long)]
    json: bool,
}

/// `events`: prints events as they happen until interrupted.
pub async fn events(c: &Client, args: EventsArgs) -> anyhow::Result<i32> {
    let filter = EventFilter {
        job: args.job,
        kind: None,
    };
    let mut stream = c.events(&filter).await?;
    while let Some(e) = stream.next().await? {
        if args.json {
            println!("{}", serde_json::to_string(&e)?);
            continue;
        }
        match &e.payload {
            EventPayload::Job { job: j, action } => {
                let detail = match (&j.exit, &j.error, action) {
                    (_, _, Some(JobAction::Deleted)) => " deleted".to_string(),
                    (Some(s), _, _) => format!(" code={:?} signal={:?}", s.code, s.signal),
                    (_, Some(err), _) => format!(" error={err:?}"),
                    _ => String::new(),
                };
                println!("{} job {} {}{detail}", e.time, j.id, j.state);
            }
            EventPayload::Image { image: i, action } => {
                let action = match action {
                    ImageAction::Pulled => "pulled",
                    ImageAction::Deleted => "deleted",
                };
                println!("{} image {} {action} {}", e.time, i.name, i.id);
            }
        }
    }
    Ok(0)
}
