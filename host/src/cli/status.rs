//! `status`: the host's identity, capacity and use.

use pinkerton::progress::human_size;

use host_api::client::Client;

/// `status`.
pub async fn status(c: &Client, json: bool) -> anyhow::Result<i32> {
    let s = c.status().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(0);
    }
    println!("host:    {} (flynn-host {})", s.id, s.version);
    let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("tags:    {}", tags.join(" "));
    println!(
        "cpus:    {} (load {:.2} {:.2} {:.2})",
        s.cpus, s.load[0], s.load[1], s.load[2]
    );
    println!(
        "memory:  {} available of {}",
        human_size(s.memory.available),
        human_size(s.memory.total)
    );
    println!(
        "disk:    {} available of {}",
        human_size(s.disk.available),
        human_size(s.disk.total)
    );
    let jobs: Vec<String> = s.jobs.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!(
        "jobs:    {}",
        if jobs.is_empty() {
            "none".into()
        } else {
            jobs.join(", ")
        }
    );
    if s.draining {
        println!("state:   draining (takes no new jobs; `flynn-host undrain` ends it)");
    }
    println!("uptime:  {} s", s.uptime);
    Ok(0)
}
