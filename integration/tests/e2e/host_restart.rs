//! flynn-host under stress: killed with SIGKILL under running jobs, and 200 creations from 50
//! concurrent clients.

use integration::root_test;
use std::time::{Duration, Instant};

use host_api::{CreateJob, JobConfig, JobFilter, JobState, LogOptions, PortMap, Proto};
use integration::host::HostDaemon;
use integration::{jid, wait_for};

fn sh(h: &HostDaemon, id: &str, script: &str) -> CreateJob {
    CreateJob {
        id: Some(jid(id)),
        ..CreateJob::new(
            h.image.clone(),
            vec!["sh".into(), "-c".into(), script.into()],
        )
    }
}

fn pull(h: &HostDaemon) {
    let out = h.run(&["pull", &h.image]);
    assert!(out.status.success(), "{out:?}");
}

/// The numbers a counter job logged, which must run 0, 1, 2, ... without a gap.
fn counted(h: &HostDaemon, id: &str) -> usize {
    let lines = h.block_on(async {
        let mut s = h
            .client()
            .logs(&jid(id), &LogOptions::default())
            .await
            .unwrap();
        let mut out = Vec::new();
        while let Some(l) = s.next().await.unwrap() {
            out.push(l.line);
        }
        out
    });
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l, &i.to_string(), "job {id}: gap or disorder at line {i}");
    }
    lines.len()
}

