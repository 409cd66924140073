//! Draining a host of the three-host cluster (run as a phase of `scheduler.rs`, on its
//! cluster): the jobs the scheduler placed there move to another host under load.

use std::time::Duration;

use integration::cluster::Cluster;

use crate::scheduler::{running, Load};

/// Host 1 runs some of the app's three web jobs; it is drained while requests run through
/// its router: they start again on host 2 before they stop, and no request fails. Ends with
/// host 1 taking jobs again.
pub fn a_drained_hosts_jobs_move_under_load(c: &Cluster, app_id: &str, domain: &str) {
    let api = c.controller();
    let on_first = |c: &Cluster| {
        running(c, app_id, "web")
            .iter()
            .filter(|(h, _)| *h == 0)
            .count()
    };
    assert!(on_first(c) > 0, "{:?}", running(c, app_id, "web"));
    let load = Load::start(c, domain);
    let out = c.hosts[0].cli(&["drain", "--timeout", "120"]);
    let (failures, _) = load.stop();
    assert!(out.contains("drained in"), "{out}");
    assert_eq!(failures, 0, "requests failed during the drain");
    assert_eq!(on_first(c), 0);
    c.wait("three web jobs on host 2", Duration::from_secs(30), |c| {
        let r = running(c, app_id, "web");
        r.len() == 3 && r.iter().all(|(h, _)| *h == 1)
    });
    // A draining host says so, refuses new jobs (leaving no record), and one-off jobs go
    // elsewhere.
    let host0 = c.hosts[0].client();
    assert!(c.block_on(host0.status()).unwrap().draining);
    let image = c.app_jobs(app_id)[0].1.config.config.image.clone();
    // Compared by id: jobs the scheduler stops on the draining host may be removed meanwhile.
    let ids = |c: &Cluster| -> std::collections::BTreeSet<String> {
        c.block_on(host0.jobs(&Default::default()))
            .unwrap()
            .into_iter()
            .map(|j| j.id.to_string())
            .collect()
    };
    let jobs_before = ids(c);
    let refused = c.hosts[0]
        .command(integration::workspace_bin("flynn-host"))
        .args(["run", "-d", &image, "true"])
        .output()
        .unwrap();
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && why.contains("is draining"),
        "{why}"
    );
    let new: Vec<String> = ids(c).difference(&jobs_before).cloned().collect();
    assert!(new.is_empty(), "a refused run left records: {new:?}");
    for _ in 0..4 {
        let job = c
            .block_on(api.run_job(
                "web",
                &controller_api::NewJob {
                    args: vec!["true".into()],
                    ..Default::default()
                },
            ))
            .unwrap();
        assert_eq!(job.host_id, c.hosts[1].id, "{job:?}");
    }
    let out = c.hosts[0].cli(&["undrain"]);
    assert!(out.contains("takes jobs again"), "{out}");
    assert!(!c.block_on(host0.status()).unwrap().draining);
}
