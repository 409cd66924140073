//! discoverd on a real 3-member etcd cluster: two discoverd instances share registrations,
//! etcd leases expire them, and killing the etcd leader loses nothing. A connection that
//! breaks under a metadata write costs a retry, not a write reported refused that was applied.

use std::time::{Duration, Instant};

use discoverd::etcd::Etcd;
use discoverd::store::{Store, StoreError};
use discoverd::EventKind;
use integration::discoverd::{reg, Discoverd};
use integration::etcd::EtcdCluster;
use integration::grpc_cut::{Cut, GrpcCut};

async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn two_discoverds_share_state_through_etcd_and_survive_its_leader() {
    let mut etcd = EtcdCluster::start(3);
    let a = Discoverd::start_with(etcd.endpoints());
    let b = Discoverd::start_with(etcd.endpoints());
    let (ca, cb) = (a.client(), b.client());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut watch = cb.watch(Some("web")).await.unwrap();
        assert_eq!(
            watch.next().await.unwrap().unwrap().kind(),
            EventKind::Current
        );
        // Long enough that "one" and "two" outlive the whole test on a busy machine.
        let ttl = Duration::from_secs(300);
        ca.register("web", "one", &reg("100.100.0.2:80"), ttl)
            .await
            .unwrap();
        let e = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.kind(), e.instance().unwrap().id.clone()),
            (EventKind::Up, "one".to_string())
        );
        cb.register("web", "two", &reg("100.100.0.3:80"), ttl)
            .await
            .unwrap();
        let seen = eventually("a to see two", async || {
            let l = ca.instances("web").await.ok()?;
            (l.len() == 2).then_some(l)
        })
        .await;
        assert_eq!(seen[0].id, "one", "oldest first");
        assert_eq!(cb.leader("web").await.unwrap().unwrap().id, "one");

        // Metadata written through one is seen by the other; compare-and-swap holds across both.
        let m = ca
            .set_meta("web", serde_json::json!({"v": 1}), Some(0))
            .await
            .unwrap();
        assert!(cb
            .set_meta("web", serde_json::json!({"v": 9}), Some(0))
            .await
            .is_err());
        let seen = eventually("b to see the metadata", async || {
            cb.meta("web").await.ok()?
        })
        .await;
        assert_eq!(
            (seen.index, &seen.data),
            (m.index, &serde_json::json!({"v": 1}))
        );
        cb.set_meta("web", serde_json::json!({"v": 2}), Some(m.index))
            .await
            .unwrap();
        assert_eq!(ca.leader("web").await.unwrap().unwrap().id, "one");

        // An etcd lease expires what stops heartbeating, for both.
        ca.register(
            "web",
            "short",
            &reg("100.100.0.4:80"),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        // Each discoverd follows etcd with its own watch: wait until both have seen the expiry.
        for c in [&ca, &cb] {
            eventually("short to expire", async || {
                let l = c.instances("web").await.ok()?;
                (!l.iter().any(|i| i.id == "short")).then_some(())
            })
            .await;
        }
    });

    let leader = etcd.leader().expect("an etcd leader");
    etcd.kill(leader);
    rt.block_on(async {
        for c in [&ca, &cb] {
            let l = c.instances("web").await.unwrap();
            assert_eq!(l.len(), 2, "registrations survive the etcd leader");
        }
        let three = eventually("a registration after the failover", async || {
            ca.register(
                "web",
                "three",
                &reg("100.100.0.5:80"),
                Duration::from_secs(300),
            )
            .await
            .ok()
        })
        .await;
        assert_eq!(three.id, "three");
        eventually("b to see three", async || {
            let l = cb.instances("web").await.ok()?;
            (l.len() == 3).then_some(())
        })
        .await;
    });
}

#[test]
fn metadata_writes_survive_connections_broken_under_them() {
    let etcd = EtcdCluster::start(1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (cut, client) = GrpcCut::etcd(&etcd.endpoints()[0]).await;
        let store = Etcd::from_client(client, "/test/cut");
        let data = |v: u32| serde_json::json!({ "leader": v });

        // The first write (only if none yet) never reached etcd: sent again, applied.
        cut.arm(Cut::Request(b"meta/web".to_vec()));
        let first = store.set_meta("web", data(1), Some(0)).await.unwrap();
        assert_eq!(cut.cuts(), 1, "the write's connection was broken");
        assert_eq!(first.data, data(1));

        // Applied and its answer lost: reported done, not refused as a conflict with itself.
        cut.arm(Cut::Answer(b"meta/web".to_vec()));
        let second = store
            .set_meta("web", data(2), Some(first.index))
            .await
            .unwrap();
        assert_eq!(cut.cuts(), 2, "the write's answer was dropped");
        assert_eq!(second.data, data(2));
        assert!(second.index > first.index);

        // Applied once: a write expecting the first version is refused, one expecting the
        // second is not.
        let e = store
            .set_meta("web", data(3), Some(first.index))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
        store
            .set_meta("web", data(3), Some(second.index))
            .await
            .unwrap();
    });
}
