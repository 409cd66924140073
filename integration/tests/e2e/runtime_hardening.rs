//! A job must not lift its own limits, keep cgroups past its end, or hold privileges it did
//! not ask for; checked from inside the job, as an attacker in it would try.

use integration::root_test;
use std::time::Duration;

use integration::jobs::Jobs;
use runtime::oci::SpecError;
use runtime::RuntimeError;

#[root_test(isolated)]
fn a_job_cannot_raise_its_limits_or_make_cgroups() {
    let j = Jobs::new();
    // Every write must fail; the values read afterwards must be the ones the job was given.
    let mut spec = j.sh(
        "raise",
        "cd /sys/fs/cgroup; \
         for f in pids/pids.max pids.max; do [ -e $f ] && { echo max > $f && echo wrote=$f; }; done; \
         for f in memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes memory.max; do \
           [ -e $f ] && { echo -1 > $f && echo wrote=$f; }; done; \
         for f in cpu/cpu.cfs_quota_us cpu.max; do [ -e $f ] && { echo -1 > $f && echo wrote=$f; }; done; \
         mkdir pids/sub 2>/dev/null && echo made=pids/sub; mkdir sub 2>/dev/null && echo made=sub; \
         cat pids/pids.max 2>/dev/null || cat pids.max; \
         cat memory/memory.limit_in_bytes 2>/dev/null || cat memory.max; \
         echo mounts=$(grep -c ' /sys/fs/cgroup ' /proc/self/mountinfo); \
         grep ' /sys/fs/cgroup' /proc/self/mountinfo | grep -v ' ro,' | sed 's/^/rw=/'; true",
    );
    spec.config.resources = runtime::Resources {
        memory: Some(64 << 20),
        pids: Some(50),
        cpu_millis: Some(500),
        ..Default::default()
    };
    let (status, out) = j.output(&spec);
    assert_eq!(status.code, Some(0), "{out}");
    assert!(!out.contains("wrote=") && !out.contains("made="), "{out}");
    assert!(out.lines().any(|l| l == "50"), "pids limit kept: {out}");
    assert!(
        out.lines().any(|l| l == (64u64 << 20).to_string()),
        "memory limit kept: {out}"
    );
    assert!(
        out.contains("mounts=1"),
        "/sys/fs/cgroup mounted once: {out}"
    );
    assert!(!out.contains("rw="), "every cgroup mount read-only: {out}");
}

#[root_test(isolated)]
fn cgroups_below_a_job_are_removed_with_it() {
    let j = Jobs::new();
    let spec = j.sh("nested", "sleep 30");
    j.rt.create(&spec).unwrap();
    // A cgroup below the job's, with a process in it, as a job that got hold of a writable
    // hierarchy (or a delegated cgroup v2 subtree) would leave behind.
    let cg = j.rt.cgroup_path(&spec.id);
    let pids_dir = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
        .iter()
        .map(|root| std::path::Path::new(root).join(cg.trim_start_matches('/')))
        .find(|d| d.join("cgroup.procs").exists())
        .expect("the job's cgroup");
    let sub = pids_dir.join("made-by-job/deeper");
    std::fs::create_dir_all(&sub).unwrap();
    let pid = std::fs::read_to_string(pids_dir.join("cgroup.procs")).unwrap();
    let pid = pid.lines().last().unwrap().to_string();
    std::fs::write(sub.join("cgroup.procs"), &pid).unwrap();
    j.rt.stop("nested", Duration::from_secs(1)).unwrap();
    j.rt.delete("nested").unwrap();
    assert!(!pids_dir.exists(), "{} is left", pids_dir.display());
}

#[root_test(isolated)]
fn raw_sockets_only_when_asked_and_missing_working_dirs_are_made() {
    let j = Jobs::new();
    let caps = "grep CapEff /proc/self/status; pwd";
    let mut spec = j.sh("caps", caps);
    spec.config.working_dir = Some("/srv/app/new".into());
    let (_, out) = j.output(&spec);
    // CAP_NET_RAW is bit 13.
    assert!(out.contains("CapEff:\t00000000a80405fb"), "{out}");
    assert!(out.contains("/srv/app/new"), "{out}");
    let mut spec = j.sh("caps-raw", caps);
    spec.config.net_raw = true;
    let (_, out) = j.output(&spec);
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    let mut spec = j.sh("cwd-file", "pwd");
    spec.config.working_dir = Some("/bin/busybox".into());
    match j.rt.create(&spec) {
        Err(RuntimeError::Spec(SpecError::WorkingDir { path, .. })) => {
            assert_eq!(path, "/bin/busybox")
        }
        other => panic!("expected a working directory error, got {other:?}"),
    }
    assert!(
        j.rt.list().unwrap().is_empty(),
        "nothing left of the refused job"
    );
}

#[root_test(isolated)]
fn pinkerton_never_deletes_layers_under_a_running_job() {
    let j = Jobs::new();
    j.rt.create(&j.sh("reader", "sleep 30")).unwrap();
    // The store is shared with the runtime; the CLI is another process.
    let err = j.pinkerton.fails(&["rm", &j.image]);
    assert!(err.contains("in use by") && err.contains("reader"), "{err}");
    j.pinkerton.ok(&["gc"]);
    let layers = j.pinkerton.store().join("layers/sha256");
    assert!(
        std::fs::read_dir(&layers).unwrap().count() > 0,
        "gc kept the job's layers"
    );
    j.rt.stop("reader", Duration::from_millis(100)).unwrap();
    j.rt.delete("reader").unwrap();
    j.pinkerton.ok(&["rm", &j.image]);
    assert_eq!(std::fs::read_dir(&layers).unwrap().count(), 0);
}
