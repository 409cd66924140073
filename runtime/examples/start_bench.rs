//! Benchmark helper for `bench/start.sh`.
//!
//! `start_bench STORE ROOT SHIM IMAGE [none|bridge]` runs `/bin/true` from IMAGE as one job
//! with that network (default bridge), from create to exit, then deletes it; with
//! `START_BENCH_SPEC=FILE` it copies the job's OCI `config.json` there.
//! `start_bench STORE JOBS SHIM IMAGE idle N` starts N `sleep` jobs, prints the shims' memory
//! (RSS and PSS, KiB per job), then stops and deletes them.
//! `start_bench STORE JOBS SHIM IMAGE loop N` runs N `/bin/true` jobs (network `none`) one
//! after another in one runtime with a standby shim, as the host daemon starts jobs, after 5
//! warm-up jobs; prints each start's milliseconds, create to exit and delete, one per line;
//! `loop-without-standby N` the same with every job starting a shim of its own.

use std::time::Duration;

use runtime::{JobSpec, Runtime};

fn kib(pid: i32, field: &str, file: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert!(
        args.len() >= 5,
        "usage: start_bench STORE JOBS SHIM IMAGE [idle N]"
    );
    let store = pinkerton::store::Store::open(&args[1]).expect("store");
    let rt = Runtime::new(&args[2], store, &args[3]).expect("runtime");
    // As the daemon does (a tmpfs already there is kept).
    rt.keep_run_files_in_memory().expect("run directory");
    let spec = |id: String, argv: &[&str]| {
        JobSpec::new(
            id.parse().expect("id"),
            &args[4],
            argv.iter().map(|s| s.to_string()).collect(),
        )
    };
    match args.get(5).map(String::as_str) {
        Some("loop") => return in_one_runtime(rt.with_standby_shim(), &args),
        Some("loop-without-standby") => return in_one_runtime(rt, &args),
        _ => {}
    }
    if args.get(5).map(String::as_str) != Some("idle") {
        let id = format!("bench-{}", std::process::id());
        let mut job = spec(id.clone(), &["/bin/true"]);
        job.config.network = match args.get(5).map(String::as_str) {
            None | Some("bridge") => runtime::NetworkMode::Bridge,
            Some("none") => runtime::NetworkMode::None,
            Some(other) => panic!("network {other:?}: use none or bridge"),
        };
        rt.create(&job).expect("create");
        // The OCI spec the runtime wrote for the job, for running a peer on the same spec.
        if let Ok(out) = std::env::var("START_BENCH_SPEC") {
            let spec = std::path::Path::new(&args[2]).join(format!("run/{id}/bundle/config.json"));
            std::fs::copy(&spec, &out).expect("copying the job's config.json");
        }
        let status = rt.wait(&id, Duration::from_secs(30)).expect("wait");
        assert_eq!(status.code, Some(0));
        rt.delete(&id).expect("delete");
        return;
    }
    let n: usize = args[6].parse().expect("N");
    let ids: Vec<String> = (0..n).map(|i| format!("idle-{i}")).collect();
    for id in &ids {
        rt.create(&spec(id.clone(), &["/bin/sleep", "1000"]))
            .expect("create");
    }
    std::thread::sleep(Duration::from_millis(500));
    let shims = runtime::job::shims_of(std::path::Path::new(&args[2]));
    let rss: u64 = shims.iter().map(|p| kib(*p, "VmRSS:", "status")).sum();
    let pss: u64 = shims.iter().map(|p| kib(*p, "Pss:", "smaps_rollup")).sum();
    println!(
        "{n} idle jobs, {} shims: RSS {} KiB/job, PSS {} KiB/job",
        shims.len(),
        rss / n as u64,
        pss / n as u64
    );
    for id in &ids {
        rt.stop(id, Duration::from_millis(100)).expect("stop");
        rt.delete(id).expect("delete");
    }
}

/// `loop N`: N starts in one runtime, each timed from create to deleted.
fn in_one_runtime(rt: Runtime, args: &[String]) {
    let n: usize = args[6].parse().expect("N");
    let standby = args[5] == "loop";
    for i in 0..n + 5 {
        let id = format!("loop-{i}");
        let mut job = JobSpec::new(id.parse().expect("id"), &args[4], vec!["/bin/true".into()]);
        job.config.network = runtime::NetworkMode::None;
        // The standby is started after each start; a daemon's starts come further apart.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while standby && rt.standby_shim().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let t = std::time::Instant::now();
        rt.create(&job).expect("create");
        let status = rt.wait(&id, Duration::from_secs(30)).expect("wait");
        assert_eq!(status.code, Some(0));
        rt.delete(&id).expect("delete");
        if i >= 5 {
            println!("{:.3}", t.elapsed().as_secs_f64() * 1000.0);
        }
    }
}
