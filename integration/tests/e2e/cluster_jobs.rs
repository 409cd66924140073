//! One-off jobs, kills and app logs through the controller, on the scheduler test's cluster
//! (one boot for both): `POST /apps/{app}/jobs` plain and attached (stdin in, output and the
//! exit code out), scale requests (pending until the jobs match, a newer one cancels a
//! pending one), `DELETE /apps/{app}/jobs/{id}` (a formation's job is replaced), and
//! `GET /apps/{app}/log` (history merged in time order, filters, following a job that starts
//! after the request).

use std::time::Duration;

use controller_api::client::LogRequest;
use controller_api::{JobState, NewJob, NewScaleRequest, ScaleRequestState};
use integration::cluster::Cluster;
use runtime::attach::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn sh(script: &str) -> NewJob {
    NewJob {
        args: vec!["sh".into(), "-c".into(), script.into()],
        ..NewJob::default()
    }
}

/// What an attached job sent: stdout, stderr and its exit code.
async fn attached(
    c: &Cluster,
    app: &str,
    job: &NewJob,
    stdin: &[u8],
) -> (String, String, String, Option<i32>) {
    let (id, mut io) = c.controller().run_attached(app, job).await.unwrap();
    io.write_all(&Frame::Stdin(stdin.to_vec()).encode())
        .await
        .unwrap();
    io.write_all(&Frame::CloseStdin.encode()).await.unwrap();
    let (mut buf, mut out, mut err) = (Vec::new(), Vec::new(), Vec::new());
    let mut chunk = [0u8; 4096];
    loop {
        while let Some((frame, used)) = Frame::parse(&buf).unwrap() {
            buf.drain(..used);
            match frame {
                Frame::Stdout(d) => out.extend(d),
                Frame::Stderr(d) => err.extend(d),
                Frame::Exit(s) => {
                    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
                    return (id, text(out), text(err), s.code);
                }
                _ => {}
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(120), io.read(&mut chunk))
            .await
            .expect("the attached job ended within 2 minutes")
            .unwrap();
        assert!(n > 0, "the attach stream ended before the exit frame");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Runs the phase on `c`, whose app `app` has a current release running
/// `web=3`; returns with three web jobs running again.
pub fn one_off_jobs_kills_and_logs(c: &Cluster, app: &str) {
    let api = c.controller();
    // A plain one-off job: the release's env, recorded at once, reported down with its code.
    let job = c
        .block_on(api.run_job(app, &sh("echo one-off $FLYNN_APP_NAME $VERSION; exit 4")))
        .unwrap();
    assert_eq!(job.kind, "", "{job:?}");
    c.wait(
        "the one-off job reported down",
        Duration::from_secs(60),
        |c| {
            c.block_on(api.job(app, &job.id))
                .is_ok_and(|j| j.state == JobState::Down && j.exit_status == Some(4))
        },
    );

    // Attached: stdin reaches it, stdout and stderr come back apart, the exit code last.
    let script = "read x; echo got $x; echo oops >&2; exit 5";
    let (id, out, err, code) = c.block_on(attached(c, app, &sh(script), b"hello\n"));
    assert!(!id.is_empty());
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("got hello\n", "oops\n", Some(5))
    );
    // A job that may end before the attach is made still gives its output and exit.
    let (_, out, _, code) = c.block_on(attached(c, app, &sh("echo fast"), b""));
    assert_eq!((out.as_str(), code), ("fast\n", Some(0)));

    // Bad requests change nothing.
    let bad = |r: Result<controller_api::Job, controller_api::client::ClientError>| {
        r.unwrap_err().code().map(|c| c.as_str().to_string())
    };
    assert_eq!(
        bad(c.block_on(api.run_job("no-such-app", &sh("true")))).as_deref(),
        Some("no_such_app")
    );
    let foreign = NewJob {
        release: Some("00000000000000000000000000000000".into()),
        ..sh("true")
    };
    assert_eq!(
        bad(c.block_on(api.run_job(app, &foreign))).as_deref(),
        Some("no_such_release")
    );
    assert_eq!(
        bad(c.block_on(api.kill_job(app, "no-such-job"))).as_deref(),
        Some("no_such_job")
    );

    // The app log: the one-off job's line by job, every line in time order.
    let lines = |r: LogRequest| {
        c.block_on(async {
            let mut s = api.app_log(app, &r).await.unwrap();
            let mut out = Vec::new();
            while let Some(m) = s.next().await.unwrap() {
                out.push(m);
            }
            out
        })
    };
    let one = lines(LogRequest {
        job_id: Some(job.id.clone()),
        ..LogRequest::default()
    });
    let msgs: Vec<&str> = one.iter().map(|m| m.msg.as_str()).collect();
    assert_eq!(msgs, ["one-off web v3"], "{one:?}");
    assert_eq!(
        (one[0].process_type.as_str(), one[0].stream.as_str()),
        ("", "stdout")
    );
    let all = lines(LogRequest::default());
    assert!(all.len() >= 4, "{all:?}");
    assert!(
        all.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
        "{all:?}"
    );
    let last2 = lines(LogRequest {
        lines: Some(2),
        ..LogRequest::default()
    });
    assert_eq!(last2, all[all.len() - 2..].to_vec());
    let web = lines(LogRequest {
        process_type: Some("web".into()),
        ..LogRequest::default()
    });
    assert!(web.iter().all(|m| m.process_type == "web"), "{web:?}");

    // Following: a job that starts after the request is followed too.
    c.block_on(async {
        let follow = LogRequest {
            follow: true,
            process_type: Some(String::new()),
            lines: Some(0),
            ..LogRequest::default()
        };
        let mut s = api.app_log(app, &follow).await.unwrap();
        let later = api
            .run_job(app, &sh("sleep 1; echo followed; sleep 1"))
            .await
            .unwrap();
        let m = tokio::time::timeout(Duration::from_secs(60), s.next())
            .await
            .expect("the new job's line within a minute")
            .unwrap()
            .expect("a line");
        assert_eq!(
            (m.msg.as_str(), m.job_id.as_str()),
            ("followed", later.id.as_str())
        );
    });

    // Scale requests: pending until exactly that many jobs are up, then complete.
    let release = c.block_on(api.app(app)).unwrap().release.unwrap();
    let scale = |n: u32| {
        let new = NewScaleRequest {
            processes: [("web".parse().unwrap(), n)].into(),
            ..NewScaleRequest::default()
        };
        c.block_on(api.scale(app, &release, &new)).unwrap()
    };
    let state = |id: &str| {
        let all = c.block_on(api.scale_requests(app)).unwrap();
        all.into_iter().find(|r| r.id == id).map(|r| r.state)
    };
    let up_web = || {
        c.block_on(api.jobs(app, true))
            .unwrap()
            .iter()
            .filter(|j| j.kind == "web" && j.state == JobState::Up)
            .count()
    };
    let four = scale(4);
    assert_eq!(
        four.new_processes.values().copied().collect::<Vec<_>>(),
        [4]
    );
    c.wait("web=4 complete", Duration::from_secs(60), |_| {
        state(&four.id) == Some(ScaleRequestState::Complete)
    });
    assert_eq!(up_web(), 4);
    // A newer request cancels the pending one; the newer one completes.
    let (five, three) = (scale(5), scale(3));
    assert_eq!(state(&five.id), Some(ScaleRequestState::Cancelled));
    c.wait("web=3 complete", Duration::from_secs(90), |_| {
        state(&three.id) == Some(ScaleRequestState::Complete)
    });
    assert_eq!(up_web(), 3);
    let unknown = NewScaleRequest {
        processes: [("nosuchtype".parse().unwrap(), 1)].into(),
        ..NewScaleRequest::default()
    };
    let err = c.block_on(api.scale(app, &release, &unknown)).unwrap_err();
    assert_eq!(err.code().map(|c| c.as_str()), Some("bad_request"), "{err}");
    let err = c
        .block_on(api.scale(
            app,
            "00000000000000000000000000000000",
            &NewScaleRequest::default(),
        ))
        .unwrap_err();
    assert_eq!(
        err.code().map(|c| c.as_str()),
        Some("no_such_release"),
        "{err}"
    );

    // A kill stops a web job on its host; the scheduler replaces it.
    let web_jobs = c.block_on(api.jobs(app, true)).unwrap();
    let victim = web_jobs
        .iter()
        .find(|j| j.kind == "web" && j.state == JobState::Up)
        .expect("an up web job")
        .clone();
    let killed = c.block_on(api.kill_job(app, &victim.id)).unwrap();
    assert_eq!(killed.state, JobState::Down, "{killed:?}");
    c.wait(
        "the killed web job replaced",
        Duration::from_secs(60),
        |c| {
            let up: Vec<_> = c
                .block_on(api.jobs(app, true))
                .unwrap_or_default()
                .into_iter()
                .filter(|j| j.kind == "web" && j.state == JobState::Up)
                .collect();
            up.len() == 3 && up.iter().all(|j| j.id != victim.id)
        },
    );
}
