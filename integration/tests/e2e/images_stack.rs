//! The stacks: `stack-run` and `stack-build` built from Debian packages by mmdebstrap
//! (cached under /var/cache/flynn-test/images), reproducibly, and run by flynn-host: the run
//! stack's runtimes through flynn-runner, the build stack's toolchains.

use integration::host::HostDaemon;
use integration::image::build_recipe;
use integration::root_test;

#[root_test(isolated)]
fn stacks_build_from_debian_packages_reproducibly_and_run() {
    let h = HostDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let store = h.state().join("pinkerton");

    let a = build_recipe("stack-run", &t.path().join("run-a"), None);
    let b = build_recipe("stack-run", &t.path().join("run-b"), Some(&store));
    assert!(a.starts_with("sha256:"), "{a}");
    assert_eq!(a, b, "two builds of the run stack differ");

    let img = "flynn/stack-run:test";
    // One argument is a command line, run by bash after the profile.
    let out = h.ok(&[
        "run",
        "--rm",
        img,
        "python3 -c 'print(6 * 7)' && echo $HOME $PORT",
    ]);
    assert_eq!(out, "42\n/app 5000\n");
    let out = h.ok(&["run", "--rm", img, "node", "-e", "console.log(1 + 1)"]);
    assert_eq!(out, "2\n");
    // Debian's merged /usr is intact under the recipe's layer.
    let out = h.ok(&[
        "run",
        "--rm",
        img,
        "readlink /bin; test -x /usr/bin/python3 && echo ok",
    ]);
    assert_eq!(out, "usr/bin\nok\n");
    let no_procfile = h.run(&["run", "--rm", img, "start", "web"]);
    assert!(!no_procfile.status.success());
    let err = String::from_utf8_lossy(&no_procfile.stdout).into_owned()
        + &String::from_utf8_lossy(&no_procfile.stderr);
    assert!(err.contains("no /app/Procfile"), "{err}");

    build_recipe("stack-build", &t.path().join("build"), Some(&store));
    let out = h.ok(&[
        "run",
        "--rm",
        "flynn/stack-build:test",
        "sh",
        "-c",
        "go version && gcc --version | head -1 && python3 -m pip --version && npm --version && git --version",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[0].starts_with("go version go1."), "{out}");
    assert!(lines[1].starts_with("gcc"), "{out}");
    assert!(lines[2].starts_with("pip "), "{out}");
    assert!(lines[4].starts_with("git version"), "{out}");
}
