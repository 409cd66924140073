//! Job commands: run, ps, inspect, log, stop, kill, rm.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{bail, Context};
use clap::Args;
use std::time::Duration;

use host_api::client::{Client, ClientError};
use host_api::{
    CreateJob, ErrorCode, Job, JobConfig, JobFilter, JobId, JobState, LogLine, LogOptions,
    NetworkMode, PortMap, Proto, Stream, Timestamp, VolumeMount,
};

use super::attach::{exit_code, session};
use super::table;

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background and print the job id.
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open and send it to the job.
    #[arg(short, long)]
    interactive: bool,
    /// Run the job on a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Publish a port: HOST:JOB, JOB (any host port) or HOST:JOB/udp.
    #[arg(short, long = "publish", value_name = "HOST:JOB")]
    publish: Vec<String>,
    /// Set an environment variable.
    #[arg(short, long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Memory limit, e.g. 64M or 1G.
    #[arg(short, long)]
    memory: Option<String>,
    /// CPU limit in cores, e.g. 0.5.
    #[arg(long)]
    cpus: Option<f64>,
    /// Most processes the job may have.
    #[arg(long)]
    pids_limit: Option<i64>,
    /// The job id (generated when absent).
    #[arg(long)]
    name: Option<JobId>,
    /// Network: bridge, none or host.
    #[arg(long, default_value = "bridge")]
    network: Network,
    /// Attach a volume: NAME:/path[:ro].
    #[arg(short, long = "volume", value_name = "NAME:PATH")]
    volume: Vec<String>,
    /// Working directory in the job.
    #[arg(short, long)]
    workdir: Option<String>,
    /// User in the job.
    #[arg(short, long)]
    user: Option<String>,
    /// Replace the image's entrypoint.
    #[arg(long)]
    entrypoint: Option<String>,
    /// Remove the job once it ends.
    #[arg(long, conflicts_with = "restart")]
    rm: bool,
    /// Start the job again when it ends: no, on-failure or always (never after a stop or
    /// rm through the API; the delay doubles with each run under 10 s, up to 30 s).
    #[arg(long, value_name = "POLICY", default_value = "no")]
    restart: host_api::RestartPolicy,
    /// Run the command under an init (tini) that forwards signals and reaps orphans.
    #[arg(long)]
    init: bool,
    /// Register the job in discoverd under this service name.
    #[arg(long)]
    service: Option<host_api::ServiceName>,
    /// Register the service only once `GET PATH` on its port answers 2xx or 3xx (default:
    /// once the port accepts a TCP connection).
    #[arg(long, value_name = "PATH", requires = "service")]
    check_http: Option<String>,
    /// Metadata label KEY=VALUE.
    #[arg(short, long = "label", value_name = "K=V")]
    label: Vec<String>,
    /// The image.
    image: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn key_values(items: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{what} {kv:?}: use KEY=VALUE"),
        })
        .collect()
}

/// `--network`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Network {
    /// The host's bridge, with an address, NAT and published ports.
    Bridge,
    /// Only loopback.
    None,
    /// The host's network namespace.
    Host,
}

impl From<Network> for NetworkMode {
    fn from(n: Network) -> Self {
        match n {
            Network::Bridge => NetworkMode::Bridge,
            Network::None => NetworkMode::None,
            Network::Host => NetworkMode::Host,
        }
    }
}

fn port(spec: &str) -> anyhow::Result<PortMap> {
    let (ports, proto) = match spec.rsplit_once('/') {
        Some((p, proto)) => (
            p,
            proto
                .parse::<Proto>()
                .map_err(|e| anyhow::anyhow!("port {spec:?}: {e}"))?,
        ),
        None => (spec, Proto::Tcp),
    };
    let num = |s: &str| {
        s.parse::<u16>()
            .with_context(|| format!("port {spec:?}: {s:?} is not a port number"))
    };
    let (host, job) = match ports.split_once(':') {
        Some((h, j)) => (num(h)?, num(j)?),
        None => (0, num(ports)?),
    };
    Ok(PortMap { host, job, proto })
}

fn volume(spec: &str) -> anyhow::Result<VolumeMount> {
    let mut parts = spec.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(target), ro, None) if matches!(ro, None | Some("ro" | "rw")) => {
            Ok(VolumeMount {
                name: name.into(),
                target: target.into(),
                readonly: ro == Some("ro"),
            })
        }
        _ => bail!("volume {spec:?}: use NAME:/path or NAME:/path:ro"),
    }
}

