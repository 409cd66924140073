//! The host API against its own OpenAPI document under schemathesis. Pulls (which would reach
//! registries), the event stream and attach (which do not end) are left out.

use integration::host::HostDaemon;
use integration::{root_test, schemathesis};

#[root_test(isolated)]
fn the_api_matches_its_openapi_document_under_fuzzing() {
    if !schemathesis::available("the_api_matches_its_openapi_document_under_fuzzing") {
        return;
    }
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
    // A followed log streams for as long as its job runs (`fuzz-job` for ten minutes, met
    // through the job list's links): logs are read, not followed, as the event stream is left
    // out.
    let config = "[[operations]]\ninclude-name = \"POST /jobs/{id}/stop\"\nparameters = { \"query.timeout\" = 1 }\n\
                  [[operations]]\ninclude-name = \"GET /jobs/{id}/logs\"\nparameters = { \"query.follow\" = \"false\" }\n";
    schemathesis::check(
        &format!("http://{}/openapi.json", h.tcp),
        &h.token(),
        &h.state(),
        config,
        &[
            // Documented on purpose: the token is optional on the unix socket only, and
            // bodies the schema allows may still name images that are not there.
            "--exclude-checks",
            "ignored_auth,positive_data_acceptance",
            "--exclude-operation-id",
            "pullImage",
            "--exclude-path",
            "/events",
            "--exclude-path",
            "/jobs/{id}/attach",
        ],
    );
    // The daemon is still healthy.
    assert!(h.block_on(h.client().status()).is_ok());
}
