//! etcd run by the platform: `flynn-host bootstrap --domain` on a host whose daemon API is on
//! a LAN address (and no `--etcd`) starts a one-member etcd as a job there and keeps the
//! cluster's state in it; hosts 2 and 3 each add a member when they join, host 4 runs none;
//! every host's discoverd shares the state, and the scheduler runs a controller and a
//! scheduler on every host (bootstrap's handed over). Joining and bootstrapping again change nothing.
//! Host 3 leaves (its member removed), host 4 then adds one. With host 1's member down, host
//! 1's discoverd (started when etcd had one member, and following the members that joined
//! since) still takes registrations. A member killed is started again by its host; a host
//! cut off the LAN has its member replaced by the next host that joins; back, its removed
//! member ends for good and its next join clears it.

use std::process::Command;

use integration::cluster::Lan;
use integration::root_test;

const DOMAIN: &str = "etcd.test";

/// `etcdctl endpoint health` at `endpoint` succeeds.
fn health(endpoint: &str) -> bool {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "--command-timeout=5s"])
        .args(["endpoint", "health"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `etcdctl member list` at `endpoint`: (name, client URLs) of each member.
fn members(endpoint: &str) -> Vec<(String, String)> {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "--command-timeout=5s"])
        .args(["member", "list", "-w", "simple"])
        .output()
        .expect("etcdctl");
    assert!(
        out.status.success(),
        "etcdctl member list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ID, status, name, peer URLs, client URLs, is learner.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            (f[2].to_string(), f[4].to_string())
        })
        .collect()
}

