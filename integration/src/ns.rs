//! Running a test inside mount and network namespaces of its own.

use std::process::Command;

const MARK: &str = "FLYNN_TEST_ISOLATED";

/// True when the caller is already inside the test's private namespaces and should run its
/// body. Otherwise re-runs just `test` (the test function's name) in new mount and network
/// namespaces (with loopback up), asserts that it passed there, and returns false.
pub fn isolated(test: &str) -> bool {
    if std::env::var_os(MARK).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("current test binary");
    let out = Command::new("unshare")
        .args(["--mount", "--net", "--propagation", "private", "--"])
        .args(["sh", "-c", r#"ip link set lo up && exec "$0" "$@""#])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(MARK, "1")
        .output()
        .expect("unshare (util-linux) runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{test} failed in its namespaces ({}): {}\n--- its whole output:\n{text}",
        out.status,
        panics(&text)
    );
    assert!(
        text.contains("1 passed"),
        "{test} did not run in its namespaces:\n{text}"
    );
    false
}

/// The panic messages in a test's output (each "panicked at" line and the lines after it, up
/// to a blank line), so a failure's cause comes first even when a long output is shortened.
fn panics(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.contains("panicked at") {
            out.push('\n');
            out.push_str(line);
            for more in lines.by_ref().take(40) {
                if more.is_empty() {
                    break;
                }
                out.push('\n');
                out.push_str(more);
            }
        }
    }
    if out.is_empty() {
        " (no panic message)".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::panics;

    #[test]
    fn a_failure_leads_with_each_panic_and_its_message() {
        let text = "running 1 test\n=== phase one\n\
                    thread 't' (7) panicked at tests/e2e/x.rs:3:5:\nmissing \"done\" in:\nout\n\n\
                    note: run with `RUST_BACKTRACE=1`\ntest x ... FAILED\n";
        assert_eq!(
            panics(text),
            "\nthread 't' (7) panicked at tests/e2e/x.rs:3:5:\nmissing \"done\" in:\nout"
        );
        assert_eq!(panics("running 1 test\n"), " (no panic message)");
    }
}
