//! Jobs started by the runtime from pinkerton images, checked from inside the job.

use std::time::Duration;

use integration::jobs::Jobs;
use integration::{ns, require_root};
use runtime::log::Stream;

fn setup(test: &str) -> Option<Jobs> {
    if !require_root(test) || !ns::isolated(test) {
        return None;
    }
    Some(Jobs::new())
}

#[test]
fn a_job_runs_captures_output_and_reports_its_exit_code() {
    let Some(j) = setup("a_job_runs_captures_output_and_reports_its_exit_code") else {
        return;
    };
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

fn stdout_of(j: &Jobs, spec: &runtime::JobSpec) -> (runtime::ExitStatus, String) {
    let (status, lines) = j.run(spec);
    (status, lines.join("\n"))
}

#[test]
fn limits_are_visible_from_inside_the_job() {
    let Some(j) = setup("limits_are_visible_from_inside_the_job") else {
        return;
    };
    let mut spec = j.sh(
        "limits",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
         cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
         cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max; \
         cat /sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || cat /sys/fs/cgroup/cpu.weight; \
         ulimit -n",
    );
    spec.resources = runtime::Resources {
        memory: Some(64 << 20),
        pids: Some(50),
        cpu_millis: Some(500),
        cpu_shares: Some(512),
        nofile: Some(1000),
    };
    let (status, out) = stdout_of(&j, &spec);
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

#[test]
fn a_job_over_its_memory_limit_is_oom_killed() {
    let Some(j) = setup("a_job_over_its_memory_limit_is_oom_killed") else {
        return;
    };
    let mut spec = j.sh(
        "oom",
        "x=$(dd if=/dev/zero bs=1M count=128 2>/dev/null | tr '\\0' a); echo survived",
    );
    spec.resources.memory = Some(16 << 20);
    let (status, out) = stdout_of(&j, &spec);
    assert!(
        status.oom_killed,
        "not reported as OOM-killed: {status:?} {out}"
    );
    assert!(!out.contains("survived"));
}

#[test]
fn security_defaults_hold_inside_the_job() {
    let Some(j) = setup("security_defaults_hold_inside_the_job") else {
        return;
    };
    let spec = j.sh(
        "secure",
        "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
         echo timer_list=$(wc -c < /proc/timer_list); \
         mount -t tmpfs none /mnt 2>/dev/null; echo mount=$?; \
         unshare -U true 2>/dev/null; echo unshare=$?; \
         (echo x > /proc/sysrq-trigger) 2>/dev/null && echo sysrq=writable || echo sysrq=refused; \
         ls /dev | tr '\\n' ' '",
    );
    let (status, out) = stdout_of(&j, &spec);
    assert_eq!(status.code, Some(0), "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // The host's /proc/timer_list has content (this kernel has no /proc/kcore to check).
    assert!(!std::fs::read_to_string("/proc/timer_list")
        .unwrap()
        .is_empty());
    assert!(out.contains("timer_list=0"), "masked: {out}");
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
                "console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm",
                "stderr", "stdin", "stdout", "tty", "urandom", "zero"
            ]
            .contains(&d),
            "unexpected /dev/{d}: {devs}"
        );
    }
}

#[test]
fn jobs_cannot_see_each_other() {
    let Some(j) = setup("jobs_cannot_see_each_other") else {
        return;
    };
    let a = j.sh("iso-a", "echo secret > /tmp/secret; exec sleep 1000");
    j.rt.create(&a).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let b = j.sh(
        "iso-b",
        "ps -o comm | tr '\\n' ' '; echo; ls /tmp/secret 2>&1; true",
    );
    let (_, out) = stdout_of(&j, &b);
    assert!(
        !out.contains("sleep"),
        "sees the other job's processes: {out}"
    );
    j.rt.stop("iso-a", Duration::from_millis(100)).unwrap();
    j.rt.delete("iso-a").unwrap();
    let logs = j.rt.logs("iso-b").err();
    assert!(logs.is_some(), "deleted job is gone");
}

