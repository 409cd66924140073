//! A cluster made with the platform's own commands on a test LAN: `flynn-host bootstrap
//! --etcd` on host 1 prints a join line; `flynn-host join` on host 2 (whose daemon started
//! with secrets of its own) restarts its daemon in place with the cluster's, starts its
//! discoverd on the cluster's etcd (replacing one it ran on its own state) and gets the
//! scheduler's router; then `web=2` runs one
//! job on each host and both answer through host 2's router, over HTTP and HTTPS. Wrong
//! tokens and a host joining itself are refused; a second join changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use controller_api::{NewApp, NewArtifact, NewRelease, PutFormation};
use host_api::client::Client as HostClient;
use integration::cluster::Lan;
use integration::root_test;

const DOMAIN: &str = "join.test";
const WEB: &str = "echo \"$FLYNN_JOB_ID\" > /www/index.html; exec httpd -f -p $PORT -h /www";

/// `curl` for `web.DOMAIN` through the router at `ip` (HTTP, or HTTPS with SNI): the body
/// when it answers 200.
fn get(ip: &str, https: bool) -> Option<String> {
    let host = format!("web.{DOMAIN}");
    let mut c = Command::new("curl");
    c.args(["-sf", "--max-time", "5"]);
    if https {
        c.args(["-k", "--resolve", &format!("{host}:443:{ip}")])
            .arg(format!("https://{host}/"));
    } else {
        c.args(["-H", &format!("Host: {host}")])
            .arg(format!("http://{ip}/"));
    }
    let out = c.output().expect("curl");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[root_test(isolated)]
fn a_host_joins_with_the_line_bootstrap_prints_and_runs_the_apps_jobs() {
    let lan = Lan::start(2);
    let bin_dir = lan.bin_dir();
    let etcd = lan.etcd.endpoints().join(",");
    let state = |i: usize| lan.hosts[i].state().display().to_string();

    // Host 1: the whole of layer 1, its state on etcd.
    let (ok, add, progress) = lan.bootstrap(0, DOMAIN, &["--etcd", &etcd]);
    assert!(ok, "bootstrap failed:\n{progress}");
    let ip1 = lan.hosts[0].ip.to_string();
    assert!(
        add.contains(&format!(" --image-url http://{ip1}:5001 default {DOMAIN} ")),
        "{add}"
    );
    let key = add.split_whitespace().last().unwrap().to_string();
    let line = progress
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("flynn-host join "))
        .unwrap_or_else(|| panic!("no join line in:\n{progress}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.len(), 4, "{line}");
    let (url, token) = (words[2], words[3]);
    assert_eq!(url, format!("http://{ip1}:1113"));

    let join = |i: usize, url: &str, token: &str| lan.join(i, url, token);

    // Refused: a wrong token, and host 1 joining itself; neither changes host 2.
    let (ok, _, err) = join(1, url, "wrong");
    assert!(!ok);
    assert!(err.contains("missing or wrong bearer token"), "{err}");
    let (ok, _, err) = join(0, url, token);
    assert!(!ok);
    assert!(err.contains("that is this host"), "{err}");
    assert!(!lan.hosts[1].state().join("cluster.json").exists());

    // Host 2 had a discoverd of its own (bootstrap without a domain or etcd): join starts
    // it again on the cluster's etcd.
    let state2 = state(1);
    let (ok, _, err) = lan.flynn_host(
        1,
        &[
            "bootstrap",
            "--state",
            &state2,
            "--bin-dir",
            &bin_dir,
            "--no-dns-upstream",
        ],
    );
    assert!(ok, "{err}");

    // Host 2 joins.
    let before = lan.block_on(lan.hosts[1].client().status()).unwrap();
    let (ok, out, err) = join(1, url, token);
    assert!(ok, "join failed:\n{err}");
    for step in [
        "daemon: restarting with the cluster's token and discoverd key (jobs keep running)",
        "ok: the daemon answers again",
        "discoverd: ran on other state; starting it again on the cluster's etcd",
        "discoverd: started on the cluster's etcd",
        "ok: the scheduler runs the router on this host",
    ] {
        assert!(err.contains(step), "{step:?} in:\n{err}");
    }
    let id2 = lan.hosts[1].id.clone();
    assert_eq!(
        out.trim(),
        format!("host {id2} joined cluster {DOMAIN}: the scheduler places jobs on it")
    );
    // Restarted in place: the same process, a new start, the cluster's token on its TCP API.
    let after = lan.block_on(lan.hosts[1].client().status()).unwrap();
    assert_eq!(after.pid, before.pid);
    assert_ne!(after.started, before.started);
    let tcp = HostClient::new(
        format!("http://{}:1113", lan.hosts[1].ip).parse().unwrap(),
        Some(token.to_string()),
    );
    assert_eq!(lan.block_on(tcp.status()).unwrap().id, id2);

    // An app's web=2: one job on each host, both behind host 2's router.
    let api =
        controller_api::client::Client::new(format!("http://{ip1}:8081").parse().unwrap(), &key);
    let app = lan
        .block_on(api.create_app(&NewApp {
            name: Some("web".parse().unwrap()),
            ..Default::default()
        }))
        .unwrap();
    let artifact = lan
        .block_on(api.create_artifact(&NewArtifact {
            kind: Default::default(),
            uri: lan.image.clone(),
            meta: Default::default(),
        }))
        .unwrap();
    let processes = serde_json::json!({
        "web": {
            "args": ["sh", "-c", WEB],
            "ports": [{"port": 8080, "proto": "tcp", "service": {"name": "web-web", "create": true}}],
            "resources": {"memory": {"limit": 67108864}}
        }
    });
    let release = lan
        .block_on(api.create_release(&NewRelease {
            app_id: app.id.clone(),
            artifacts: vec![artifact.id],
            env: BTreeMap::new(),
            meta: BTreeMap::new(),
            processes: serde_json::from_value(processes).unwrap(),
        }))
        .unwrap();
    lan.block_on(api.deploy("web", &release.id)).unwrap();
    let f = PutFormation {
        processes: [("web".parse().unwrap(), 2)].into(),
        ..PutFormation::default()
    };
    lan.block_on(api.put_formation("web", &release.id, &f))
        .unwrap();
    let running = |lan: &Lan| -> Vec<(usize, String)> {
        let filter = host_api::JobFilter {
            state: Some(host_api::JobState::Running),
            metadata: vec![("flynn-app-id".into(), app.id.to_string())],
            ..Default::default()
        };
        (0..2)
            .flat_map(|i| {
                lan.block_on(lan.hosts[i].client().jobs(&filter))
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |j| (i, j.id.to_string()))
            })
            .collect()
    };
    lan.wait(
        "web=2, one job on each host",
        Duration::from_secs(120),
        |l| {
            let r = running(l);
            r.len() == 2 && r.iter().map(|(h, _)| *h).collect::<BTreeSet<_>>().len() == 2
        },
    );
    let jobs: BTreeSet<String> = running(&lan).into_iter().map(|(_, j)| j).collect();
    let ip2 = lan.hosts[1].ip.to_string();
    for https in [false, true] {
        lan.wait(
            &format!("both jobs answer through host 2's router (https: {https})"),
            Duration::from_secs(60),
            |_| {
                (0..20)
                    .filter_map(|_| get(&ip2, https))
                    .collect::<BTreeSet<_>>()
                    == jobs
            },
        );
    }

    // Joining again changes nothing.
    let (ok, out, err) = join(1, url, token);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        format!("host {id2} is in cluster {DOMAIN} already: nothing changed")
    );
    assert!(!err.contains("restarting"), "{err}");
}
