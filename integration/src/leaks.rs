//! Checks that jobs left nothing behind on the host: mounts, job directories, cgroups, shims,
//! veths, address leases, port rules.

use std::path::Path;

/// Waits until no job veth (`fl...`) is left in this network namespace, up to `limit`: the
/// kernel destroys a job's pair with its namespace, shortly after the job is gone. Returns
/// the ones still there.
pub fn job_veths_gone_within(limit: std::time::Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let links = crate::run_ok(std::process::Command::new("ip").args(["-o", "link"]));
        let veths: Vec<String> = links
            .lines()
            .filter(|l| l.contains(": fl") && !l.contains("flynnbr0"))
            .map(str::to_string)
            .collect();
        if veths.is_empty() || std::time::Instant::now() > deadline {
            return veths;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Mount table entries now, to compare with [`assert_clean`]'s count.
pub fn mount_count() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

/// Asserts that the runtime at `root` (its `jobs/`, `run/` and `net/`) holds no job, and that
/// no mount, cgroup (under `cgroup_parent`, named with `prefix`), shim, veth, lease or DNAT
/// rule of a job remains.
pub fn assert_clean(root: &Path, cgroup_parent: &str, prefix: &str, mounts_before: usize) {
    let jobs = root.join("jobs");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(mounts.lines().count(), mounts_before, "mounts leaked");
    for d in [&jobs, &root.join("run")] {
        assert!(!mounts.contains(&format!("{}/", d.display())), "{mounts}");
        let left: Vec<_> = std::fs::read_dir(d)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "job dirs leaked: {left:?}");
    }
    let mut leaked = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap() {
        let dir = h.unwrap().path().join(cgroup_parent);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            leaked.extend(
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().contains(prefix)),
            );
        }
    }
    assert!(leaked.is_empty(), "cgroups leaked: {leaked:?}");
    let shims = shims_of(root);
    assert!(shims.is_empty(), "shims left running: {shims:?}");
    let veths = job_veths_gone_within(std::time::Duration::from_secs(10));
    assert!(veths.is_empty(), "veths leaked: {veths:?}");
    let net = runtime::net::Network::new(runtime::net::NetConfig::default(), root.join("net"));
    assert!(net.ipam().leases().unwrap().is_empty(), "leases leaked");
    let nat = runtime::net::nat::rules("nat").unwrap();
    assert!(
        !nat.iter().any(|r| r.contains("DNAT --to-destination")),
        "port rules leaked: {nat:?}"
    );
}

/// The command lines of the shims serving jobs of the runtime at `root`
/// ([`runtime::job::shims_of`]).
pub fn shims_of(root: &Path) -> Vec<String> {
    runtime::job::shims_of(root)
        .into_iter()
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            )
        })
        .collect()
}
