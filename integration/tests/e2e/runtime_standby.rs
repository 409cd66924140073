//! Standby shims: a shim started ahead of its job takes the next job, serves it as a shim
//! started for it would, and ends with its runtime; a dead one is passed over.

use integration::root_test;
use std::time::{Duration, Instant};

use integration::jobs::Jobs;
use runtime::JobState;

/// Waits (up to 30 s) for the runtime's standby shim to be ready; its pid.
fn standby(j: &Jobs) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = j.rt.standby_shim() {
            return pid;
        }
        assert!(Instant::now() < deadline, "no standby shim was started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

/// Waits (up to 30 s) for `pid` to end.
fn ends(pid: i32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) {
        assert!(Instant::now() < deadline, "{what}: {pid} still runs");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn lines(j: &Jobs, id: &str) -> Vec<String> {
    j.rt.logs(id).unwrap().into_iter().map(|l| l.line).collect()
}

fn shim_pid(j: &Jobs, id: &str) -> i32 {
    j.rt.shim_pid(id).unwrap().expect("the job's shim pid")
}

#[root_test(isolated)]
fn a_standby_shim_serves_the_next_job_and_ends_with_its_runtime() {
    let j = Jobs::new();
    let before_mounts = integration::leaks::mount_count();
    let root = j.root().parent().unwrap().to_path_buf();

    // The runtime (as the daemon's) starts a standby at once.
    let waiting = standby(&j);
    let cmdline = std::fs::read(format!("/proc/{waiting}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).ends_with("--standby\0"),
        "{cmdline:?}"
    );

    // The next job is handed to it: output, stdin, state, stop and delete as usual.
    let mut spec = j.sh(
        "sb-job",
        "echo to-stdout; echo to-stderr >&2; exec sleep 30",
    );
    spec.config.stdin = true;
    let pid = j.rt.create(&spec).unwrap();
    assert_eq!(shim_pid(&j, "sb-job"), waiting, "the standby took the job");
    assert!(
        j.rt.shim_running("sb-job").unwrap(),
        "its shim is recognised"
    );
    assert_eq!(j.rt.state("sb-job").unwrap(), JobState::Running(pid));
    let deadline = Instant::now() + Duration::from_secs(30);
    while j.rt.logs("sb-job").unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "{:?}", j.rt.logs("sb-job"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = lines(&j, "sb-job");
    assert!(
        out.contains(&"to-stdout".into()) && out.contains(&"to-stderr".into()),
        "{out:?}"
    );
    j.rt.stop("sb-job", Duration::from_millis(100)).unwrap();
    j.rt.delete("sb-job").unwrap();
    ends(waiting, "the job's shim, after its job was deleted");

    // A standby killed while it waits is passed over: the job starts a shim of its own.
    let next = standby(&j);
    assert_ne!(next, waiting);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(next),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    ends(next, "the killed standby");
    // Running while its shim is looked at (a job that exits at once takes its shim along).
    j.rt.create(&j.sh("sb-third", "echo third; exec sleep 30"))
        .unwrap();
    let own = shim_pid(&j, "sb-third");
    assert_ne!(own, next);
    let cmdline = std::fs::read(format!("/proc/{own}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("/sb-third\0"),
        "a shim started for the job: {cmdline:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines(&j, "sb-third").is_empty() {
        assert!(Instant::now() < deadline, "no output from sb-third");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(lines(&j, "sb-third"), ["third"]);
    j.rt.stop("sb-third", Duration::from_millis(100)).unwrap();
    j.rt.delete("sb-third").unwrap();
    ends(own, "sb-third's shim, after its job was deleted");

    // A waiting standby serves no job; dropping the runtime closes its pipe, and it ends.
    let last = standby(&j);
    integration::leaks::assert_clean(&root, runtime::job::CGROUP_PARENT, "sb-", before_mounts);
    drop(j);
    ends(last, "the standby, once its runtime was dropped");
}
