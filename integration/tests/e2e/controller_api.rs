//! The controller through its HTTP API and client: every resource, the errors bad input gets
//! (and that it changes nothing), keys, the event log and its stream, a restart after
//! `kill -9`, and the API against its OpenAPI document under schemathesis.

use std::collections::BTreeMap;
use std::process::Command;

use controller_api::client::ErrorCode;
use controller_api::client::{ClientError, EventQuery};
use controller_api::{
    AppUpdate, HttpRoute, NewApp, NewArtifact, NewRelease, ObjectType, ProcessType, PutFormation,
    Route, Strategy, TcpRoute,
};
use integration::controller::ControllerProcess;
use integration::schemathesis;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// The error code of a failed call (panics on success).
fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> ErrorCode {
    r.expect_err("the call should fail")
        .code()
        .unwrap_or(ErrorCode::Unknown)
}

fn named(name: &str) -> NewApp {
    NewApp {
        name: Some(name.parse().unwrap()),
        ..NewApp::default()
    }
}

fn image(n: u8) -> NewArtifact {
    NewArtifact {
        kind: Default::default(),
        uri: format!(
            "127.0.0.1:5000/apps/web@sha256:{}",
            format!("{n:02x}").repeat(32)
        ),
        meta: BTreeMap::new(),
    }
}

fn web_release(app: &str, artifact: &str) -> NewRelease {
    let mut processes = BTreeMap::new();
    processes.insert(
        "web".parse().unwrap(),
        ProcessType {
            args: vec!["/bin/web".into()],
            ..ProcessType::default()
        },
    );
    NewRelease {
        app_id: app.into(),
        artifacts: vec![artifact.into()],
        env: [("GREETING".to_string(), "hello".to_string())].into(),
        meta: BTreeMap::new(),
        processes,
    }
}

/// `curl` of `path` with extra arguments: the status line's code and the headers.
fn curl(c: &ControllerProcess, path: &str, args: &[&str]) -> (u16, String) {
    let out = integration::run_ok(
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-D", "-"])
            .args(args)
            .arg(format!("{}{path}", c.url)),
    );
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, out.to_ascii_lowercase())
}

#[test]
fn keys_as_bearer_tokens_or_basic_passwords() {
    let c = ControllerProcess::start(None);
    assert_eq!(curl(&c, "/ping", &[]).0, 200, "liveness needs no key");
    let (status, headers) = curl(&c, "/apps", &[]);
    assert_eq!(status, 401);
    assert!(headers.contains("www-authenticate: basic"), "{headers}");
    let bearer = format!("Authorization: Bearer {}", c.key);
    assert_eq!(curl(&c, "/apps", &["-H", &bearer]).0, 200);
    assert_eq!(curl(&c, "/apps", &["-u", &format!("git:{}", c.key)]).0, 200);
    assert_eq!(curl(&c, "/apps", &["-u", "git:wrong"]).0, 401);
    let rt = rt();
    let wrong = c.client_with(&"x".repeat(64));
    assert_eq!(code(rt.block_on(wrong.apps())), ErrorCode::Unauthorized);
}

