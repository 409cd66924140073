//! The API against its own OpenAPI document: schemathesis (from PyPI; `script/deps` installs
//! it) generates requests, valid and not, and checks every answer: no 5xx, statuses, content
//! types and bodies as documented, 405 with `Allow`. Pulls (which would reach registries),
//! the event stream and attach (which do not end) are left out.

use std::path::PathBuf;
use std::process::Command;

use integration::host::HostDaemon;
use integration::root_test;

/// The schemathesis CLI: `$SCHEMATHESIS`, or where `script/deps` installs it.
fn schemathesis() -> Option<PathBuf> {
    let p = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/flynn-test/venv/bin/st".into());
    p.exists().then_some(p)
}

#[root_test(isolated)]
fn the_api_matches_its_openapi_document_under_fuzzing() {
    let test = "the_api_matches_its_openapi_document_under_fuzzing";
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: schemathesis is missing; script/deps installs it"
        );
        eprintln!("\n*** SKIPPED {test}: schemathesis is not installed (run script/deps) ***\n");
        return;
    };
    let h = HostDaemon::start();
    // Some state for the generated requests to meet.
    h.ok(&["pull", &h.image]);
    let script = "trap 'exit 0' TERM; sleep 600 & wait";
    h.ok(&[
        "run", "-d", "--name", "fuzz-job", &h.image, "sh", "-c", script,
    ]);
    h.ok(&["volume", "create", "fuzz-volume"]);
    // A stop waits out the grace it is given when the job ignores SIGTERM (a shell as PID 1
    // without a trap, as generated jobs are): the fuzzer's grace is fixed at one second, or
    // a generated `timeout=502` holds a request for eight minutes, as documented.
    let config = h.state().join("schemathesis.toml");
    std::fs::write(
        &config,
        "[[operations]]\ninclude-name = \"POST /jobs/{id}/stop\"\nparameters = { \"query.timeout\" = 1 }\n",
    )
    .unwrap();
    let out = integration::run(
        Command::new(st)
            .arg("--config-file")
            .arg(&config)
            .args(["run", &format!("http://{}/openapi.json", h.tcp)])
            .args(["-H", &format!("Authorization: Bearer {}", h.token())])
            .args(["--checks", "all"])
            // Documented on purpose: the token is optional on the unix socket only, and
            // bodies the schema allows may still name images that are not there.
            .args(["--exclude-checks", "ignored_auth,positive_data_acceptance"])
            .args(["--exclude-operation-id", "pullImage"])
            .args([
                "--exclude-path",
                "/events",
                "--exclude-path",
                "/jobs/{id}/attach",
            ])
            // One worker: Python 3.11's ast.parse is not thread-safe, and schemathesis calls
            // it from every worker ("AST constructor recursion depth mismatch").
            .args(["--max-examples", "40", "--no-color", "--workers", "1"])
            .args(["--suppress-health-check", "filter_too_much,too_slow"])
            // Slow answers are not failures here; hangs are.
            .args(["--request-timeout", "120", "--max-response-time", "120"])
            .env("HOME", h.state()),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // Runs are random: the seed line reproduces one (`--seed N`).
    let seed = text.lines().find(|l| l.contains("Seed")).unwrap_or("");
    eprintln!("schemathesis: {}", seed.trim());
    if !out.status.success() {
        // The failures first, whole (the harness prints the daemon's log after the panic);
        // the rest of the report (every operation passed) would only bury them.
        let first = [" ERRORS ", " FAILURES "]
            .iter()
            .filter_map(|h| text.find(h))
            .min();
        let failures = first.map_or(&text[..], |i| &text[i..]);
        panic!(
            "schemathesis found problems ({}):\n{failures}\n{}",
            seed.trim(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(text.contains("passed"), "{text}");
    // The daemon is still healthy.
    assert!(h.block_on(h.client().status()).is_ok());
}