#[test]
fn stop_escalates_and_signals_are_delivered() {
    let Some(j) = setup("stop_escalates_and_signals_are_delivered") else {
        return;
    };
    // PID 1 ignores SIGTERM without a handler: stop must end in SIGKILL.
    j.rt.create(&j.sh("stubborn", "sleep 1000")).unwrap();
    let s = j.rt.stop("stubborn", Duration::from_millis(300)).unwrap();
    assert_eq!(s.signal, Some(9), "{s:?}");
    j.rt.delete("stubborn").unwrap();

    let script = "trap 'echo usr1' USR1; trap 'echo term; exit 7' TERM; echo ready; while true; do sleep 0.05; done";
    j.rt.create(&j.sh("polite", script)).unwrap();
    let ready = || {
        j.rt.logs("polite")
            .unwrap()
            .iter()
            .any(|l| l.line == "ready")
    };
    while !ready() {
        std::thread::sleep(Duration::from_millis(10));
    }
    j.rt.signal("polite", nix::sys::signal::Signal::SIGUSR1)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let s = j.rt.stop("polite", Duration::from_secs(10)).unwrap();
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

#[test]
fn fast_output_loses_nothing() {
    let Some(j) = setup("fast_output_loses_nothing") else {
        return;
    };
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

#[test]
fn network_modes_none_and_host() {
    let Some(j) = setup("network_modes_none_and_host") else {
        return;
    };
    let link = [
        "link",
        "add",
        "flynntest0",
        "type",
        "veth",
        "peer",
        "name",
        "flynntest1",
    ];
    integration::run_ok(std::process::Command::new("ip").args(link));
    let mut none = j.sh(
        "net-none",
        "ls /sys/class/net | tr '\\n' ' '; cat /sys/class/net/lo/flags",
    );
    none.network = runtime::NetworkMode::None;
    let (_, none) = stdout_of(&j, &none);
    assert_eq!(none, "lo 0x9", "only loopback, up");
    let mut host = j.sh("net-host", "ls /sys/class/net | tr '\\n' ' '");
    host.network = runtime::NetworkMode::Host;
    let (_, out) = stdout_of(&j, &host);
    assert!(
        out.contains("flynntest0"),
        "host mode shares the host's links: {out}"
    );
}

#[test]
fn bind_mounts_users_and_readonly_rootfs() {
    let Some(j) = setup("bind_mounts_users_and_readonly_rootfs") else {
        return;
    };
    let data = j.pinkerton.scratch().join("data");
    std::fs::create_dir(&data).unwrap();
    let mount = |readonly| runtime::spec::BindMount {
        source: data.display().to_string(),
        target: "/data".into(),
        readonly,
    };
    let mut w = j.sh("writer", "echo kept > /data/file");
    w.mounts = vec![mount(false)];
    assert_eq!(j.run(&w).0.code, Some(0));
    assert_eq!(
        std::fs::read_to_string(data.join("file")).unwrap(),
        "kept\n"
    );
    let mut r = j.sh(
        "reader",
        "cat /data/file; echo x > /data/other 2>/dev/null; echo write=$?",
    );
    r.mounts = vec![mount(true)];
    let (_, out) = stdout_of(&j, &r);
    assert!(out.starts_with("kept") && !out.contains("write=0"), "{out}");

    let mut u = j.sh("as-nobody", "id -u; id -g; echo $HOME");
    u.user = Some("nobody".into());
    assert_eq!(stdout_of(&j, &u).1, "65534\n65534\n/");
    let mut bad = j.sh("no-user", "true");
    bad.user = Some("nosuchuser".into());
    let err = j.rt.create(&bad).unwrap_err().to_string();
    assert!(err.contains("nosuchuser"), "{err}");
    assert!(
        !j.root().join("no-user").exists(),
        "a failed create leaves nothing"
    );

    let mut ro = j.sh("ro", "touch /newfile 2>/dev/null; echo touch=$?");
    ro.readonly_rootfs = true;
    assert!(!stdout_of(&j, &ro).1.contains("touch=0"));
    // The writable upper dir is per job: a file written by one job is not in the next.
    assert_eq!(j.run(&j.sh("w1", "echo a > /root/f")).0.code, Some(0));
    assert_eq!(
        stdout_of(&j, &j.sh("w2", "ls /root/f 2>/dev/null; true")).1,
        ""
    );
}

#[test]
fn two_hundred_jobs_leave_nothing_behind() {
    let Some(j) = setup("two_hundred_jobs_leave_nothing_behind") else {
        return;
    };
    let before_mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    for i in 0..200 {
        let mut spec = j.sh(&format!("leak-{i}"), "true");
        spec.resources.memory = Some(32 << 20);
        spec.resources.pids = Some(10);
        spec.ports = vec![port(0, 80)];
        let (status, _) = j.run(&spec);
        assert_eq!(status.code, Some(0));
    }
    let after_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(after_mounts.lines().count(), before_mounts, "mounts leaked");
    assert!(!after_mounts.contains(&j.root().display().to_string()));
    let left: Vec<_> = std::fs::read_dir(j.root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "job dirs leaked: {left:?}");
    let mut leaked = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap() {
        let dir = h.unwrap().path().join("flynn");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            leaked.extend(
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().contains("leak-")),
            );
        }
    }
    assert!(leaked.is_empty(), "cgroups leaked: {leaked:?}");
    let root = j.root().display().to_string();
    let shims: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("flynn-shim") && c.contains(&root))
        .collect();
    assert!(shims.is_empty(), "shims left running: {shims:?}");
    let links = integration::run_ok(std::process::Command::new("ip").args(["-o", "link"]));
    let veths: Vec<&str> = links
        .lines()
        .filter(|l| l.contains(": fl") && !l.contains("flynnbr0"))
        .collect();
    assert!(veths.is_empty(), "veths leaked: {veths:?}");
    assert!(
        j.rt.network().ipam().leases().unwrap().is_empty(),
        "leases leaked"
    );
    let nat = runtime::net::nat::rules("nat").unwrap();
    assert!(
        !nat.iter().any(|r| r.contains("DNAT --to-destination")),
        "port rules leaked: {nat:?}"
    );
}