#[root_test(isolated)]
fn jobs_survive_the_daemon_killed_with_sigkill() {
    let mut h = HostDaemon::start();
    pull(&h);
    let c = h.client();
    let counter = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done";
    for i in 0..20 {
        h.block_on(c.create_job(&sh(&h, &format!("count-{i}"), counter)))
            .unwrap();
    }
    h.block_on(c.create_job(&sh(&h, "short", "sleep 1; exit 42")))
        .unwrap();
    h.block_on(c.create_job(&sh(&h, "doomed", "sleep 1000")))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let before: Vec<usize> = (0..20)
        .map(|i| counted(&h, &format!("count-{i}")))
        .collect();

    h.kill9();
    // While the daemon is down: every counter goes on logging, `short` exits, and `doomed`
    // loses its shim. Each is waited for on disk, whatever the machine's load.
    let jobs = h.state().join("runtime/jobs");
    let log_size = |id: &str| {
        std::fs::metadata(jobs.join(id).join("log.jsonl"))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let sizes: Vec<u64> = (0..20).map(|i| log_size(&format!("count-{i}"))).collect();
    let run = h.state().join("runtime/run");
    let shim: i32 = std::fs::read_to_string(run.join("doomed/shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), nix::sys::signal::SIGKILL).unwrap();
    let limit = Duration::from_secs(60);
    wait_for("doomed's shim to die", limit, || {
        // Gone, or a zombie (no command line) until its parent reaps it.
        std::fs::read(format!("/proc/{shim}/cmdline")).map_or(true, |c| c.is_empty())
    });
    wait_for("short to exit (its shim records it)", limit, || {
        jobs.join("short/exit.json").exists()
    });
    wait_for("every counter to log with the daemon down", limit, || {
        (0..20).all(|i| log_size(&format!("count-{i}")) > sizes[i])
    });
    h.spawn();

    let all = h.block_on(c.jobs(&JobFilter::default())).unwrap();
    let running = all
        .iter()
        .filter(|j| j.id.as_str().starts_with("count-") && j.state == JobState::Running)
        .count();
    assert_eq!(running, 20, "{all:#?}");
    let short = h.block_on(c.job(&jid("short"))).unwrap();
    assert_eq!(short.state, JobState::Exited);
    assert_eq!(short.exit.unwrap().code, Some(42));
    let doomed = h.block_on(c.job(&jid("doomed"))).unwrap();
    assert_eq!(doomed.state, JobState::Failed);
    assert!(doomed.error.unwrap().contains("monitor"));
    // The job whose shim died is gone from the host: no process, no mount.
    assert!(!std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains("doomed"));

    // Logs kept flowing across the restart with no gap (`counted` checks every line), and a
    // followed log of a re-adopted job still gets new lines.
    for (i, b) in before.iter().enumerate() {
        wait_for(&format!("count-{i} to log 10 lines more"), limit, || {
            counted(&h, &format!("count-{i}")) > b + 10
        });
    }
    let fresh = h.block_on(async {
        let mut s = c
            .logs(
                &jid("count-0"),
                &LogOptions {
                    follow: true,
                    tail: Some(1),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let first = s.next().await.unwrap().unwrap();
        let next = tokio::time::timeout(Duration::from_secs(30), s.next()).await;
        (first, next.unwrap().unwrap().unwrap())
    });
    let (a, b): (usize, usize) = (fresh.0.line.parse().unwrap(), fresh.1.line.parse().unwrap());
    assert_eq!(b, a + 1);

    // Re-adopted jobs are still watched: stopping one records its end.
    let stopped = h
        .block_on(c.stop(&jid("count-0"), Duration::from_secs(1)))
        .unwrap();
    assert_eq!(stopped.state, JobState::Exited);
    h.block_on(c.signal(&jid("count-1"), "KILL")).unwrap();
    wait_for("count-1 to end", Duration::from_secs(10), || {
        h.block_on(c.job(&jid("count-1"))).unwrap().state == JobState::Exited
    });
    assert_eq!(
        h.block_on(c.job(&jid("count-1")))
            .unwrap()
            .exit
            .unwrap()
            .signal,
        Some(9)
    );
}

#[root_test(isolated)]
fn two_hundred_creations_from_fifty_clients() {
    let h = HostDaemon::start();
    pull(&h);
    let mounts = integration::leaks::mount_count();
    let c = h.client();
    let image = h.image.clone();
    let (results, slowest_status) = h.block_on(async {
        let mut tasks = Vec::new();
        for client in 0..50 {
            let (c, image) = (c.clone(), image.clone());
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for n in 0..4 {
                    let args = vec!["sh".into(), "-c".into(), "echo $HOSTNAME".into()];
                    let req = CreateJob {
                        id: Some(jid(&format!("load-{client}-{n}"))),
                        config: JobConfig {
                            ports: vec![PortMap {
                                host: 0,
                                job: 80,
                                proto: Proto::Tcp,
                            }],
                            ..JobConfig::new(image.clone(), args)
                        },
                        ..Default::default()
                    };
                    out.push(c.create_job(&req).await);
                }
                out
            }));
        }
        // The daemon answers other requests while it starts jobs.
        let mut slowest = Duration::ZERO;
        for _ in 0..20 {
            let t = Instant::now();
            c.status().await.unwrap();
            slowest = slowest.max(t.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut results = Vec::new();
        for t in tasks {
            results.extend(t.await.unwrap());
        }
        (results, slowest)
    });
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} creations failed: {failed:?}",
        failed.len()
    );
    assert!(
        slowest_status < Duration::from_secs(5),
        "status took {slowest_status:?} under load"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = h.block_on(c.jobs(&JobFilter::default())).unwrap();
        assert_eq!(jobs.len(), 200);
        if jobs.iter().all(|j| j.state == JobState::Exited) {
            assert!(jobs.iter().all(|j| j.exit.unwrap().code == Some(0)));
            break;
        }
        assert!(Instant::now() < deadline, "jobs did not all exit");
        std::thread::sleep(Duration::from_millis(100));
    }
    h.block_on(async {
        let mut tasks = Vec::new();
        for j in c.jobs(&JobFilter::default()).await.unwrap() {
            let c = c.clone();
            tasks.push(tokio::spawn(
                async move { c.delete_job(&j.id, false).await },
            ));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    });
    assert!(h
        .block_on(c.jobs(&JobFilter::default()))
        .unwrap()
        .is_empty());
    integration::leaks::assert_clean(
        &h.state().join("runtime"),
        &h.cgroup_parent,
        "load-",
        mounts,
    );
}

#[root_test(isolated)]
fn a_daemon_killed_during_creations_leaves_nothing_once_the_jobs_are_gone() {
    let mut h = HostDaemon::start();
    pull(&h);
    let mounts = integration::leaks::mount_count();
    // The kill lands at a different point of the creations each round: before the network is
    // set up, between the veth and the port rules, while the shim starts, after the record.
    for (round, delay_ms) in [0u64, 10, 30, 60, 120, 250, 500, 1000]
        .into_iter()
        .enumerate()
    {
        let c = h.client();
        let image = h.image.clone();
        h.block_on(async {
            for n in 0..6 {
                let req = CreateJob {
                    id: Some(jid(&format!("crash-{round}-{n}"))),
                    config: JobConfig {
                        ports: vec![PortMap {
                            host: 0,
                            job: 8080,
                            proto: Proto::Tcp,
                        }],
                        ..JobConfig::new(image.clone(), vec!["sleep".into(), "60".into()])
                    },
                    ..Default::default()
                };
                let c = c.clone();
                tokio::spawn(async move { c.create_job(&req).await });
            }
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        });
        h.kill9();
        h.spawn();
    }
    let c = h.client();
    let left = h.block_on(c.jobs(&JobFilter::default())).unwrap();
    assert!(
        left.iter().any(|j| j.state == JobState::Running),
        "some creations got through before a kill: {:?}",
        left.iter()
            .map(|j| (&j.id, j.state, &j.error))
            .collect::<Vec<_>>()
    );
    h.block_on(async {
        for j in left {
            c.delete_job(&j.id, true).await.unwrap();
        }
    });
    // One more restart: whatever no job owned was removed at start, and stays removed.
    h.kill9();
    h.spawn();
    assert!(h
        .block_on(c.jobs(&JobFilter::default()))
        .unwrap()
        .is_empty());
    integration::leaks::assert_clean(
        &h.state().join("runtime"),
        &h.cgroup_parent,
        "crash-",
        mounts,
    );
}

#[root_test(isolated)]
fn after_a_reboot_a_job_is_failed_with_its_log_kept_and_leaves_nothing_once_deleted() {
    let mut h = HostDaemon::start();
    pull(&h);
    let mounts = integration::leaks::mount_count();
    let c = h.client();
    let counter = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done";
    h.block_on(c.create_job(&sh(&h, "rebooted", counter)))
        .unwrap();
    wait_for("the job to log", Duration::from_secs(30), || {
        counted(&h, "rebooted") >= 3
    });

    // A reboot, as the job's files see it: the daemon and every process of the job gone, and
    // the run directory's tmpfs with them.
    h.kill9();
    let run = h.state().join("runtime/run");
    let shim: i32 = std::fs::read_to_string(run.join("rebooted/shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let kill = |pid: i32| {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    };
    kill(shim);
    let cgroup = format!("{}/rebooted", h.cgroup_parent);
    let hierarchies = std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten();
    for dir in hierarchies
        .map(|e| e.path().join(&cgroup))
        .chain([std::path::Path::new("/sys/fs/cgroup").join(&cgroup)])
    {
        for pid in std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
        {
            kill(pid.parse().unwrap());
        }
    }
    wait_for("the run tmpfs to come off", Duration::from_secs(10), || {
        nix::mount::umount(&run).is_ok()
    });
    assert!(!run.join("rebooted").exists());
    // The log as the reboot left it (the shim is gone: the tmpfs it worked in came off), read
    // from the state directory with the daemon down.
    let logged = {
        let store = pinkerton::store::Store::open(h.state().join("pinkerton")).unwrap();
        let shim = integration::workspace_bin("flynn-shim");
        let rt = runtime::Runtime::new(h.state().join("runtime"), store, shim).unwrap();
        rt.logs("rebooted").unwrap().len()
    };
    h.spawn();

    let job = h.block_on(c.job(&jid("rebooted"))).unwrap();
    assert_eq!(job.state, JobState::Failed, "{job:#?}");
    assert!(
        job.error.as_deref().unwrap_or_default().contains("monitor"),
        "{job:#?}"
    );
    assert_eq!(
        counted(&h, "rebooted"),
        logged,
        "the log before the reboot is kept"
    );
    // The daemon mounted a new tmpfs on the emptied run directory.
    assert_eq!(
        nix::sys::statfs::statfs(&run).unwrap().filesystem_type(),
        nix::sys::statfs::TMPFS_MAGIC
    );
    h.block_on(c.delete_job(&jid("rebooted"), false)).unwrap();
    integration::leaks::assert_clean(
        &h.state().join("runtime"),
        &h.cgroup_parent,
        "rebooted",
        mounts,
    );
}
