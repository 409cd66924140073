//! discoverd through its HTTP API, its client library and DNS (queried with dig).

use std::time::{Duration, Instant};

use discoverd::{Client, EventKind};
use integration::discoverd::{reg, Discoverd};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn registrations_watches_leaders_and_expiry() {
    let d = Discoverd::start();
    let rt = rt();
    let c = d.client();
    let ttl = Duration::from_secs(30);
    rt.block_on(async {
        c.register("web", "a", &reg("100.100.0.2:8080"), ttl)
            .await
            .unwrap();
        // A watch starts with the current state, then live events in order.
        let mut w = c.watch(Some("web")).await.unwrap();
        let first: Vec<(EventKind, Option<String>)> = {
            let mut v = Vec::new();
            loop {
                let e = w.next().await.unwrap().unwrap();
                let done = e.kind() == EventKind::Current;
                v.push((e.kind(), e.instance().map(|i| i.id.clone())));
                if done {
                    break v;
                }
            }
        };
        assert_eq!(
            first,
            [
                (EventKind::Up, Some("a".into())),
                (EventKind::Leader, Some("a".into())),
                (EventKind::Current, None)
            ]
        );
        c.register("web", "b", &reg("100.100.0.3:8080"), Duration::from_secs(1))
            .await
            .unwrap();
        let mut meta = reg("100.100.0.2:8080");
        meta.meta.insert("version".into(), "2".into());
        c.register("web", "a", &meta, ttl).await.unwrap();
        c.deregister("web", "a").await.unwrap();
        let mut next = Vec::new();
        for _ in 0..4 {
            let e = tokio::time::timeout(Duration::from_secs(5), w.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            next.push((e.kind(), e.instance().map(|i| i.id.clone())));
        }
        assert_eq!(
            next,
            [
                (EventKind::Up, Some("b".into())),
                (EventKind::Update, Some("a".into())),
                (EventKind::Down, Some("a".into())),
                (EventKind::Leader, Some("b".into())),
            ]
        );
        // b's heartbeats never come: it expires within its TTL (1 s) plus the reaper's period.
        let t = Instant::now();
        let e = tokio::time::timeout(Duration::from_secs(3), w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.kind(), e.instance().map(|i| i.id.clone())),
            (EventKind::Down, Some("b".into()))
        );
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        assert!(c.instances("web").await.unwrap().is_empty());
        assert!(c.leader("web").await.unwrap().is_none());
        // A kept-alive registration outlives its TTL.
        let hb = c
            .register_alive("api", "x", reg("100.100.0.9:80"), Duration::from_secs(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(c.instances("api").await.unwrap().len(), 1);
        hb.stop().await.unwrap();
        assert!(c.instances("api").await.unwrap().is_empty());
        // Its registration can change while it is kept alive: sent at once, announced as an
        // update (the next heartbeat would come 30 s later).
        let mut w = c.watch(Some("kept")).await.unwrap();
        while w.next().await.unwrap().unwrap().kind() != EventKind::Current {}
        let hb = c
            .register_alive("kept", "k", reg("100.100.0.9:81"), Duration::from_secs(90))
            .await
            .unwrap();
        let mut changed = hb.registration();
        changed.meta.insert("draining".into(), "true".into());
        hb.update(changed);
        let update = async {
            loop {
                match w.next().await.unwrap().unwrap().kind() {
                    EventKind::Update => break,
                    // The registration itself, and its leadership of the service.
                    EventKind::Up | EventKind::Leader => continue,
                    other => panic!("{other:?} instead of an update"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(15), update)
            .await
            .expect("the update is sent at once, not with the next heartbeat");
        let listed = c.instances("kept").await.unwrap();
        assert_eq!(
            listed[0].meta.get("draining").map(String::as_str),
            Some("true")
        );
        hb.stop().await.unwrap();
    });
    // Service metadata, with compare-and-swap on its version, announced to watchers.
    rt.block_on(async {
        let mut w = c.watch(Some("db")).await.unwrap();
        while w.next().await.unwrap().unwrap().kind() != EventKind::Current {}
        assert!(c.meta("db").await.unwrap().is_none());
        let m = c
            .set_meta("db", serde_json::json!({"primary": "a"}), Some(0))
            .await
            .unwrap();
        assert!(c
            .set_meta("db", serde_json::json!({"x": 1}), Some(0))
            .await
            .is_err());
        let stale = c
            .set_meta("db", serde_json::json!({"x": 1}), Some(m.index + 100))
            .await;
        assert!(matches!(
            stale,
            Err(discoverd_api::client::ClientError::Api { status: 409, .. })
        ));
        let m2 = c
            .set_meta("db", serde_json::json!({"primary": "b"}), Some(m.index))
            .await
            .unwrap();
        assert!(m2.index > m.index);
        assert_eq!(c.meta("db").await.unwrap().unwrap().data["primary"], "b");
        for want in ["a", "b"] {
            let e = w.next().await.unwrap().unwrap();
            assert_eq!(e.kind(), EventKind::ServiceMeta);
            assert_eq!(e.meta().unwrap().data["primary"], want);
        }
    });
    // Bad input is refused with a JSON error.
    for (method, path, body) in [
        (
            "PUT",
            "/services/Web/instances/a",
            r#"{"addr":"1.2.3.4:5"}"#,
        ),
        ("PUT", "/services/web/instances/a", r#"{"addr":"nope"}"#),
        (
            "PUT",
            "/services/web/instances/a?ttl=0",
            r#"{"addr":"1.2.3.4:5"}"#,
        ),
        ("PUT", "/services/web/instances/a", "{bad"),
        (
            "PUT",
            "/services/web/instances/a%2Fb",
            r#"{"addr":"1.2.3.4:5"}"#,
        ),
    ] {
        let auth = format!("Authorization: Bearer {}", d.key);
        let url = format!("{}{path}", d.url);
        let status = integration::http_status(&[], &["-X", method, "-H", &auth, "-d", body, &url]);
        assert_eq!(status, "400", "{method} {path} {body}");
    }
}

#[test]
fn dns_answers_for_services_and_leaders() {
    let d = Discoverd::start();
    let rt = rt();
    let c = d.client();
    let ttl = Duration::from_secs(30);
    rt.block_on(async {
        c.register("web", "a", &reg("100.100.0.2:8080"), ttl)
            .await
            .unwrap();
        c.register("web", "b", &reg("100.100.0.3:8081"), ttl)
            .await
            .unwrap();
    });
    let (a, status) = d.dig("web.discoverd", "A");
    assert_eq!(
        (a, status.as_str()),
        (
            vec!["100.100.0.2".to_string(), "100.100.0.3".to_string()],
            "NOERROR"
        )
    );
    let (leader, _) = d.dig("leader.web.discoverd", "A");
    assert_eq!(leader, ["100.100.0.2"]);
    let (srv, _) = d.dig("_web._tcp.discoverd", "SRV");
    assert_eq!(
        srv,
        [
            "0 0 8080 100-100-0-2.web.discoverd.",
            "0 0 8081 100-100-0-3.web.discoverd."
        ]
    );
    let (target, _) = d.dig("100-100-0-3.web.discoverd", "A");
    assert_eq!(target, ["100.100.0.3"]);
    let (none, status) = d.dig("nothing.discoverd", "A");
    assert!(none.is_empty());
    assert_eq!(status, "NXDOMAIN");
    // Names outside the zone go upstream; the test's upstream (port 9) never answers.
    let (_, status) = d.dig("example.org", "A");
    assert_eq!(status, "REFUSED");
}

#[test]
fn registrations_survive_a_restart() {
    let mut d = Discoverd::start();
    let rt = rt();
    let c = d.client();
    rt.block_on(c.register("db", "p", &reg("100.100.0.5:5432"), Duration::from_secs(60)))
        .unwrap();
    d.kill9();
    d.spawn();
    let after = rt.block_on(c.instances("db")).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].addr.to_string(), "100.100.0.5:5432");
}

#[test]
fn writes_need_the_platform_key_or_the_services_own() {
    let d = Discoverd::start();
    let rt = rt();
    let ttl = Duration::from_secs(30);
    fn refused<T>(r: Result<T, discoverd_api::client::ClientError>) -> bool {
        matches!(
            r,
            Err(discoverd_api::client::ClientError::Api { status: 401, .. })
        )
    }
    rt.block_on(async {
        let platform = d.client();
        platform
            .register("victim", "real", &reg("100.100.0.2:80"), ttl)
            .await
            .unwrap();
        // Without a key, with a wrong one, and with another service's key: nothing is written.
        let anonymous = Client::new(d.url.parse().unwrap());
        let wrong = Client::new(d.url.parse().unwrap()).with_key("x".repeat(64));
        let other = Client::new(d.url.parse().unwrap())
            .with_key(discoverd::auth::service_key(&d.key, "evil"));
        for c in [&anonymous, &wrong, &other] {
            assert!(refused(
                c.register("victim", "evil", &reg("1.2.3.4:80"), ttl).await
            ));
            assert!(refused(c.deregister("victim", "real").await));
            assert!(refused(
                c.set_meta("victim", serde_json::json!({"x": 1}), None)
                    .await
            ));
        }
        let ids: Vec<String> = anonymous
            .instances("victim")
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["real"], "reads stay open, and nothing was changed");
        // A service's own key writes that service.
        let own = Client::new(d.url.parse().unwrap())
            .with_key(discoverd::auth::service_key(&d.key, "evil"));
        own.register("evil", "mine", &reg("100.100.0.9:80"), ttl)
            .await
            .unwrap();
    });
}