impl RunArgs {
    fn request(&self) -> anyhow::Result<CreateJob> {
        let mut config = JobConfig {
            entrypoint: self.entrypoint.clone().map(|e| vec![e]),
            env: key_values(&self.env, "environment variable")?,
            working_dir: self.workdir.clone(),
            user: self.user.clone(),
            tty: self.tty,
            stdin: self.interactive,
            init: self.init,
            network: self.network.into(),
            ports: self
                .publish
                .iter()
                .map(|p| port(p))
                .collect::<Result<_, _>>()?,
            volumes: self
                .volume
                .iter()
                .map(|v| volume(v))
                .collect::<Result<_, _>>()?,
            ..JobConfig::new(self.image.clone(), self.command.clone())
        };
        if let Some(m) = &self.memory {
            let bytes = pinkerton::progress::parse_size(m)
                .with_context(|| format!("--memory {m:?}: use a size such as 64M or 1G"))?;
            config.resources.memory = Some(bytes);
        }
        if let Some(c) = self.cpus {
            if !(c > 0.0 && c <= 1024.0) {
                bail!("--cpus {c}: use a number of cores such as 0.5 or 2");
            }
            config.resources.cpu_millis = Some((c * 1000.0).round() as u64);
        }
        config.resources.pids = self.pids_limit;
        Ok(CreateJob {
            id: self.name.clone(),
            config,
            metadata: key_values(&self.label, "label")?,
            service: self.service.clone(),
            service_check: self
                .check_http
                .clone()
                .map(|path| host_api::HttpCheck { path, status: None }),
            restart: self.restart,
            ..Default::default()
        })
    }
}

/// `run`: creates the job (pulling its image first if the host lacks it), then attaches,
/// follows its log, or prints its id.
pub async fn run(c: &Client, args: RunArgs) -> anyhow::Result<i32> {
    let req = args.request()?;
    let job = match c.create_job(&req).await {
        Err(e) if e.code() == Some(ErrorCode::NoSuchImage) => {
            let image = &req.config.image;
            eprintln!("Unable to find image {image:?} on this host; pulling it");
            super::images::pull(c, image).await?;
            c.create_job(&req).await?
        }
        r => r?,
    };
    if args.detach {
        println!("{}", job.id);
        return Ok(0);
    }
    let code = if args.interactive || args.tty {
        match session(c, &job.id, args.tty, args.interactive).await {
            Ok(code) => code,
            // A job that ended before the attach: show what it wrote.
            Err(_) if c.job(&job.id).await?.state.is_final() => follow(c, &job.id).await?,
            Err(e) => return Err(e),
        }
    } else {
        follow(c, &job.id).await?
    };
    if args.rm {
        c.delete_job(&job.id, true).await?;
    }
    Ok(code)
}

/// Prints the job's whole log as it is written until the job ends; returns its exit code.
async fn follow(c: &Client, id: &JobId) -> anyhow::Result<i32> {
    let opts = LogOptions {
        follow: true,
        ..Default::default()
    };
    let mut logs = c.logs(id, &opts).await?;
    while let Some(l) = logs.next().await? {
        print_line(&l, false);
    }
    let job = c.job(id).await?;
    Ok(match (&job.exit, &job.error) {
        (Some(s), _) => exit_code(s),
        (None, Some(e)) => {
            eprintln!("job {id} failed: {e}");
            125
        }
        _ => 125,
    })
}

fn print_line(l: &LogLine, timestamps: bool) {
    let prefix = if timestamps {
        format!("{} ", l.time)
    } else {
        String::new()
    };
    let end = if l.partial { "" } else { "\n" };
    let text = format!("{prefix}{}{end}", l.line);
    let _ = match l.stream {
        Stream::Stdout => std::io::stdout().write_all(text.as_bytes()),
        Stream::Stderr => std::io::stderr().write_all(text.as_bytes()),
    };
}

/// `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show every job, not only running ones.
    #[arg(short, long)]
    all: bool,
    /// Only ids.
    #[arg(short, long)]
    quiet: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn describe(j: &Job) -> String {
    let state = state_text(j);
    match j.restarts {
        0 => state,
        1 => format!("{state}, restarted once"),
        n => format!("{state}, restarted {n} times"),
    }
}

fn state_text(j: &Job) -> String {
    match (j.state, &j.exit, &j.error) {
        (JobState::Exited, Some(s), _) => match (s.code, s.signal) {
            (Some(c), _) if s.oom_killed => format!("exited ({c}, OOM killed)"),
            (Some(c), _) => format!("exited ({c})"),
            (None, Some(sig)) => format!("killed (signal {sig})"),
            _ => "exited".into(),
        },
        (JobState::Failed, _, Some(e)) => {
            let short: String = e.chars().take(40).collect();
            format!("failed: {short}")
        }
        (s, _, _) => s.as_str().into(),
    }
}