#[test]
fn volumes_outlive_jobs_and_attach_to_later_ones() {
    let Some(j) = setup("volumes_outlive_jobs_and_attach_to_later_ones") else {
        return;
    };
    j.rt.volumes().create("pgdata").unwrap();
    let vol = |readonly| runtime::volume::VolumeMount {
        name: "pgdata".into(),
        target: "/var/lib/data".into(),
        readonly,
    };
    let mut first = j.sh("vol-1", "echo generation-1 > /var/lib/data/marker");
    first.volumes = vec![vol(false)];
    assert_eq!(j.run(&first).0.code, Some(0));
    let mut second = j.sh("vol-2", "cat /var/lib/data/marker");
    second.volumes = vec![vol(true)];
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
    missing.volumes = vec![vol(false)];
    let err = j.rt.create(&missing).unwrap_err().to_string();
    assert!(err.contains("no such volume: pgdata"), "{err}");
}

fn curl(url: &str) -> Option<String> {
    let out = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "2", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn curl_until(url: &str) -> String {
    for _ in 0..100 {
        if let Some(body) = curl(url) {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{url} never answered");
}

fn port(host: u16, job: u16) -> runtime::net::PortMap {
    runtime::net::PortMap {
        host,
        job,
        proto: "tcp".into(),
    }
}

#[test]
fn bridge_jobs_publish_ports_with_hairpin() {
    let Some(j) = setup("bridge_jobs_publish_ports_with_hairpin") else {
        return;
    };
    let before_rules = runtime::net::nat::rules("nat").unwrap_or_default().len();
    let serve = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www";
    let mut web = j.sh("web", serve);
    web.ports = vec![port(18080, 8080), port(0, 8080)];
    j.rt.create(&web).unwrap();
    let att =
        j.rt.attachment("web")
            .unwrap()
            .expect("bridge jobs have an attachment");
    assert_eq!(att.ip.octets()[..2], [100, 100]);
    assert_eq!(att.gateway.to_string(), "100.100.0.1");
    let auto = att.ports[1].host;
    assert!((30000..=32767).contains(&auto), "{auto}");

    // From the host: loopback, the bridge address, the job's own address, the auto port.
    assert_eq!(curl_until("http://127.0.0.1:18080/"), "hello-from-web\n");
    assert_eq!(curl_until("http://100.100.0.1:18080/"), "hello-from-web\n");
    assert_eq!(
        curl_until(&format!("http://{}:8080/", att.ip)),
        "hello-from-web\n"
    );
    assert_eq!(
        curl_until(&format!("http://127.0.0.1:{auto}/")),
        "hello-from-web\n"
    );

    // From another job, through the host's address (hairpin), and its view of the network.
    let client = j.sh(
        "client",
        "wget -qO- http://100.100.0.1:18080/; ip route | grep default; grep client /etc/hosts | cut -f2; \
         grep -c nameserver /etc/resolv.conf >/dev/null && echo resolv-ok",
    );
    let (status, out) = stdout_of(&j, &client);
    assert_eq!(status.code, Some(0), "{out}");
    assert!(
        out.contains("hello-from-web"),
        "hairpin from another job: {out}"
    );
    assert!(out.contains("default via 100.100.0.1"), "{out}");
    assert!(out.contains("client"), "hosts: {out}");

    // A job reaching its own published port through the host address.
    let mut selfish = j.sh(
        "selfish",
        "mkdir -p /www && echo me > /www/index.html && httpd -p 8080 -h /www && sleep 0.3 && wget -qO- http://100.100.0.1:18081/",
    );
    selfish.ports = vec![port(18081, 8080)];
    let (_, out) = stdout_of(&j, &selfish);
    assert_eq!(out, "me", "hairpin to itself");

    // A port another job holds is refused and the failed job leaves nothing behind.
    let mut clash = j.sh("clash", "true");
    clash.ports = vec![port(18080, 80)];
    let err = j.rt.create(&clash).unwrap_err().to_string();
    assert!(
        err.contains("host port 18080 is already published"),
        "{err}"
    );
    assert!(!j.root().join("clash").exists());
    assert!(!j
        .rt
        .network()
        .ipam()
        .leases()
        .unwrap()
        .contains_key("clash"));

    j.rt.stop("web", Duration::from_millis(200)).unwrap();
    j.rt.delete("web").unwrap();
    assert!(
        curl("http://127.0.0.1:18080/").is_none(),
        "port unpublished"
    );
    assert!(
        j.rt.network().ipam().leases().unwrap().is_empty(),
        "leases released"
    );
    let links = integration::run_ok(std::process::Command::new("ip").args(["-o", "link"]));
    assert!(!links.contains(&att.host_veth), "veth removed: {links}");
    let after_rules = runtime::net::nat::rules("nat").unwrap();
    assert!(
        !after_rules
            .iter()
            .any(|r| r.contains("18080") || r.contains("18081")),
        "{after_rules:?}"
    );
    assert!(
        after_rules.len() <= before_rules + 7,
        "only the shared base rules remain: {after_rules:?}"
    );
    assert!(!att.netns.exists(), "namespace unpinned");
}

#[test]
fn outbound_nat_reaches_another_namespace() {
    let Some(j) = setup("outbound_nat_reaches_another_namespace") else {
        return;
    };
    // An "outside" host: a namespace of the test's own, joined by a veth pair on 198.18.0.0/30.
    let sh =
        |script: &str| integration::run_ok(std::process::Command::new("sh").args(["-c", script]));
    let ns = format!("flynn-outside-{}", std::process::id());
    sh(&format!(
        "ip netns add {ns} && ip link add ob0 type veth peer name ob1 netns {ns} && \
         ip addr add 198.18.0.1/30 dev ob0 && ip link set ob0 up && \
         ip -n {ns} addr add 198.18.0.2/30 dev ob1 && ip -n {ns} link set ob1 up && ip -n {ns} link set lo up"
    ));
    /// Deletes the outside namespace (its pin file lives in the host's /run) even on failure.
    struct OutsideNs(String);
    impl Drop for OutsideNs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    let outside = OutsideNs(ns.clone());
    let www = j.pinkerton.scratch().join("outside-www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "outside\n").unwrap();
    let log = j.pinkerton.scratch().join("outside.log");
    /// Kills the outside server even when an assertion fails.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let server = Server(
        std::process::Command::new("ip")
            .args([
                "netns", "exec", &ns, "busybox", "httpd", "-f", "-v", "-p", "8000", "-h",
            ])
            .arg(&www)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let (status, out) = stdout_of(
        &j,
        &j.sh("egress", "sleep 0.2; wget -qO- http://198.18.0.2:8000/"),
    );
    drop(server);
    drop(outside);
    assert_eq!((status.code, out.as_str()), (Some(0), "outside"));
    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(
        seen.contains("198.18.0.1") && !seen.contains("100.100."),
        "source is masqueraded: {seen}"
    );
}

#[test]
fn jobs_start_safely_from_a_busy_multithreaded_runtime() {
    let Some(j) = setup("jobs_start_safely_from_a_busy_multithreaded_runtime") else {
        return;
    };
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
