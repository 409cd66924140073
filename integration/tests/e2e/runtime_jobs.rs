//! Jobs started by the runtime from pinkerton images, checked from inside the job.

use integration::root_test;
use std::time::Duration;

use integration::jobs::{self, Jobs};
use runtime::log::Stream;

#[root_test(isolated)]
fn a_job_runs_captures_output_and_reports_its_exit_code() {
    let j = Jobs::new();
    let spec = j.sh(
        "hello-job",
        "echo out; echo err >&2; hostname; echo pid=$$; printf tail; exit 3",
    );
    j.rt.create(&spec).unwrap();
    let status = j.rt.wait("hello-job", Duration::from_secs(30)).unwrap();
    assert_eq!(
        (status.code, status.signal, status.oom_killed),
        (Some(3), None, false)
    );
    let logs = j.rt.logs("hello-job").unwrap();
    let text: Vec<(Stream, &str, bool)> = logs
        .iter()
        .map(|l| (l.stream, l.line.as_str(), l.partial))
        .collect();
    assert!(text.contains(&(Stream::Stdout, "out", false)), "{text:?}");
    assert!(text.contains(&(Stream::Stderr, "err", false)), "{text:?}");
    assert!(
        text.contains(&(Stream::Stdout, "hello-job", false)),
        "hostname: {text:?}"
    );
    assert!(
        text.contains(&(Stream::Stdout, "pid=1", false)),
        "pid 1: {text:?}"
    );
    assert!(
        text.contains(&(Stream::Stdout, "tail", true)),
        "unterminated output kept: {text:?}"
    );
    j.rt.delete("hello-job").unwrap();
    assert!(!j.root().join("hello-job").exists());
}

#[root_test(isolated)]
fn limits_are_visible_from_inside_the_job() {
    let j = Jobs::new();
    let mut spec = j.sh(
        "limits",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
         cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
         cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max; \
         cat /sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || cat /sys/fs/cgroup/cpu.weight; \
         ulimit -n",
    );
    spec.config.resources = runtime::Resources {
        memory: Some(64 << 20),
        pids: Some(50),
        cpu_millis: Some(500),
        cpu_shares: Some(512),
        nofile: Some(1000),
    };
    let (status, out) = j.output(&spec);
    assert_eq!(status.code, Some(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], (64u64 << 20).to_string(), "memory: {out}");
    assert_eq!(lines[1], "50", "pids: {out}");
    assert!(
        lines[2] == "50000" || lines[2] == "50000 100000",
        "cpu quota: {out}"
    );
    assert_eq!(lines[4], "1000", "nofile: {out}");
}

#[root_test(isolated)]
fn a_job_over_its_memory_limit_is_oom_killed() {
    let j = Jobs::new();
    let mut spec = j.sh(
        "oom",
        "x=$(dd if=/dev/zero bs=1M count=128 2>/dev/null | tr '\\0' a); echo survived",
    );
    spec.config.resources.memory = Some(16 << 20);
    let (status, out) = j.output(&spec);
    assert!(
        status.oom_killed,
        "not reported as OOM-killed: {status:?} {out}"
    );
    assert!(!out.contains("survived"));
}

