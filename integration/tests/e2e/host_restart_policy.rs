//! Restart policies: jobs the host starts again when they end (`restart`), with their log
//! kept, until they are stopped or deleted through the API; also across a daemon killed
//! with SIGKILL.

use integration::root_test;
use std::time::{Duration, Instant};

use host_api::client::Client;
use host_api::{CreateJob, Job, JobState, LogOptions, RestartPolicy};
use integration::host::HostDaemon;
use integration::jid;

fn sh(h: &HostDaemon, id: &str, restart: RestartPolicy, script: &str) -> CreateJob {
    CreateJob {
        id: Some(jid(id)),
        restart,
        ..CreateJob::new(
            h.image.clone(),
            vec!["sh".into(), "-c".into(), script.into()],
        )
    }
}

/// The job once `ok` holds for it (60 s at most).
fn wait_for(h: &HostDaemon, c: &Client, id: &str, what: &str, ok: impl Fn(&Job) -> bool) -> Job {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = h.block_on(c.job(&jid(id))).unwrap();
        if ok(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id}: never {what}: {job:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_lines(h: &HostDaemon, c: &Client, id: &str) -> Vec<String> {
    h.block_on(async {
        let mut s = c.logs(&jid(id), &LogOptions::default()).await.unwrap();
        let mut out = Vec::new();
        while let Some(l) = s.next().await.unwrap() {
            out.push(l.line);
        }
        out
    })
}

#[root_test(isolated)]
fn jobs_restart_under_their_policy_until_stopped_or_deleted() {
    let h = HostDaemon::start();
    assert!(h.run(&["pull", &h.image]).status.success());
    let c = h.client();
    let create = |id: &str, policy, script: &str| {
        h.block_on(c.create_job(&sh(&h, id, policy, script)))
            .unwrap()
    };
    create("flaky", RestartPolicy::OnFailure, "echo run; exit 3");
    create("done", RestartPolicy::OnFailure, "echo once; exit 0");
    create("plain", RestartPolicy::No, "exit 3");
    create("again", RestartPolicy::Always, "echo again; sleep 0.2");
    create("doomed", RestartPolicy::Always, "exit 1");

    // A failing job comes back, each run's output appended to one log; a bridged job gets
    // its address again.
    let flaky = wait_for(&h, &c, "flaky", "restarted 3 times", |j| j.restarts >= 3);
    let runs = log_lines(&h, &c, "flaky");
    assert!(
        runs.len() >= 3 && runs.iter().all(|l| l == "run"),
        "{runs:?}"
    );
    let again = wait_for(&h, &c, "again", "restarted twice and running", |j| {
        j.restarts >= 2 && j.state == JobState::Running
    });
    assert!(again.ip.is_some(), "{again:#?}");
    assert!(!flaky.stopped);

    // Stopped through the API: ended for good, and said so.
    let stopped = h
        .block_on(c.stop(&jid("again"), Duration::from_secs(5)))
        .unwrap();
    assert!(stopped.state.is_final() && stopped.stopped, "{stopped:#?}");
    let count = stopped.restarts;
    // A job waiting for its restart is stopped too.
    let f = h.block_on(c.stop(&jid("flaky"), Duration::ZERO)).unwrap();
    assert!(f.stopped, "{f:#?}");
    let flaky_count = f.restarts;
    // Deleted while its restart waits: stays deleted.
    wait_for(&h, &c, "doomed", "restarted", |j| j.restarts >= 1);
    h.block_on(c.delete_job(&jid("doomed"), true)).unwrap();

    // Enough time for several restarts passes: a new failing job makes three.
    create("witness", RestartPolicy::OnFailure, "exit 7");
    wait_for(&h, &c, "witness", "restarted 3 times", |j| j.restarts >= 3);
    let again = h.block_on(c.job(&jid("again"))).unwrap();
    assert_eq!(
        (again.restarts, again.state.is_final()),
        (count, true),
        "{again:#?}"
    );
    let flaky = h.block_on(c.job(&jid("flaky"))).unwrap();
    assert_eq!(
        (flaky.restarts, flaky.state.is_final()),
        (flaky_count, true)
    );
    assert!(
        h.block_on(c.job(&jid("doomed"))).is_err(),
        "deleted job came back"
    );
    // A clean exit under on-failure and any end under `no` are final.
    for (id, code) in [("done", 0), ("plain", 3)] {
        let j = h.block_on(c.job(&jid(id))).unwrap();
        assert_eq!(j.state, JobState::Exited, "{j:#?}");
        assert_eq!((j.restarts, j.exit.unwrap().code), (0, Some(code)));
    }
    assert_eq!(log_lines(&h, &c, "done"), ["once"]);

    // What an operator sees, and a policy the host does not know.
    let ps = h.ok(&["ps", "-a"]);
    let line = ps.lines().find(|l| l.starts_with("witness")).unwrap();
    assert!(line.contains("restarted"), "{ps}");
    let bad = h.run(&["run", "-d", "--restart", "sometimes", &h.image, "true"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("no, on-failure or always"), "{err}");
    h.ok(&["rm", "-f", "witness"]);
}

#[root_test(isolated)]
fn a_job_that_ended_while_the_daemon_was_down_is_restarted() {
    let mut h = HostDaemon::start();
    assert!(h.run(&["pull", &h.image]).status.success());
    let c = h.client();
    h.block_on(c.create_job(&sh(
        &h,
        "svc",
        RestartPolicy::Always,
        "echo up; exec sleep 1000",
    )))
    .unwrap();
    let svc = wait_for(&h, &c, "svc", "running", |j| j.state == JobState::Running);
    h.kill9();
    let pid = nix::unistd::Pid::from_raw(svc.pid.unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL).unwrap();
    // The job's shim records the end with no daemon; the next daemon restarts the job.
    let exit = h.state().join("runtime/jobs/svc/exit.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !exit.exists() {
        assert!(Instant::now() < deadline, "the shim recorded no exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    h.spawn();
    let svc = wait_for(&h, &c, "svc", "restarted after the daemon came back", |j| {
        j.restarts == 1 && j.state == JobState::Running
    });
    assert_ne!(svc.pid, Some(pid.as_raw()));
    // Running is before the restarted shell's `echo` reaches the log: wait for its line.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = log_lines(&h, &c, "svc");
        if lines.len() >= 2 {
            assert_eq!(lines, ["up", "up"]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted job logged {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    h.ok(&["rm", "-f", "svc"]);
}
