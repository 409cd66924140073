//! Job creation through the host API:
//! `api_bench SOCKET IMAGE COUNT CONCURRENCY PREFIX [bridge|none]`
//! creates COUNT `sleep` jobs from CONCURRENCY clients and prints one JSON line: wall time,
//! creations per second, and create-to-running latency percentiles (a creation returns once
//! the job's process runs). Used by `bench/api.sh`.

use std::time::{Duration, Instant};

use host_api::client::Client;
use host_api::{CreateJob, Endpoint, JobConfig, NetworkMode};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        a.len() == 6 || a.len() == 7,
        "usage: api_bench SOCKET IMAGE COUNT CONCURRENCY PREFIX [bridge|none]"
    );
    let network = match a.get(6).map(String::as_str) {
        None | Some("bridge") => NetworkMode::Bridge,
        Some("none") => NetworkMode::None,
        Some(n) => anyhow::bail!("unknown network mode {n}"),
    };
    let client = Client::new(Endpoint::Unix(a[1].clone().into()), None);
    let (image, count, conc, prefix) = (
        a[2].clone(),
        a[3].parse::<usize>()?,
        a[4].parse::<usize>()?,
        a[5].clone(),
    );
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..conc {
        let (client, image, prefix) = (client.clone(), image.clone(), prefix.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = w;
            while i < count {
                let req = CreateJob {
                    id: Some(format!("{prefix}{i}").parse()?),
                    config: JobConfig {
                        network,
                        ..JobConfig::new(image.clone(), vec!["sleep".into(), "3600".into()])
                    },
                    ..Default::default()
                };
                let t = Instant::now();
                client.create_job(&req).await?;
                lat.push(t.elapsed());
                i += conc;
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let wall = start.elapsed().as_secs_f64();
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "{{\"count\":{count},\"concurrency\":{conc},\"seconds\":{wall:.3},\"per_sec\":{:.1},\"p50_ms\":{:.1},\"p99_ms\":{:.1}}}",
        count as f64 / wall,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