#[root_test(isolated)]
fn security_defaults_hold_inside_the_job() {
    let j = Jobs::new();
    let spec = j.sh(
        "secure",
        "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
         echo timer_list=$(wc -c < /proc/timer_list); \
         echo kcore=$(head -c 16 /dev/kcore 2>/dev/null | wc -c); \
         mount -t tmpfs none /mnt 2>/dev/null; echo mount=$?; \
         unshare -U true 2>/dev/null; echo unshare=$?; \
         (echo x > /proc/sysrq-trigger) 2>/dev/null && echo sysrq=writable || echo sysrq=refused; \
         ls /dev | tr '\\n' ' '",
    );
    let (status, out) = j.output(&spec);
    assert_eq!(status.code, Some(0), "{out}");
    assert!(out.contains("CapEff:\t00000000a80405fb"), "{out}");
    assert!(out.contains("CapBnd:\t00000000a80405fb"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // The host's /proc/timer_list has content (this kernel has no /proc/kcore to check).
    assert!(!std::fs::read_to_string("/proc/timer_list")
        .unwrap()
        .is_empty());
    assert!(out.contains("timer_list=0"), "masked: {out}");
    // Where the kernel has /proc/kcore, /dev/kcore links to it: masked, it reads nothing.
    assert!(out.contains("kcore=0"), "masked: {out}");
    assert!(
        !out.contains("mount=0") && !out.contains("unshare=0"),
        "{out}"
    );
    assert!(
        out.contains("sysrq=refused"),
        "read-only /proc paths: {out}"
    );
    let devs = out.lines().last().unwrap();
    for d in devs.split_whitespace() {
        assert!(
            [
                "console", "core", "kcore", "fd", "full", "mqueue", "null", "ptmx", "pts",
                "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"
            ]
            .contains(&d),
            "unexpected /dev/{d}: {devs}"
        );
    }
}

#[root_test(isolated)]
fn jobs_cannot_see_each_other() {
    let j = Jobs::new();
    let a = j.sh("iso-a", "echo secret > /tmp/secret; exec sleep 1000");
    j.rt.create(&a).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let b = j.sh(
        "iso-b",
        "ps -o comm | tr '\\n' ' '; echo; ls /tmp/secret 2>&1; true",
    );
    let (_, out) = j.output(&b);
    assert!(
        !out.contains("sleep"),
        "sees the other job's processes: {out}"
    );
    j.rt.stop("iso-a", Duration::from_millis(100)).unwrap();
    j.rt.delete("iso-a").unwrap();
    let logs = j.rt.logs("iso-b").err();
    assert!(logs.is_some(), "deleted job is gone");
}

#[root_test(isolated)]
fn stop_escalates_and_signals_are_delivered() {
    let j = Jobs::new();
    // PID 1 ignores SIGTERM without a handler: stop must end in SIGKILL.
    j.rt.create(&j.sh("stubborn", "sleep 1000")).unwrap();
    let s = j.rt.stop("stubborn", Duration::from_millis(300)).unwrap();
    assert_eq!(s.signal, Some(9), "{s:?}");
    j.rt.delete("stubborn").unwrap();

    let script = "trap 'echo usr1' USR1; trap 'echo term; exit 7' TERM; echo ready; while true; do sleep 0.05; done";
    j.rt.create(&j.sh("polite", script)).unwrap();
    let logged = |line: &str| j.rt.logs("polite").unwrap().iter().any(|l| l.line == line);
    let limit = Duration::from_secs(60);
    integration::wait_for("polite to be ready", limit, || logged("ready"));
    j.rt.signal("polite", nix::sys::signal::Signal::SIGUSR1)
        .unwrap();
    integration::wait_for("polite to handle SIGUSR1", limit, || logged("usr1"));
    // A suspended job still gets to handle SIGTERM (SIGCONT follows it): exit 7 from the
    // trap, not SIGKILL after the two-minute grace.
    j.rt.signal("polite", nix::sys::signal::Signal::SIGSTOP)
        .unwrap();
    let s = j.rt.stop("polite", Duration::from_secs(120)).unwrap();
    assert_eq!(s.code, Some(7), "{s:?}");
    let lines: Vec<String> =
        j.rt.logs("polite")
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect();
    assert!(
        lines.contains(&"usr1".to_string()) && lines.contains(&"term".to_string()),
        "{lines:?}"
    );
    assert!(matches!(
        j.rt.delete("nosuchjob"),
        Err(runtime::RuntimeError::NoSuchJob(_))
    ));
    j.rt.delete("polite").unwrap();
}

#[root_test(isolated)]
fn an_init_forwards_stop_signals_reaps_orphans_and_passes_exit_codes() {
    let j = Jobs::new();
    // A program with no SIGTERM handler, which as PID 1 would ignore the stop until SIGKILL
    // after the whole grace: under the init it gets SIGTERM and ends (tini: 128 + 15).
    let mut spec = j.sh("stubborn", "exec sleep 1000");
    spec.config.init = true;
    j.rt.create(&spec).unwrap();
    let s = j.rt.stop("stubborn", Duration::from_secs(120)).unwrap();
    assert_eq!((s.code, s.signal), (Some(143), None), "{s:?}");
    j.rt.delete("stubborn").unwrap();

    // PID 1 is the init; an orphan (the subshell's `sleep` outlives its parent) is reaped by
    // it, so no zombie is left; the command's exit code is the job's.
    let script = "tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/1/comm; (sleep 0.2 &); sleep 1; \
                  echo zombies=$(grep -l '^State:.Z' /proc/[0-9]*/status 2>/dev/null | wc -l); exit 3";
    let mut spec = j.sh("reaper", script);
    spec.config.init = true;
    let (status, lines) = j.run(&spec);
    assert_eq!(status.code, Some(3), "{status:?} {lines:?}");
    assert!(lines[0].starts_with("/dev/init -- /bin/sh -c"), "{lines:?}");
    // What the start waits for (with SIGTERM blocked) before a stop can be sent.
    assert_eq!(lines[1], "init", "{lines:?}");
    assert!(lines.contains(&"zombies=0".to_string()), "{lines:?}");

    // A host without the init binary refuses the job and keeps no record of it.
    let rt = j.rt.clone().with_init("/nonexistent/tini-static");
    let mut spec = j.sh("noinit", "true");
    spec.config.init = true;
    let err = rt.create(&spec).unwrap_err().to_string();
    assert!(
        err.contains("/nonexistent/tini-static") && err.contains("tini"),
        "{err}"
    );
    assert!(!rt.list().unwrap().iter().any(|id| id.as_str() == "noinit"));
}

#[root_test(isolated)]
fn fast_output_loses_nothing() {
    let j = Jobs::new();
    let (status, lines) = j.run(&j.sh("flood", "seq 1 200000; seq 1 1000 >&2"));
    assert_eq!(status.code, Some(0));
    assert_eq!(lines.len(), 200000);
    assert!(
        lines
            .iter()
            .enumerate()
            .all(|(i, l)| l == &(i + 1).to_string()),
        "out of order or changed"
    );
}

#[root_test(isolated)]
fn bind_mounts_users_and_readonly_rootfs() {
    let j = Jobs::new();
    let data = j.pinkerton.scratch().join("data");
    std::fs::create_dir(&data).unwrap();
    let mount = |readonly| runtime::spec::BindMount {
        source: data.display().to_string(),
        target: "/data".into(),
        readonly,
    };
    let mut w = j.sh("writer", "echo kept > /data/file");
    w.config.mounts = vec![mount(false)];
    assert_eq!(j.run(&w).0.code, Some(0));
    assert_eq!(
        std::fs::read_to_string(data.join("file")).unwrap(),
        "kept\n"
    );
    let mut r = j.sh(
        "reader",
        "cat /data/file; echo x > /data/other 2>/dev/null; echo write=$?",
    );
    r.config.mounts = vec![mount(true)];
    let (_, out) = j.output(&r);
    assert!(out.starts_with("kept") && !out.contains("write=0"), "{out}");

    let mut u = j.sh("as-nobody", "id -u; id -g; echo $HOME");
    u.config.user = Some("nobody".into());
    assert_eq!(j.output(&u).1, "65534\n65534\n/");
    let mut bad = j.sh("no-user", "true");
    bad.config.user = Some("nosuchuser".into());
    let err = j.rt.create(&bad).unwrap_err().to_string();
    assert!(err.contains("nosuchuser"), "{err}");
    assert!(
        !j.root().join("no-user").exists(),
        "a failed create leaves nothing"
    );

    let mut ro = j.sh("ro", "touch /newfile 2>/dev/null; echo touch=$?");
    ro.config.readonly_rootfs = true;
    assert!(!j.output(&ro).1.contains("touch=0"));
    // The writable upper dir is per job: a file written by one job is not in the next.
    assert_eq!(j.run(&j.sh("w1", "echo a > /root/f")).0.code, Some(0));
    assert_eq!(j.output(&j.sh("w2", "ls /root/f 2>/dev/null; true")).1, "");
}

#[root_test(isolated)]
fn two_hundred_jobs_leave_nothing_behind() {
    let j = Jobs::new();
    let before_mounts = integration::leaks::mount_count();
    for i in 0..200 {
        let mut spec = j.sh(&format!("leak-{i}"), "true");
        spec.config.resources.memory = Some(32 << 20);
        spec.config.resources.pids = Some(10);
        spec.config.ports = vec![jobs::port(0, 80)];
        let (status, _) = j.run(&spec);
        assert_eq!(status.code, Some(0));
    }
    let root = j.root().parent().unwrap();
    integration::leaks::assert_clean(root, runtime::job::CGROUP_PARENT, "leak-", before_mounts);
}

#[root_test(isolated)]
fn volumes_outlive_jobs_and_attach_to_later_ones() {
    let j = Jobs::new();
    j.rt.volumes().create("pgdata").unwrap();
    let vol = |readonly| runtime::volume::VolumeMount {
        name: "pgdata".into(),
        target: "/var/lib/data".into(),
        readonly,
    };
    let mut first = j.sh("vol-1", "echo generation-1 > /var/lib/data/marker");
    first.config.volumes = vec![vol(false)];
    assert_eq!(j.run(&first).0.code, Some(0));
    let mut second = j.sh("vol-2", "cat /var/lib/data/marker");
    second.config.volumes = vec![vol(true)];
    j.rt.create(&second).unwrap();
    j.rt.wait("vol-2", Duration::from_secs(30)).unwrap();
    let err = j.rt.delete_volume("pgdata").unwrap_err().to_string();
    assert!(err.contains("used by job vol-2"), "{err}");
    let out: Vec<String> =
        j.rt.logs("vol-2")
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect();
    assert_eq!(out, ["generation-1"]);
    j.rt.delete("vol-2").unwrap();
    j.rt.delete_volume("pgdata").unwrap();
    let mut missing = j.sh("vol-3", "true");
    missing.config.volumes = vec![vol(false)];
    let err = j.rt.create(&missing).unwrap_err().to_string();
    assert!(err.contains("no such volume: pgdata"), "{err}");
}

#[root_test(isolated)]
fn jobs_start_safely_from_a_busy_multithreaded_runtime() {
    let j = Jobs::new();
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    tokio_rt.block_on(async {
        // Busy workers that take the environment lock all the time.
        for _ in 0..4 {
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = std::env::var("PATH");
                    tokio::task::yield_now().await;
                }
            });
        }
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let rt = j.rt.clone();
                let spec = j.sh(&format!("busy-{i}"), "echo ok");
                tokio::task::spawn_blocking(move || {
                    rt.create(&spec)?;
                    let status = rt.wait(spec.id.as_str(), Duration::from_secs(60))?;
                    let out = rt.logs(spec.id.as_str())?;
                    rt.delete(spec.id.as_str())?;
                    Ok::<_, runtime::RuntimeError>((status, out))
                })
            })
            .collect();
        for t in tasks {
            let (status, out) = t.await.unwrap().unwrap();
            assert_eq!(status.code, Some(0));
            assert_eq!(out.len(), 1);
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(j.rt.network().ipam().leases().unwrap().is_empty());
}

