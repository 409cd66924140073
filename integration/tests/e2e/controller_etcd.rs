//! Two controllers on one real 3-member etcd cluster serve the same state: names stay unique
//! across both (even when both create the same one at once), event ids come from etcd in commit
//! order with no gap or repeat whichever controller wrote, and each one's event stream carries
//! the other's commits.

use controller_api::client::{ErrorCode, EventQuery};
use controller_api::NewApp;
use integration::controller::ControllerProcess;
use integration::etcd::EtcdCluster;

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