#[test]
fn apps_releases_formations_and_bad_input() {
    let c = ControllerProcess::start(Some("cluster.test"));
    let api = c.client();
    rt().block_on(async {
        // Apps: names are unique and checked; a non-system app gets its default route.
        let app = api.create_app(&named("web-shop")).await.unwrap();
        assert_eq!(app.strategy, Strategy::AllAtOnce);
        assert_eq!(app.deploy_timeout, 120);
        assert_eq!(
            code(api.create_app(&named("web-shop")).await),
            ErrorCode::AppExists
        );
        let routes = api.app_routes("web-shop").await.unwrap();
        let [Route::Http(r)] = routes.as_slice() else {
            panic!("one default route: {routes:?}")
        };
        assert_eq!(
            (r.domain.as_str(), r.service.as_str()),
            ("web-shop.cluster.test", "web-shop-web")
        );
        assert!(r.drain_backends);
        let generated = api.create_app(&NewApp::default()).await.unwrap();
        assert!(controller_api::valid_app_name(generated.name.as_str()));
        let system = NewApp {
            name: Some("router".parse().unwrap()),
            meta: Some([("flynn-system-app".to_string(), "true".to_string())].into()),
            ..NewApp::default()
        };
        api.create_app(&system).await.unwrap();
        assert!(
            api.app_routes("router").await.unwrap().is_empty(),
            "no default route"
        );
        // Bad bodies are refused with 400 and change nothing.
        let http = api.http();
        for body in [
            r#"{"name": "Bad_Name"}"#,
            r#"{"name": "ok", "colour": "red"}"#,
            r#"{"name": "#,
            r#"{"deploy_timeout": 0}"#,
            r#"{"strategy": "sideways"}"#,
        ] {
            let r = http
                .send(
                    hyper::Method::POST,
                    "/apps",
                    Some(body.as_bytes().to_vec()),
                    &[],
                )
                .await;
            assert_eq!(code(r), ErrorCode::BadRequest, "{body}");
        }
        assert_eq!(api.apps().await.unwrap().len(), 3);
        assert_eq!(code(api.app("no-such-app").await), ErrorCode::NoSuchApp);
        let update = AppUpdate {
            strategy: Some(Strategy::OneByOne),
            deploy_timeout: Some(300),
            ..AppUpdate::default()
        };
        let updated = api.update_app(&app.id, &update).await.unwrap();
        assert_eq!(
            (updated.strategy, updated.deploy_timeout),
            (Strategy::OneByOne, 300)
        );

        // Artifacts are images pinned by digest.
        let mut tagged = image(1);
        tagged.uri = "127.0.0.1:5000/apps/web:latest".into();
        assert_eq!(
            code(api.create_artifact(&tagged).await),
            ErrorCode::BadRequest
        );
        let artifact = api.create_artifact(&image(1)).await.unwrap();
        assert_eq!(api.artifact(&artifact.id).await.unwrap(), artifact);

        // Releases: checked, immutable, with resource defaults filled in.
        let release = api
            .create_release(&web_release("web-shop", &artifact.id))
            .await
            .unwrap();
        let web = &release.processes["web"];
        assert_eq!(web.resources.memory.unwrap().limit, Some(1 << 30));
        assert_eq!(web.resources.max_procs.unwrap().limit, Some(1024));
        assert_eq!(
            code(api.create_release(&web_release("nope", &artifact.id)).await),
            ErrorCode::NoSuchApp
        );
        assert_eq!(
            code(api.create_release(&web_release("web-shop", "0000")).await),
            ErrorCode::NoSuchArtifact
        );
        let mut empty_env = web_release("web-shop", &artifact.id);
        empty_env.env.insert(String::new(), "x".into());
        assert_eq!(
            code(api.create_release(&empty_env).await),
            ErrorCode::BadRequest
        );
        let mut host_mount = web_release("web-shop", &artifact.id);
        host_mount.processes.get_mut("web").unwrap().mounts = vec![controller_api::HostMount {
            location: "/etc".into(),
            target: "/host-etc".into(),
            writeable: true,
        }];
        let e = api.create_release(&host_mount).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::HostAccessDenied), "{e}");
        assert!(e.to_string().contains("flynn-system-app"), "{e}");
        let mut host_net = web_release("web-shop", &artifact.id);
        host_net.processes.get_mut("web").unwrap().host_network = true;
        assert_eq!(
            code(api.create_release(&host_net).await),
            ErrorCode::HostAccessDenied
        );
        host_net.app_id = "router".into();
        api.create_release(&host_net)
            .await
            .expect("system apps may use the host network");
        let releases = api.app_releases("web-shop").await.unwrap();
        assert_eq!(
            releases,
            vec![release.clone()],
            "refused releases left nothing"
        );

        // The current release moves only to a release of the app.
        assert_eq!(
            code(api.app_release("web-shop").await),
            ErrorCode::NoSuchRelease
        );
        let other = api
            .create_release(&{
                let mut r = web_release("router", &artifact.id);
                r.processes.clear();
                r
            })
            .await
            .unwrap();
        assert_eq!(
            code(api.set_app_release("web-shop", &other.id).await),
            ErrorCode::NoSuchRelease
        );
        let set = api.set_app_release("web-shop", &release.id).await.unwrap();
        assert_eq!(set.release.as_deref(), Some(release.id.as_str()));
        assert_eq!(api.app_release("web-shop").await.unwrap(), release);

        // Formations: only process types the release has, only for runnable releases.
        let put = |n: u32, t: &str| PutFormation {
            processes: [(t.parse().unwrap(), n)].into(),
            tags: BTreeMap::new(),
        };
        let f = api
            .put_formation("web-shop", &release.id, &put(3, "web"))
            .await
            .unwrap();
        assert_eq!(f.processes["web"], 3);
        let e = api
            .put_formation("web-shop", &release.id, &put(1, "worker"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::BadRequest));
        assert!(e.to_string().contains("no process type worker"), "{e}");
        assert_eq!(
            code(
                api.put_formation("web-shop", &release.id, &put(5000, "web"))
                    .await
            ),
            ErrorCode::BadRequest
        );
        let bare = api
            .create_release(&NewRelease {
                artifacts: vec![],
                ..web_release("web-shop", &artifact.id)
            })
            .await
            .unwrap();
        assert_eq!(
            code(
                api.put_formation("web-shop", &bare.id, &put(1, "web"))
                    .await
            ),
            ErrorCode::NotDeployable
        );
        assert_eq!(api.formation("web-shop", &release.id).await.unwrap(), f);
        assert_eq!(api.formations("web-shop").await.unwrap(), vec![f.clone()]);
        api.put_formation("web-shop", &release.id, &put(0, "web"))
            .await
            .unwrap();
        let active: Vec<controller_api::Formation> = http
            .call(hyper::Method::GET, "/formations?active=true", None::<&()>)
            .await
            .unwrap();
        assert!(active.is_empty(), "{active:?}");
        api.delete_formation("web-shop", &release.id).await.unwrap();
        assert_eq!(
            code(api.formation("web-shop", &release.id).await),
            ErrorCode::NoSuchFormation
        );
    });
}

