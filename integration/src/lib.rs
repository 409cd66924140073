//! Support for end-to-end tests: real registries on loopback ports, images built from files the
//! tests describe, the project's binaries, and filesystem tree comparison.
//!
//! Tests that need root are marked [`root_test`] (`#[root_test(isolated)]` for ones that need
//! namespaces of their own): in CI (`CI` set) a missing privilege fails the test; elsewhere the
//! test is skipped with a loud message. The suite is one test binary, `tests/e2e`.

pub use flynn_test_macros::root_test;

pub mod cluster;
pub mod controller;
pub mod discoverd;
pub mod etcd;
pub mod git;
pub mod grpc_cut;
pub mod harness;
pub mod host;
pub mod image;
pub mod jobs;
pub mod leaks;
pub mod ns;
pub mod pinkerton;
pub mod registry;
pub mod router;
pub mod schemathesis;
pub mod token;
pub mod tree;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

/// True when the test may go on; prints a loud SKIPPED line when it may not (outside CI).
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: CI must run the tests as root"
    );
    eprintln!("\n*** SKIPPED {test}: needs root (mknod, chown, trusted xattrs); run as root ***\n");
    false
}

/// A TCP port on 127.0.0.1 that was free a moment ago, and that this process was not given
/// before.
pub fn free_port() -> u16 {
    // The kernel may hand out a port it just handed out (the listener asking is dropped at
    // once): a port already given here is asked again, so that one test's ports (a router's
    // HTTP, HTTPS and API listeners, which bind shared) never coincide.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind 127.0.0.1:0")
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// 64 hex digits from the kernel's random source (a key or token).
pub fn random_key() -> String {
    let mut b = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Path of a binary of this workspace, built by `cargo build` into the same target dir.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test binary");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        bin.display()
    );
    bin
}

/// Runs a command and returns its output; panics with its stderr if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// The HTTP status curl gets with `args` (at most 10 s; the body is dropped), run behind
/// `prefix` when it is not empty (e.g. `nsenter -t PID -n`, for a job's view).
pub fn http_status(prefix: &[&str], args: &[&str]) -> String {
    let (program, before) = match prefix.split_first() {
        Some((p, rest)) => (*p, rest),
        None => ("curl", &[][..]),
    };
    let mut cmd = Command::new(program);
    cmd.args(before);
    if !prefix.is_empty() {
        cmd.arg("curl");
    }
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
    ])
    .args(args);
    String::from_utf8_lossy(&run(&mut cmd).stdout).into_owned()
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// A job id a test names (panics on an invalid one: a test's own mistake).
pub fn jid(id: &str) -> host_api::JobId {
    id.parse().expect("a valid job id")
}

/// Polls `ok` every 50 ms until it holds; panics naming `what` after `limit`. Tests wait for
/// what they need this way, never for a fixed time.
pub fn wait_for(what: &str, limit: std::time::Duration, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
