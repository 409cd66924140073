//! schemathesis (from PyPI; `script/deps` installs it) against a service's OpenAPI document:
//! it generates requests, valid and not, and checks every answer (no 5xx; statuses, content
//! types and bodies as documented; 405 with `Allow`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The schemathesis CLI: `$SCHEMATHESIS`, or where `script/deps` installs it.
fn cli() -> Option<PathBuf> {
    let p = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/flynn-test/venv/bin/st".into());
    p.exists().then_some(p)
}

/// True when schemathesis is installed; outside CI a missing one skips `test` loudly, in CI
/// it fails it.
pub fn available(test: &str) -> bool {
    if cli().is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: schemathesis is missing; script/deps installs it"
    );
    eprintln!("\n*** SKIPPED {test}: schemathesis is not installed (run script/deps) ***\n");
    false
}

/// Runs schemathesis on the document at `openapi_url` with a bearer `token`, its config
/// file written under `home` (`config`: TOML, may be empty) and `extra` arguments, then those
/// in `$SCHEMATHESIS_ARGS` (split on spaces: `--seed N` repeats a run, `--report har` keeps
/// every request); panics with the failures (and the seed that reproduces them) when it
/// finds any.
pub fn check(openapi_url: &str, token: &str, home: &Path, config: &str, extra: &[&str]) {
    let st = cli().expect("schemathesis (check `available` first)");
    let config_file = home.join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let out = crate::run(
        Command::new(st)
            .arg("--config-file")
            .arg(&config_file)
            .args(["run", openapi_url])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["--checks", "all"])
            .args(extra)
            .args(
                std::env::var("SCHEMATHESIS_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            // One worker: Python 3.11's ast.parse is not thread-safe, and schemathesis calls
            // it from every worker ("AST constructor recursion depth mismatch").
            .args(["--max-examples", "40", "--no-color", "--workers", "1"])
            .args(["--suppress-health-check", "filter_too_much,too_slow"])
            // Slow answers are not failures here; hangs are.
            .args(["--request-timeout", "120", "--max-response-time", "120"])
            .env("HOME", home),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // Runs are random: the seed line reproduces one (`--seed N`).
    let seed = text.lines().find(|l| l.contains("Seed")).unwrap_or("");
    eprintln!("schemathesis: {}", seed.trim());
    if !out.status.success() {
        // The failures first, whole; the rest of the report (every operation that passed)
        // would only bury them.
        let first = [" ERRORS ", " FAILURES "]
            .iter()
            .filter_map(|h| text.find(h))
            .min();
        let failures = first.map_or(&text[..], |i| &text[i..]);
        panic!(
            "schemathesis found problems ({}; SCHEMATHESIS_ARGS='--seed N' repeats the run):\n{failures}\n{}",
            seed.trim(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(text.contains("passed"), "{text}");
}
