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
