//! Attaching to running jobs through their shim's `attach.sock`: stdin pipes and terminals.

use integration::root_test;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use integration::jobs::Jobs;
use runtime::attach::Frame;
use runtime::ExitStatus;

/// Connects to the job's attach socket (by a short path: socket paths are limited).
fn connect(j: &Jobs, id: &str) -> UnixStream {
    let dir = j.rt.job_dir(id).unwrap();
    let dirfd = std::fs::File::open(dir.run_path()).unwrap();
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}/attach.sock", dirfd.as_raw_fd());
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Reads frames until the exit frame; returns the stdout and stderr bytes and the status.
fn drain(s: &mut UnixStream) -> (String, String, ExitStatus) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    loop {
        match Frame::read_from(s).unwrap() {
            Some(Frame::Stdout(d)) => out.extend(d),
            Some(Frame::Stderr(d)) => err.extend(d),
            Some(Frame::Exit(status)) => {
                let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
                return (text(out), text(err), status);
            }
            Some(f) => panic!("unexpected frame {f:?}"),
            None => panic!("attach stream ended without an exit frame"),
        }
    }
}

#[root_test(isolated)]
fn stdin_reaches_the_job_and_output_comes_back_live() {
    let j = Jobs::new();
    let mut spec = j.sh("cat-job", "echo ready; cat; echo done >&2; exit 4");
    spec.config.stdin = true;
    j.rt.create(&spec).unwrap();
    let mut s = connect(&j, "cat-job");
    Frame::Stdin(b"one\ntwo\n".to_vec())
        .write_to(&mut s)
        .unwrap();
    Frame::CloseStdin.write_to(&mut s).unwrap();
    let (out, err, status) = drain(&mut s);
    assert!(out.ends_with("one\ntwo\n"), "{out:?}");
    assert_eq!(err, "done\n");
    assert_eq!(status.code, Some(4));
    let lines: Vec<String> =
        j.rt.logs("cat-job")
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect();
    assert_eq!(lines, ["ready", "one", "two", "done"]);
    j.rt.delete("cat-job").unwrap();
}

#[root_test(isolated)]
fn a_terminal_job_echoes_resizes_and_sees_a_tty() {
    let j = Jobs::new();
    let mut spec = j.sh(
        "tty-job",
        "read line; stty size; tty; echo \"got $line\"; exit 2",
    );
    spec.config.tty = true;
    spec.config.stdin = true;
    j.rt.create(&spec).unwrap();
    let mut s = connect(&j, "tty-job");
    Frame::Resize {
        rows: 33,
        cols: 101,
    }
    .write_to(&mut s)
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    Frame::Stdin(b"hello\r".to_vec()).write_to(&mut s).unwrap();
    let (out, err, status) = drain(&mut s);
    // The terminal echoes input and turns newlines into CRLF.
    assert!(out.contains("hello\r\n"), "echo: {out:?}");
    assert!(out.contains("33 101\r\n"), "size: {out:?}");
    assert!(
        out.contains("/dev/pts/0") || out.contains("/dev/console"),
        "tty: {out:?}"
    );
    assert!(out.contains("got hello\r\n"), "{out:?}");
    assert_eq!((err.as_str(), status.code), ("", Some(2)));
    j.rt.delete("tty-job").unwrap();
}
