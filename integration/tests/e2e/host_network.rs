//! Taking the job network off a host (`flynn-host network-remove`, the last step of a
//! teardown): refused while the daemon runs or a job holds the network, complete once
//! neither does, and set up again by the next daemon.

use integration::host::HostDaemon;
use integration::root_test;

fn bridge_exists() -> bool {
    std::process::Command::new("ip")
        .args(["link", "show", "flynnbr0"])
        .output()
        .unwrap()
        .status
        .success()
}

/// The lines of `iptables-save` that are the job network's: its chains, the jumps to them
/// and its masquerade rules.
fn network_rules() -> Vec<String> {
    let out = std::process::Command::new("iptables-save")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("FLYNN") || l.contains("flynnbr0") || l.contains("100.100.0.0/16"))
        .map(str::to_string)
        .collect()
}

#[root_test(isolated)]
fn network_remove_takes_the_job_network_off_a_host_without_jobs() {
    let mut d = HostDaemon::start();
    let state = d.state();
    let state = state.to_str().unwrap();
    d.ok(&[
        "run", "-d", "--name", "holder", "-p", "18091:80", &d.image, "sleep", "300",
    ]);
    assert!(bridge_exists());
    let before = network_rules();
    assert!(before.iter().any(|l| l.contains("18091")), "{before:?}");

    // The daemon runs: it would set the network up again.
    let out = d.run(&["network-remove", "--state", state]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("stop it first"),
        "{err}"
    );
    assert!(bridge_exists());

    // Stopped, but a job still holds an address and a published port.
    d.kill9();
    let out = d.run(&["network-remove", "--state", state]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("still hold addresses") && err.contains("holder"),
        "{err}"
    );
    assert_eq!(network_rules(), before, "a refused removal changes nothing");
    assert!(bridge_exists());

    // No job left and the daemon stopped: everything goes, and again is fine.
    d.spawn();
    d.ok(&["rm", "-f", "holder"]);
    d.kill9();
    let out = d.ok(&["network-remove", "--state", state]);
    assert!(out.contains("removed the job network"), "{out}");
    assert!(!bridge_exists(), "the bridge is left");
    assert_eq!(network_rules(), Vec::<String>::new(), "rules are left");
    assert!(!d.state().join("runtime/net/base.json").exists());
    d.ok(&["network-remove", "--state", state]);

    // The next daemon sets it up again, and jobs publish ports as before.
    d.spawn();
    assert!(bridge_exists());
    d.ok(&[
        "run", "-d", "--name", "again", "-p", "18092:80", &d.image, "sleep", "300",
    ]);
    assert!(network_rules().iter().any(|l| l.contains("18092")));
    d.ok(&["rm", "-f", "again"]);
}