#[test]
fn routes_are_unique_per_domain_path_and_port() {
    let c = ControllerProcess::start(Some("cluster.test"));
    let api = c.client();
    rt().block_on(async {
        api.create_app(&named("shop")).await.unwrap();
        api.create_app(&named("blog")).await.unwrap();
        // A path route falls back on the domain's `/` route, which must exist.
        let mut api_route = HttpRoute::new("", "shop.cluster.test", "shop-api");
        api_route.path = "/api/".into();
        let created = api.create_route("shop", &Route::Http(api_route.clone())).await.unwrap();
        assert!(created.id().starts_with("http-"), "{created:?}");
        let mut orphan = api_route.clone();
        orphan.domain = "nowhere.test".into();
        assert_eq!(code(api.create_route("shop", &Route::Http(orphan)).await), ErrorCode::BadRequest);
        // Another app cannot take a domain and path that is served.
        let taken = HttpRoute::new("", "SHOP.cluster.test", "blog-web");
        let e = api.create_route("blog", &Route::Http(taken)).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::RouteConflict), "{e}");
        let mut bad_path = HttpRoute::new("", "blog.example", "blog-web");
        bad_path.path = "api".into();
        assert_eq!(code(api.create_route("blog", &Route::Http(bad_path)).await), ErrorCode::BadRequest);
        // The `/` route stays while path routes depend on it.
        let default = api
            .app_routes("shop")
            .await
            .unwrap()
            .into_iter()
            .find(|r| matches!(r, Route::Http(h) if h.path == "/"))
            .unwrap();
        let e = api.delete_route("shop", "http", default.id()).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::RouteConflict));
        assert!(e.to_string().contains("dependent routes"), "{e}");
        api.delete_route("shop", "http", created.id()).await.unwrap();
        api.delete_route("shop", "http", default.id()).await.unwrap();
        assert_eq!(code(api.route("shop", "http", default.id()).await), ErrorCode::NoSuchRoute);
        // TCP routes: a port in the range, not the HTTP ports, one route per port.
        let tcp = |port: u16| {
            Route::Tcp(TcpRoute {
                id: String::new(),
                parent_ref: None,
                service: "shop-db".into(),
                port,
                leader: true,
                drain_backends: false,
                send_proxy_protocol: false,
            })
        };
        let e = api.create_route("shop", &tcp(443)).await.unwrap_err();
        assert!(e.to_string().contains("reserved for HTTP/HTTPS"), "{e}");
        assert_eq!(code(api.create_route("shop", &tcp(5432)).await), ErrorCode::BadRequest);
        let db = api.create_route("shop", &tcp(3001)).await.unwrap();
        assert_eq!(code(api.create_route("blog", &tcp(3001)).await), ErrorCode::RouteConflict);
        // An update may move a route; the old port is free again.
        let Route::Tcp(mut moved) = db.clone() else { unreachable!() };
        moved.port = 3002;
        api.update_route("shop", &Route::Tcp(moved)).await.unwrap();
        api.create_route("blog", &tcp(3001)).await.expect("3001 is free after the move");
        assert_eq!(code(api.create_route("blog", &tcp(3002)).await), ErrorCode::RouteConflict);
        // Every route is listed once, with its app as parent.
        let all = api.routes().await.unwrap();
        assert_eq!(all.len(), 3, "{all:?}");
        let shop = api.app("shop").await.unwrap();
        let parent = controller_api::route_parent(&shop.id);
        let db_now = api.route("shop", "tcp", db.id()).await.unwrap();
        assert!(matches!(db_now, Route::Tcp(t) if t.parent_ref.as_deref() == Some(parent.as_str()) && t.port == 3002));
        // Deleting an app takes its routes with it.
        let gone = api.delete_app("shop").await.unwrap();
        assert_eq!(gone.removed_routes, 1);
        assert_eq!(api.routes().await.unwrap().len(), 2);
        api.create_app(&named("shop")).await.expect("the name is free again");
    });
}

