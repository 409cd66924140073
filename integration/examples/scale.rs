//! Scale benchmark on the one-machine test cluster (integration/src/cluster/): for each N,
//! from `web=1` (settled) to `web=N`, the time until N jobs run and every router lists N
//! backends for the app's service; then the time of a one-by-one deploy of ten jobs. Run
//! through bench/scale.sh (it provides the namespaces).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use controller_api::{AppUpdate, DeploymentStatus, NewRelease, PutFormation, Strategy};
use integration::cluster::{Cluster, ROUTER_API};

const WEB: &str = "echo $FLYNN_JOB_ID > /www/index.html; exec httpd -f -p $PORT -h /www";

fn scale(c: &Cluster, release: &str, n: u32) {
    let f = PutFormation {
        processes: BTreeMap::from([("web".parse().unwrap(), n)]),
        ..PutFormation::default()
    };
    c.block_on(c.controller().put_formation("bench", release, &f))
        .unwrap();
}

fn routed(c: &Cluster) -> Vec<usize> {
    (0..c.hosts.len())
        .map(|i| {
            let url = format!("http://{}:{ROUTER_API}", c.hosts[i].ip);
            let api = router_api::client::Client::new(url.parse().unwrap());
            c.block_on(api.backends())
                .map(|b| b.iter().filter(|b| b.service == "bench-web").count())
                .unwrap_or(0)
        })
        .collect()
}

/// Seconds until `n` jobs run and are routed everywhere.
fn until_up(c: &Cluster, app: &str, n: usize) -> f64 {
    let t0 = Instant::now();
    loop {
        let running = c
            .app_jobs(app)
            .iter()
            .filter(|(_, j)| j.state == host_api::JobState::Running)
            .count();
        if running == n && routed(c).iter().all(|r| *r == n) {
            return t0.elapsed().as_secs_f64();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "web={n} did not come up"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn release(c: &Cluster, app: &str, artifact: &str, version: &str) -> String {
    let processes = serde_json::json!({"web": {
        "args": ["sh", "-c", WEB],
        "env": {"VERSION": version},
        "ports": [{"port": 8080, "proto": "tcp", "service": {"name": "bench-web", "create": true}}],
        "resources": {"memory": {"limit": 33554432}}
    }});
    c.block_on(c.controller().create_release(&NewRelease {
        app_id: app.to_string(),
        artifacts: vec![artifact.to_string()],
        env: BTreeMap::new(),
        meta: BTreeMap::new(),
        processes: serde_json::from_value(processes).unwrap(),
    }))
    .unwrap()
    .id
}

fn main() {
    let counts: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("counts: N..."))
        .collect();
    let counts = if counts.is_empty() {
        vec![1, 10, 50]
    } else {
        counts
    };
    let c = Cluster::start(3);
    let api = c.controller();
    let (app, artifact) = c.app_with_image("bench");
    let first = release(&c, &app.id, &artifact.id, "v1");
    c.block_on(api.deploy("bench", &first)).unwrap();
    // The first job also pulls the image onto its host: not part of the measurement.
    scale(&c, &first, 3);
    until_up(&c, &app.id, 3);
    for n in counts {
        scale(&c, &first, 1);
        until_up(&c, &app.id, 1);
        scale(&c, &first, n);
        let secs = until_up(&c, &app.id, n as usize);
        println!(
            "scale web 1=>{n}: {:.0} ms (up and routed on every router)",
            secs * 1000.0
        );
    }
    // One-by-one deploy of ten jobs: from the request until the deployment is complete (each
    // new job up and routed by every router, each old one drained and stopped).
    scale(&c, &first, 10);
    until_up(&c, &app.id, 10);
    let update = AppUpdate {
        strategy: Some(Strategy::OneByOne),
        ..AppUpdate::default()
    };
    c.block_on(api.update_app("bench", &update)).unwrap();
    let second = release(&c, &app.id, &artifact.id, "v2");
    let t0 = Instant::now();
    let d = c.block_on(api.deploy("bench", &second)).unwrap();
    loop {
        let d = c.block_on(api.deployment("bench", &d.id)).unwrap();
        match d.status {
            DeploymentStatus::Complete => break,
            DeploymentStatus::Failed => panic!("deploy failed: {:?}", d.error),
            _ => {}
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "deploy did not end"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "deploy one-by-one of 10 jobs: {:.0} ms (complete: every new job up and routed, every old one drained and stopped)",
        t0.elapsed().as_secs_f64() * 1000.0
    );
}
