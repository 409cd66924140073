//! images/: a recipe built from this workspace's binaries, twice with the same digests,
//! pushed with skopeo, pulled and run by flynn-host, and imported straight into its store.

use integration::root_test;
use std::collections::BTreeSet;
use std::process::Command;

use integration::host::HostDaemon;
use integration::workspace_bin;

fn build(out: &std::path::Path, tag: &str, store: Option<&std::path::Path>) -> String {
    let bin_dir = workspace_bin("flynn-host").parent().unwrap().to_path_buf();
    let mut cmd = Command::new(workspace_bin("flynn-images"));
    cmd.args(["build", "host-cli", "--bin-dir"])
        .arg(&bin_dir)
        .arg("--out")
        .arg(out)
        .args(["--tag", tag]);
    if let Some(s) = store {
        cmd.arg("--store").arg(s);
    }
    integration::run_ok(&mut cmd)
}

#[root_test(isolated)]
fn a_recipe_builds_reproducibly_and_runs_as_a_job() {
    let h = HostDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let tag = format!("{}/flynn/host-cli:test", h.registry());
    let a = build(&t.path().join("a"), &tag, None);
    let b = build(&t.path().join("b"), &tag, None);
    let digest = |s: &str| s.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(
        digest(&a),
        digest(&b),
        "two builds of the same inputs differ"
    );
    assert!(digest(&a).starts_with("sha256:"));

    integration::run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci:{}:{tag}", t.path().join("a").display()),
        &format!("docker://{tag}"),
    ]));
    h.ok(&["pull", &tag]);
    let out = h.ok(&["run", "--rm", &tag, "--version"]);
    assert_eq!(
        out.trim(),
        format!("flynn-host {}", env!("CARGO_PKG_VERSION"))
    );

    // Exactly the libraries the binary loads, where the loader finds them.
    let listed = h.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        &tag,
        "-c",
        "find /lib /lib64 /usr -type f 2>/dev/null | sort",
    ]);
    let inside: BTreeSet<String> = listed.lines().map(str::to_string).collect();
    let ldd = integration::run_ok(Command::new("ldd").arg(workspace_bin("flynn-host")));
    let wanted: BTreeSet<String> = ldd
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let p = match l.split_once("=>") {
                Some((_, r)) => r.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            p.starts_with('/').then(|| p.to_string())
        })
        .collect();
    assert_eq!(inside, wanted);

    // Straight into the daemon's store, no registry involved.
    let local = "flynn/host-cli:local";
    let out = build(
        &t.path().join("c"),
        local,
        Some(&h.state().join("pinkerton")),
    );
    assert!(out.contains("imported"), "{out}");
    assert!(h.ok(&["images"]).contains("flynn/host-cli:local"));
    let out = h.ok(&["run", "--rm", local, "--version"]);
    assert!(out.starts_with("flynn-host "));
}