/// Kills job `id`'s process on host `i` with SIGKILL and waits until its host has started it
/// again (one more restart, running, another pid); returns the job then.
fn kill_and_wait_restart(lan: &Lan, i: usize, id: &host_api::JobId, what: &str) -> host_api::Job {
    let host = lan.hosts[i].client();
    let before = lan.block_on(host.job(id)).unwrap();
    let pid = before.pid.expect("a running job has a pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    let mut again = None;
    lan.wait(
        &format!("{what} started again by its host"),
        std::time::Duration::from_secs(60),
        |l| {
            again = l.block_on(host.job(id)).ok().filter(|j| {
                j.restarts > before.restarts
                    && j.state == host_api::JobState::Running
                    && j.pid != Some(pid)
            });
            again.is_some()
        },
    );
    again.expect("waited for")
}

#[root_test(isolated)]
fn etcd_runs_as_jobs_on_the_first_three_hosts_of_a_cluster() {
    let lan = Lan::start(4);
    let state = |i: usize| lan.hosts[i].state().display().to_string();
    let ip = |i: usize| lan.hosts[i].ip.to_string();
    let state1 = state(0);
    let (ok, _, progress) = lan.bootstrap(0, DOMAIN, &[]);
    assert!(ok, "bootstrap failed:\n{progress}");
    let etcd1 = format!("http://{}:2379", ip(0));
    for step in [
        "etcd: started".to_string(),
        format!("ok: etcd answers healthy on {etcd1}"),
        "controller: bootstrap's controller stopped; the scheduler runs the controller now".into(),
        "scheduler: bootstrap's scheduler stopped; the scheduler runs the scheduler now".into(),
    ] {
        assert!(progress.contains(&step), "{step:?} in:\n{progress}");
    }
    let line = progress
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("flynn-host join "))
        .unwrap_or_else(|| panic!("no join line in:\n{progress}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let (url, token) = (words[2], words[3]);
    let cluster = |i: usize| -> host_api::ClusterInfo {
        let text = std::fs::read_to_string(lan.hosts[i].state().join("cluster.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let c1 = cluster(0);
    assert!(c1.etcd_jobs);
    assert_eq!(c1.etcd, vec![etcd1.clone()]);
    assert_eq!(
        members(&etcd1),
        vec![(lan.hosts[0].id.clone(), etcd1.clone())]
    );

    let join = |i: usize| lan.join(i, url, token);
    // Hosts 2 and 3 add a member each.
    for i in 1..3 {
        let (ok, _, err) = join(i);
        assert!(ok, "host {} join failed:\n{err}", i + 1);
        let step = format!(
            "etcd: added member {} (http://{}:2380); the cluster has {} members",
            lan.hosts[i].id,
            ip(i),
            i + 1
        );
        assert!(err.contains(&step), "{step:?} in:\n{err}");
        assert!(
            err.contains("ok: the scheduler runs the router on this host"),
            "{err}"
        );
    }
    let want: Vec<(String, String)> = (0..3)
        .map(|i| (lan.hosts[i].id.clone(), format!("http://{}:2379", ip(i))))
        .collect();
    let mut listed = members(&etcd1);
    listed.sort_by_key(|(_, url)| url.clone());
    assert_eq!(listed, want);
    let urls: Vec<String> = want.iter().map(|(_, u)| u.clone()).collect();
    let mut on3 = cluster(2).etcd;
    on3.sort();
    assert_eq!(on3, urls);
    // Host 1 bootstrapped alone with its own member; what it hands a joining host follows
    // the members since (so a join through it works while its own member is down), and so
    // does its cluster.json.
    let bundle = lan.block_on(lan.hosts[0].client().cluster_join()).unwrap();
    let mut handed = bundle.cluster.etcd;
    handed.sort();
    assert_eq!(handed, urls);
    let mut on1 = cluster(0).etcd;
    on1.sort();
    assert_eq!(on1, urls);

    // Host 4 runs none.
    let (ok, _, err) = join(3);
    assert!(ok, "host 4 join failed:\n{err}");
    assert!(
        err.contains("etcd: the cluster has 3 members already; none runs on this host"),
        "{err}"
    );
    let etcd_job: host_api::JobId = "etcd".parse().unwrap();
    assert!(lan.block_on(lan.hosts[3].client().job(&etcd_job)).is_err());
    assert_eq!(cluster(3).etcd.len(), 3);
    assert_eq!(members(&etcd1).len(), 3);

    // A controller on every host, all on the one state: the apps bootstrap recorded are
    // listed by host 4's.
    let key = std::fs::read_to_string(lan.hosts[0].state().join("cluster.key")).unwrap();
    let api4 = controller_api::client::Client::new(
        format!("http://{}:8081", ip(3)).parse().unwrap(),
        key.trim(),
    );
    lan.wait(
        "host 4's controller lists the system apps",
        std::time::Duration::from_secs(60),
        |l| {
            l.block_on(api4.apps())
                .is_ok_and(|apps| apps.iter().any(|a| a.name.as_str() == "gitreceive"))
        },
    );

    // One state: host 4's discoverd lists every host's registration.
    let d4 = discoverd_api::client::Client::new(format!("http://{}:1111", ip(3)).parse().unwrap());
    lan.wait(
        "host 4's discoverd lists all four hosts",
        std::time::Duration::from_secs(60),
        |l| {
            l.block_on(d4.instances(host_api::HOST_SERVICE))
                .is_ok_and(|all| all.len() == 4)
        },
    );

    // Again: nothing changes.
    let (ok, out, err) = join(1);
    assert!(ok, "{err}");
    assert!(out.contains("nothing changed"), "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "etcd: this host is member {} already",
            lan.hosts[1].id
        )),
        "{err}"
    );
    let (ok, _, progress) = lan.bootstrap(0, DOMAIN, &[]);
    assert!(ok, "{progress}");
    assert!(progress.contains("etcd: already runs"), "{progress}");
    assert!(
        progress.contains("controller: runs under the scheduler (job "),
        "{progress}"
    );
    assert!(
        progress.contains("scheduler: runs under the scheduler (job "),
        "{progress}"
    );
    assert!(
        progress.contains("layer 1 already runs on this host: nothing changed."),
        "{progress}"
    );
    assert_eq!(members(&etcd1).len(), 3);

    // Host 1 runs the controller and cannot leave; host 3 leaves (drained first) and its
    // member goes; host 4 then adds one.
    let (ok, _, err) = lan.flynn_host(0, &["leave", "--state", &state1]);
    assert!(!ok);
    assert!(
        err.contains("this host runs the cluster's registry, gitreceive"),
        "{err}"
    );
    let state3 = state(2);
    let (ok, out, err) = lan.flynn_host(2, &["leave", "--state", &state3]);
    assert!(ok, "host 3 leave failed:\n{out}\n{err}");
    let id3 = &lan.hosts[2].id;
    assert!(
        out.contains(&format!("host {id3} left cluster {DOMAIN}")),
        "{out}"
    );
    for step in [
        format!("etcd: removed member {id3}; the cluster has 2 members"),
        "etcd: job and data removed".into(),
        "discoverd: stopped".into(),
    ] {
        assert!(err.contains(&step), "{step:?} in:\n{err}");
    }
    assert_eq!(members(&etcd1).len(), 2);
    assert!(!lan.hosts[2].state().join("cluster.json").exists());
    assert!(lan.block_on(lan.hosts[2].client().job(&etcd_job)).is_err());
    let (ok, _, err) = join(3);
    assert!(ok, "host 4 join failed:\n{err}");
    let step = format!(
        "etcd: added member {} (http://{}:2380); the cluster has 3 members",
        lan.hosts[3].id,
        ip(3)
    );
    assert!(err.contains(&step), "{step:?} in:\n{err}");

    // Host 1's discoverd followed the members that joined (its log says so) ...
    let h1 = lan.hosts[0].client();
    let discoverd: host_api::JobId = "discoverd".parse().unwrap();
    let log = |id: &host_api::JobId| -> String {
        lan.block_on(async {
            let mut out = String::new();
            if let Ok(mut l) = h1.logs(id, &host_api::LogOptions::default()).await {
                while let Ok(Some(line)) = l.next().await {
                    out += &line.line;
                    out.push('\n');
                }
            }
            out
        })
    };
    lan.wait(
        "host 1's discoverd adds the endpoints of the members on hosts 2 and 4",
        std::time::Duration::from_secs(60),
        |_| {
            let log = log(&discoverd);
            [1, 3].iter().all(|&i| {
                log.lines().any(|l| {
                    l.contains("etcd member joined: endpoint added")
                        && l.contains(&format!("http://{}:2379", ip(i)))
                })
            })
        },
    );
    // ... so with host 1's member stopped (two of three still a majority) a job that host 1
    // registers through it is seen by host 2's discoverd.
    lan.block_on(h1.stop(&etcd_job, std::time::Duration::from_secs(5)))
        .unwrap();
    let mut probe = host_api::CreateJob::new(
        lan.image.clone(),
        vec!["httpd".into(), "-f".into(), "-p".into(), "8080".into()],
    );
    probe.id = Some("probe".parse().unwrap());
    probe.config.network = host_api::NetworkMode::Host;
    probe.service = Some("probe".parse().unwrap());
    probe.service_port = Some(8080);
    lan.block_on(h1.pull_complete(&lan.image)).unwrap();
    lan.block_on(h1.create_job(&probe)).unwrap();
    let d3 = discoverd_api::client::Client::new(format!("http://{}:1111", ip(1)).parse().unwrap());
    lan.wait(
        "host 2's discoverd lists the job host 1 registered",
        std::time::Duration::from_secs(60),
        |l| {
            l.block_on(d3.instances("probe"))
                .is_ok_and(|all| all.len() == 1)
        },
    );

    // A member whose process dies is started again by its host (etcd members have restart
    // policy `on-failure`) on its data, with no join: host 2's member is killed and
    // answers again as one of three. Host 1's, stopped through the API, stays stopped.
    let h2 = lan.hosts[1].client();
    let again = kill_and_wait_restart(&lan, 1, &etcd_job, "host 2's etcd member");
    assert_eq!(again.restarts, 1, "{again:#?}");
    let etcd2 = format!("http://{}:2379", ip(1));
    lan.wait(
        "host 2's etcd member healthy again",
        std::time::Duration::from_secs(60),
        |_| health(&etcd2),
    );
    assert_eq!(members(&etcd2).len(), 3);
    let stopped = lan.block_on(h1.job(&etcd_job)).unwrap();
    assert!(stopped.state.is_final() && stopped.stopped, "{stopped:#?}");
    assert_eq!(stopped.restarts, 0);

    // Host 1's discoverd was started at bootstrap with `--etcd` naming host 1's member
    // alone, which is down now. Started again by its host, it is given the members host 1
    // knows (CLUSTER_ETCD_ENDPOINTS) and serves from them.
    kill_and_wait_restart(&lan, 0, &discoverd, "host 1's discoverd");
    let d1 = discoverd_api::client::Client::new(format!("http://{}:1111", ip(0)).parse().unwrap());
    lan.wait(
        "host 1's restarted discoverd lists the job registered through it",
        std::time::Duration::from_secs(60),
        |l| {
            l.block_on(d1.instances("probe"))
                .is_ok_and(|all| all.len() == 1)
        },
    );
    lan.wait(
        "host 1's restarted discoverd logs host 2's member among its etcd endpoints",
        std::time::Duration::from_secs(30),
        |_| {
            log(&discoverd)
                .lines()
                .rfind(|l| l.contains("etcd store"))
                .is_some_and(|l| l.contains(&format!("http://{}:2379", ip(1))))
        },
    );

    // A host that dies is replaced with one command. Host 1's member runs again; host 2 is
    // cut off the LAN; once its registration expired, host 3 joins again and its member
    // replaces host 2's.
    lan.block_on(h1.delete_job(&etcd_job, true)).unwrap();
    lan.block_on(h1.create_job(&stopped.config)).unwrap();
    lan.wait(
        "host 1's etcd member healthy again",
        std::time::Duration::from_secs(60),
        |_| health(&etcd1),
    );
    let dead = lan.hosts[1].id.clone();
    integration::run_ok(Command::new("ip").args(["link", "set", "lan2", "down"]));
    lan.wait(
        "host 2 gone from host 4's discoverd",
        std::time::Duration::from_secs(90),
        |l| {
            l.block_on(d4.instances(host_api::HOST_SERVICE))
                .is_ok_and(|all| !all.is_empty() && all.iter().all(|i| i.id != dead))
        },
    );
    let (ok, _, err) = lan.join(2, url, token);
    assert!(ok, "host 3 join (replacing host 2) failed:\n{err}");
    let step = format!(
        "etcd: member {dead} (http://{}:2379) does not answer and its host is gone from discoverd: removed it, this host replaces it",
        ip(1)
    );
    assert!(err.contains(&step), "{step:?} in:\n{err}");
    let mut names: Vec<String> = members(&etcd1).into_iter().map(|(n, _)| n).collect();
    names.sort();
    let mut want: Vec<String> = [0, 2, 3].iter().map(|&i| lan.hosts[i].id.clone()).collect();
    want.sort();
    assert_eq!(names, want);
    lan.wait(
        "host 3's etcd member healthy",
        std::time::Duration::from_secs(60),
        |_| health(&format!("http://{}:2379", ip(2))),
    );

    // Host 2 comes back: its member learns from the others that it was removed and exits 0,
    // which its restart policy leaves ended (`always` would start it again for ever). Host 2
    // joining again removes that member's job and data and runs none.
    integration::run_ok(Command::new("ip").args(["link", "set", "lan2", "up"]));
    lan.wait(
        "host 2's removed etcd member ended",
        std::time::Duration::from_secs(120),
        |l| {
            l.block_on(h2.job(&etcd_job))
                .is_ok_and(|j| j.state.is_final())
        },
    );
    let ended = lan.block_on(h2.job(&etcd_job)).unwrap();
    assert_eq!(
        ended.exit.as_ref().and_then(|e| e.code),
        Some(0),
        "{ended:#?}"
    );
    assert!(!ended.config.restart.restarts(&ended), "{ended:#?}");
    let (ok, _, err) = lan.join(1, url, token);
    assert!(
        ok,
        "host 2 join (after its member was removed) failed:\n{err}"
    );
    for step in [
        "etcd: this host's earlier member (exited) is no member of the cluster (it was removed while its host was away): removed its job and data",
        "etcd: the cluster has 3 members already; none runs on this host",
    ] {
        assert!(err.contains(step), "{step:?} in:\n{err}");
    }
    assert!(lan.block_on(h2.job(&etcd_job)).is_err());
    assert_eq!(members(&etcd1).len(), 3);

    // The first host's member removed by the others (as a joining host replaces a dead
    // one): it learns so and exits 0. A second bootstrap there refuses to start it again and
    // says how to come back; joining through another host removes it and adds a new one.
    let etcd3 = format!("http://{}:2379", ip(2));
    let list = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &etcd3, "--command-timeout=5s"])
        .args(["member", "list", "-w", "simple"])
        .output()
        .expect("etcdctl");
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    let id1 = list
        .lines()
        .find(|l| l.split(", ").nth(2) == Some(lan.hosts[0].id.as_str()))
        .and_then(|l| l.split(", ").next())
        .unwrap_or_else(|| panic!("host 1's member in:\n{list}"))
        .to_string();
    // etcd refuses a removal ("unhealthy cluster") until the members that would be left
    // have been connected for 5 s; host 4's was added just before.
    lan.wait(
        "etcd removes host 1's member",
        std::time::Duration::from_secs(60),
        |_| {
            Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &etcd3, "--command-timeout=5s"])
                .args(["member", "remove", &id1])
                .output()
                .is_ok_and(|o| o.status.success())
                || !members(&etcd3).iter().any(|(n, _)| *n == lan.hosts[0].id)
        },
    );
    lan.wait(
        "host 1's removed etcd member ended",
        std::time::Duration::from_secs(120),
        |l| {
            l.block_on(h1.job(&etcd_job))
                .is_ok_and(|j| j.state.is_final())
        },
    );
    let (ok, _, progress) = lan.bootstrap(0, DOMAIN, &[]);
    assert!(!ok, "bootstrap started a removed member again:\n{progress}");
    assert!(
        progress.contains("etcd: this host's member (job etcd, exited with code 0) is no member of the cluster any more"),
        "{progress}"
    );
    let ended = lan.block_on(h1.job(&etcd_job)).unwrap();
    assert!(ended.state.is_final() && ended.restarts == 0, "{ended:#?}");
    let (ok, _, err) = lan.join(0, &format!("http://{}:1113", ip(2)), token);
    assert!(
        ok,
        "host 1 join (after its member was removed) failed:\n{err}"
    );
    for step in [
        "etcd: this host's earlier member (exited) is no member of the cluster (it was removed while its host was away): removed its job and data".to_string(),
        format!(
            "etcd: added member {} (http://{}:2380); the cluster has 3 members",
            lan.hosts[0].id,
            ip(0)
        ),
    ] {
        assert!(err.contains(&step), "{step:?} in:\n{err}");
    }
    lan.wait(
        "host 1's new etcd member healthy",
        std::time::Duration::from_secs(60),
        |_| health(&etcd1),
    );
    assert_eq!(members(&etcd3).len(), 3);
}