#[root_test(isolated)]
fn running_jobs_leave_the_host_mount_table_as_it_was() {
    let j = Jobs::new();
    let mountinfo = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let before = mountinfo().lines().count();
    let mut pids = Vec::new();
    for i in 0..3 {
        let mut spec = j.sh(
            &format!("mnt-{i}"),
            &format!("echo {i} > /written; exec sleep 1000"),
        );
        if i == 0 {
            spec.config.network = runtime::spec::NetworkMode::None;
        }
        pids.push(j.rt.create(&spec).unwrap());
    }
    // Each job's root filesystem is mounted in its own namespace only, and a bridged job's
    // network namespace is held by its processes, not by a pin in the host's table.
    let during = mountinfo();
    assert_eq!(during.lines().count(), before, "{during}");
    assert!(!during.contains("/rootfs "), "{during}");
    assert!(!during.contains("nsfs"), "{during}");
    for (i, pid) in pids.iter().enumerate() {
        let root = format!("/proc/{pid}/root");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let written = loop {
            match std::fs::read_to_string(format!("{root}/written")) {
                Ok(w) if !w.is_empty() => break w,
                _ if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                other => panic!("job mnt-{i} wrote nothing: {other:?}"),
            }
        };
        assert_eq!(written.trim(), i.to_string());
        assert!(std::path::Path::new(&format!("{root}/bin/sh")).exists());
        if i > 0 {
            // The unpinned namespace lives on with the job: its default route is there.
            let routes = std::fs::read_to_string(format!("/proc/{pid}/net/route")).unwrap();
            assert!(routes.contains("eth0\t00000000"), "{routes}");
        }
    }
    for i in 0..3 {
        let id = format!("mnt-{i}");
        j.rt.stop(&id, Duration::from_millis(100)).unwrap();
        j.rt.delete(&id).unwrap();
    }
    assert_eq!(mountinfo().lines().count(), before);
    let left = integration::leaks::job_veths_gone_within(Duration::from_secs(10));
    assert!(left.is_empty(), "veths left: {left:?}");
}