#[test]
fn events_are_ordered_filtered_and_resumable() {
    let mut c = ControllerProcess::start(Some("cluster.test"));
    let api = c.client();
    let rt = rt();
    rt.block_on(async {
        let mut all = api.follow_events(&EventQuery::default()).await.unwrap();
        let a = api.create_app(&named("alpha")).await.unwrap();
        api.create_app(&named("beta")).await.unwrap();
        let artifact = api.create_artifact(&image(2)).await.unwrap();
        api.create_release(&web_release("alpha", &artifact.id))
            .await
            .unwrap();
        // The stream: every commit, ids 1, 2, 3, ... in order.
        let mut seen = Vec::new();
        while seen.len() < 6 {
            let e = all.next().await.unwrap().expect("the stream stays open");
            seen.push((e.id, e.object_type));
        }
        assert_eq!(
            seen,
            [
                (1, ObjectType::App),
                (2, ObjectType::Route),
                (3, ObjectType::App),
                (4, ObjectType::Route),
                (5, ObjectType::Artifact),
                (6, ObjectType::Release),
            ]
        );
        // Lists: newest first, filtered by app and type.
        let q = EventQuery {
            app: Some("alpha".into()),
            object_types: vec![ObjectType::App, ObjectType::Release],
            ..EventQuery::default()
        };
        let listed: Vec<u64> = api.events(&q).await.unwrap().iter().map(|e| e.id).collect();
        assert_eq!(listed, [6, 1]);
        let page = EventQuery {
            before_id: Some(5),
            count: Some(2),
            ..EventQuery::default()
        };
        let ids: Vec<u64> = api
            .events(&page)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [4, 3]);
        assert_eq!(api.event(1).await.unwrap().object_id, a.id);
        assert_eq!(code(api.event(99).await), ErrorCode::NoSuchEvent);
        let r = api
            .http()
            .send(hyper::Method::GET, "/events?object_types=apps", None, &[])
            .await;
        assert_eq!(code(r), ErrorCode::BadRequest);
        // Resuming after id 4 (as a client sends Last-Event-Id) gives 5, 6 and what follows.
        let mut resumed = api
            .follow_events(&EventQuery {
                since_id: Some(4),
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(resumed.next().await.unwrap().unwrap().id, 5);
        assert_eq!(resumed.next().await.unwrap().unwrap().id, 6);
    });
    // kill -9 and restart: nothing is lost, ids go on from where they were.
    c.kill9();
    c.spawn();
    let api = c.client();
    rt.block_on(async {
        assert_eq!(api.apps().await.unwrap().len(), 2);
        assert_eq!(api.app_releases("alpha").await.unwrap().len(), 1);
        api.create_app(&named("gamma")).await.unwrap();
        let newest = api.events(&EventQuery::default()).await.unwrap();
        let ids: Vec<u64> = newest.iter().map(|e| e.id).collect();
        assert_eq!(ids, [8, 7, 6, 5, 4, 3, 2, 1]);
        // Last-Event-Id on the wire resumes the stream the same way.
        let resp = api
            .http()
            .send(
                hyper::Method::GET,
                "/events",
                None,
                &[("accept", "text/event-stream"), ("last-event-id", "7")],
            )
            .await
            .unwrap();
        let mut body = resp.into_body();
        let mut text = String::new();
        while !text.contains("\n\n") {
            use http_body_util::BodyExt;
            let frame = body.frame().await.unwrap().unwrap();
            if let Some(d) = frame.data_ref() {
                text.push_str(&String::from_utf8_lossy(d));
            }
        }
        assert!(text.starts_with("id: 8\n"), "{text}");
    });
}

#[test]
fn the_api_matches_its_openapi_document_under_fuzzing() {
    if !integration::schemathesis::available(
        "controller: the_api_matches_its_openapi_document_under_fuzzing",
    ) {
        return;
    }
    // With a discoverd that lists no host: job records the fuzzer makes (the scheduler's
    // `PUT`) are on hosts that are gone, as after a host loss.
    let d = integration::discoverd::Discoverd::start();
    let c = ControllerProcess::start_with_discoverd(Some("cluster.test"), &d.url);
    let api = c.client();
    // Some state for the generated requests to meet.
    rt().block_on(async {
        api.create_app(&named("fuzz")).await.unwrap();
        let artifact = api.create_artifact(&image(3)).await.unwrap();
        let r = api
            .create_release(&web_release("fuzz", &artifact.id))
            .await
            .unwrap();
        api.set_app_release("fuzz", &r.id).await.unwrap();
    });
    let home = tempfile::tempdir().unwrap();
    // A followed log stays open for jobs that come later, as documented: read it unfollowed.
    // No host is registered, so a one-off job that passes validation meets the documented
    // 503 ("no host is registered"): expected here, and only for that operation.
    let config = concat!(
        "[[operations]]\ninclude-name = \"GET /apps/{app}/log\"\n",
        "parameters = { \"query.follow\" = false }\n",
        "[[operations]]\ninclude-name = \"POST /apps/{app}/jobs\"\n",
        "checks.not_a_server_error.expected-statuses = [\"2xx\", \"3xx\", \"4xx\", \"503\"]\n",
    );
    schemathesis::check(
        &format!("{}/openapi.json", c.url),
        &c.key,
        home.path(),
        config,
        &[
            // Bodies the schema allows may still name apps, releases and artifacts that do
            // not exist; a new app has no current release (GET /apps/{app}/release is 404
            // until one is set); /events streams when asked to.
            "--exclude-checks",
            "positive_data_acceptance,ensure_resource_availability",
            "--exclude-path",
            "/events",
        ],
    );
    assert!(rt().block_on(api.apps()).is_ok(), "{}", c.log());
}

#[test]
fn routes_made_in_the_controller_reach_the_router() {
    use integration::discoverd::Discoverd;
    use integration::router::{Backend, RouterProcess};
    let d = Discoverd::start();
    let c = ControllerProcess::start(Some("cluster.test"));
    let router = RouterProcess::start_following(&d, &c.url, &c.key);
    let (web, api_backend) = (Backend::start("shop-web-1"), Backend::start("shop-api-1"));
    let _hb = router.register(&d, "shop-web", &web);
    let _hb2 = router.register(&d, "shop-api", &api_backend);
    let api = c.client();
    let rt = rt();
    let eventually = |host: &str, path: &str, want: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (code, body) = router.get(host, path);
            if code == "200" && body.contains(want) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{host}{path}: want {want}, have {code} {body}\n{}",
                router.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    // A new app's default route: the router serves it without a restart or a file.
    rt.block_on(api.create_app(&named("shop"))).unwrap();
    eventually("shop.cluster.test", "/", "shop-web-1");
    // A path route added, then removed: requests move to it and back.
    let mut path_route = HttpRoute::new("", "shop.cluster.test", "shop-api");
    path_route.path = "/api/".into();
    let created = rt
        .block_on(api.create_route("shop", &Route::Http(path_route)))
        .unwrap();
    eventually("shop.cluster.test", "/api/x", "shop-api-1");
    rt.block_on(api.delete_route("shop", "http", created.id()))
        .unwrap();
    eventually("shop.cluster.test", "/api/x", "shop-web-1");
    // A controller restart: the router follows it again and keeps serving meanwhile.
    let mut c = c;
    c.kill9();
    let (code, _) = router.get("shop.cluster.test", "/");
    assert_eq!(
        code, "200",
        "the last table stays while the controller is away"
    );
    c.spawn();
    rt.block_on(api.create_app(&named("blog"))).unwrap();
    let blog = Backend::start("blog-web-1");
    let _hb3 = router.register(&d, "blog-web", &blog);
    eventually("blog.cluster.test", "/", "blog-web-1");
}
