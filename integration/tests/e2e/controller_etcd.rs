//! Two controllers on one real 3-member etcd cluster serve the same state: names stay unique
//! across both (even when both create the same one at once), event ids come from etcd in commit
//! order with no gap or repeat whichever controller wrote, and each one's event stream carries
//! the other's commits. A connection that breaks under a request costs the store a retry,
//! never a commit applied twice or reported failed when it was applied.

use controller::etcd::Etcd;
use controller::store::{Check, Committed, NewEvent, Store, Txn};
use controller_api::client::{ErrorCode, EventQuery};
use controller_api::{NewApp, ObjectType};
use integration::controller::ControllerProcess;
use integration::etcd::EtcdCluster;
use integration::grpc_cut::{Cut, GrpcCut};

fn named(name: &str) -> NewApp {
    NewApp {
        name: Some(name.parse().unwrap()),
        ..NewApp::default()
    }
}

#[test]
fn two_controllers_share_state_through_etcd() {
    let etcd = EtcdCluster::start(3);
    let a = ControllerProcess::start_with(Some("cluster.test"), etcd.endpoints(), "/test/ctl");
    let b = a.sibling();
    let (ca, cb) = (a.client(), b.client());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut stream_b = cb.follow_events(&EventQuery::default()).await.unwrap();
        let app = ca.create_app(&named("shared")).await.unwrap();
        assert_eq!(cb.app("shared").await.unwrap(), app, "b reads what a wrote");
        let e = cb.create_app(&named("shared")).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::AppExists), "{e}");
        // b's stream carries a's commits: the app and its default route.
        let first = stream_b.next().await.unwrap().unwrap();
        let second = stream_b.next().await.unwrap().unwrap();
        assert_eq!((first.id, second.id), (1, 2));
        assert_eq!(first.object_id, app.id);

        // The same names created through both at once: each exactly once.
        let names: Vec<String> = (0..20).map(|i| format!("race-{i}")).collect();
        let through = |c: &controller_api::client::Client| {
            let c = c.clone();
            let names = names.clone();
            tokio::spawn(async move {
                let mut won = 0;
                for n in &names {
                    match c.create_app(&named(n)).await {
                        Ok(_) => won += 1,
                        Err(e) if e.code() == Some(ErrorCode::AppExists) => {}
                        Err(e) => panic!("{n}: {e}"),
                    }
                }
                won
            })
        };
        let (wa, wb) = (through(&ca), through(&cb));
        let (wa, wb) = (wa.await.unwrap(), wb.await.unwrap());
        assert_eq!(
            wa + wb,
            names.len(),
            "every name created once ({wa} by a, {wb} by b)"
        );
        let apps = ca.apps().await.unwrap();
        assert_eq!(apps.len(), 1 + names.len());

        // Event ids: 1..=n, each once, in commit order, whoever committed.
        let all = cb
            .events(&EventQuery {
                count: Some(1000),
                ..EventQuery::default()
            })
            .await
            .unwrap();
        let ids: Vec<u64> = all.iter().rev().map(|e| e.id).collect();
        let expected: Vec<u64> = (1..=ids.len() as u64).collect();
        assert_eq!(ids, expected);
        assert_eq!(
            ids.len(),
            2 * (1 + names.len()),
            "an app and its route each"
        );
        // b's stream saw them all, in the same order.
        for want in 3..=ids.len() as u64 {
            assert_eq!(stream_b.next().await.unwrap().unwrap().id, want);
        }
    });
}

/// A commit that creates `key` (refused once it exists) with one event.
fn create(key: &str) -> Txn {
    Txn {
        checks: vec![Check::Absent(key.into())],
        puts: vec![(key.into(), b"1".to_vec())],
        deletes: vec![],
        events: vec![NewEvent {
            app: None,
            object_type: ObjectType::App,
            object_id: key.into(),
            data: serde_json::json!({ "key": key }),
        }],
    }
}

#[test]
fn connections_broken_under_requests_cost_a_retry_not_a_commit() {
    let etcd = EtcdCluster::start(1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (cut, client) = GrpcCut::etcd(&etcd.endpoints()[0]).await;
        let store = Etcd::from_client(client, "/test/cut");
        let done = |r: Committed| match r {
            Committed::Done(events) => events.iter().map(|e| e.id).collect::<Vec<_>>(),
            Committed::Conflict => panic!("a conflict, with nothing else writing"),
        };

        // The commit never reached etcd: sent again, applied once.
        cut.arm(Cut::Request(b"kv/lost-request".to_vec()));
        let r = store.commit(create("lost-request")).await.unwrap();
        assert_eq!(cut.cuts(), 1, "the commit's connection was broken");
        assert_eq!(done(r), [1]);

        // etcd applied it and the answer was lost: reported done, not sent again (its check
        // would then fail and the caller would be told the key already existed).
        cut.arm(Cut::Answer(b"kv/lost-answer".to_vec()));
        let r = store.commit(create("lost-answer")).await.unwrap();
        assert_eq!(cut.cuts(), 2, "the commit's answer was dropped");
        assert_eq!(done(r), [2]);

        // A read whose answer was lost is read again.
        cut.arm(Cut::Answer(b"kv/lost-answer".to_vec()));
        let got = store.get("lost-answer").await.unwrap().expect("the key");
        assert_eq!(cut.cuts(), 3, "the read's answer was dropped");
        assert_eq!(got.value, b"1");

        // Each commit applied once: two events, the counter at 2, a second create refused.
        let ids: Vec<u64> = store
            .events(0, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [1, 2]);
        assert_eq!(store.last_event().await.unwrap(), 2);
        assert_eq!(
            store.commit(create("lost-answer")).await.unwrap(),
            Committed::Conflict
        );
    });
}