/// `ps`: running jobs, or all with `-a`.
pub async fn ps(c: &Client, args: PsArgs) -> anyhow::Result<i32> {
    let filter = JobFilter {
        state: (!args.all).then_some(JobState::Running),
        ..Default::default()
    };
    let jobs = c.jobs(&filter).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
    } else if args.quiet {
        for j in &jobs {
            println!("{}", j.id);
        }
    } else {
        let rows: Vec<Vec<String>> = jobs
            .iter()
            .map(|j| {
                let ports: Vec<String> = j
                    .ports
                    .iter()
                    .map(|p| format!("{}->{}/{}", p.host, p.job, p.proto))
                    .collect();
                vec![
                    j.id.to_string(),
                    j.config.config.image.clone(),
                    j.config.config.args.join(" ").chars().take(30).collect(),
                    table::ago(j.created_at.as_datetime()),
                    describe(j),
                    j.ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    ports.join(", "),
                ]
            })
            .collect();
        table::print(
            &[
                "JOB ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "IP", "PORTS",
            ],
            &rows,
        );
    }
    Ok(0)
}

/// `inspect`.
pub async fn inspect(c: &Client, ids: &[String]) -> anyhow::Result<i32> {
    let mut jobs = Vec::new();
    for id in ids {
        jobs.push(c.job(&job_id(id)?).await?);
    }
    println!("{}", serde_json::to_string_pretty(&jobs)?);
    Ok(0)
}

/// `log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Keep printing new output until the job ends.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines.
    #[arg(short = 'n', long)]
    tail: Option<usize>,
    /// Only lines since this time (RFC 3339).
    #[arg(long)]
    since: Option<Timestamp>,
    /// Prefix each line with its time.
    #[arg(short, long)]
    timestamps: bool,
    /// Print records as JSON lines.
    #[arg(long)]
    json: bool,
    /// The job.
    id: JobId,
}

/// `log`.
pub async fn log(c: &Client, args: LogArgs) -> anyhow::Result<i32> {
    let opts = LogOptions {
        follow: args.follow,
        tail: args.tail,
        since: args.since,
        stream: None,
    };
    let mut logs = c.logs(&args.id, &opts).await?;
    while let Some(l) = logs.next().await? {
        if args.json {
            println!("{}", serde_json::to_string(&l)?);
        } else {
            print_line(&l, args.timestamps);
        }
    }
    Ok(0)
}

/// A job id given on the command line.
fn job_id(id: &str) -> anyhow::Result<JobId> {
    Ok(id.parse()?)
}

async fn each<F, Fut>(ids: &[String], f: F) -> anyhow::Result<i32>
where
    F: Fn(JobId) -> Fut,
    Fut: std::future::Future<Output = Result<(), ClientError>>,
{
    let mut code = 0;
    for id in ids {
        let parsed = match job_id(id) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
                continue;
            }
        };
        match f(parsed).await {
            Ok(()) => println!("{id}"),
            Err(e) => {
                eprintln!("Error: {id}: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `stop`.
pub async fn stop(c: &Client, timeout: u64, ids: &[String]) -> anyhow::Result<i32> {
    each(ids, |id| async move {
        c.stop(&id, Duration::from_secs(timeout)).await.map(|_| ())
    })
    .await
}

/// `kill`.
pub async fn kill(c: &Client, signal: &str, ids: &[String]) -> anyhow::Result<i32> {
    each(ids, |id| async move { c.signal(&id, signal).await }).await
}

/// `rm`.
pub async fn rm(c: &Client, force: bool, ids: &[String]) -> anyhow::Result<i32> {
    each(ids, |id| async move { c.delete_job(&id, force).await }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_volumes_parse() {
        let p = port("8080:80").unwrap();
        assert_eq!((p.host, p.job, p.proto.as_str()), (8080, 80, "tcp"));
        let p = port("53/udp").unwrap();
        assert_eq!((p.host, p.job, p.proto.as_str()), (0, 53, "udp"));
        for bad in ["x", "1:2:3", "80/sctp", "99999"] {
            assert!(port(bad).is_err(), "{bad}");
        }
        let v = volume("data:/var/data:ro").unwrap();
        assert_eq!(
            (v.name.as_str(), v.target.as_str(), v.readonly),
            ("data", "/var/data", true)
        );
        assert!(volume("data").is_err());
        assert!(volume("a:/b:x").is_err());
    }
}