#[root_test(isolated)]
fn an_image_without_mount_points_runs_and_its_job_makes_none_of_them() {
    use integration::image::{Compression, Layer, OciLayout};
    let j = Jobs::new();
    // As a scratch image is: a static binary and nothing else, no /dev, /proc or /sys.
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let layer = Layer::new()
        .dir("bin", 0o755)
        .file("bin/busybox", &busybox, 0o755)
        .symlink("bin/sh", "busybox")
        .build(Compression::Gzip);
    let dir = j.pinkerton.scratch().join("scratch-layout");
    let mut layout = OciLayout::new(&dir);
    layout.add_image("s", &[layer], serde_json::json!({"Env": ["PATH=/bin"]}));
    let image = "localhost/test/scratch:v1";
    j.pinkerton
        .ok(&["import", "--tag", image, dir.join("").to_str().unwrap()]);
    let script = "busybox test -r /proc/self/status && busybox test -c /dev/null \
                  && busybox test -d /sys/kernel && echo mounted; busybox sleep 30";
    let mut spec = runtime::JobSpec::new(
        "bare".parse().unwrap(),
        image,
        vec!["/bin/sh".into(), "-c".into(), script.into()],
    );
    // No bridge: its /etc/resolv.conf, hosts and hostname are bind mounts a job of an image
    // without /etc makes.
    spec.config.network = runtime::NetworkMode::None;
    j.rt.create(&spec).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !j
        .rt
        .logs("bare")
        .unwrap()
        .iter()
        .any(|l| l.line == "mounted")
    {
        let state = j.rt.state("bare").unwrap();
        assert!(
            matches!(state, runtime::JobState::Running(_)),
            "{state:?}: {:?}",
            j.rt.logs("bare").unwrap()
        );
        assert!(std::time::Instant::now() < deadline, "no output");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The mount points come from the runtime's shared bottom layer, not the job's upper.
    let upper: Vec<_> = std::fs::read_dir(j.root().join("bare/upper"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        upper.is_empty(),
        "made in the job's upper directory: {upper:?}"
    );
    j.rt.stop("bare", Duration::from_millis(100)).unwrap();
    j.rt.delete("bare").unwrap();
}
