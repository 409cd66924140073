//! Version skew between a server and its clients, over a real server and client on a unix
//! socket: a request with a field the server does not know is refused naming it, while an
//! answer, a stream line or an event with a field the client does not know is read without it.

use flynn_http::client::{Client, ClientError};
use flynn_http::server::{json, ndjson, read_json, sse, Listener, Router, Server};
use flynn_http::Endpoint;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

/// What the client was built with.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Thing {
    name: String,
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Part {
    size: u32,
}

/// The server's answer, one release ahead: fields added at the top and in a part.
fn newer() -> serde_json::Value {
    serde_json::json!({"name": "a", "colour": "red", "parts": [{"size": 1, "unit": "kg"}]})
}

fn expected() -> Thing {
    Thing {
        name: "a".into(),
        parts: vec![Part { size: 1 }],
    }
}

async fn server(dir: &std::path::Path) -> (Client, tokio::sync::oneshot::Sender<()>) {
    let router = Router::new()
        .route(Method::GET, "/thing", |_: (), _, _| async {
            Ok(json(StatusCode::OK, &newer()))
        })
        .route(Method::POST, "/thing", |_: (), req, _| async {
            let t: Thing = read_json(req).await?;
            Ok(json(StatusCode::CREATED, &t))
        })
        .route(Method::GET, "/things", |_: (), _, _| async {
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            tx.send(newer()).await.unwrap();
            tx.send(newer()).await.unwrap();
            Ok(ndjson(rx))
        })
        .route(Method::GET, "/events", |_: (), _, _| async {
            let event = flynn_http::sse::encode(None, None, &newer().to_string());
            let events = futures_util::stream::iter([bytes::Bytes::from(event)]);
            Ok(sse(events))
        });
    let endpoint = Endpoint::Unix(dir.join("api.sock"));
    let listener = Listener::bind(&endpoint).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(Server::new(router, ()).serve(vec![listener], stopped));
    (Client::new("test", endpoint), stop)
}

#[tokio::test]
async fn answers_from_a_newer_server_are_read_and_requests_stay_strict() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _stop) = server(dir.path()).await;

    let got: Thing = client
        .call(Method::GET, "/thing", None::<&()>)
        .await
        .unwrap();
    assert_eq!(got, expected());

    let mut lines = client
        .stream::<Thing>(Method::GET, "/things", None::<&()>)
        .await
        .unwrap();
    assert_eq!(lines.next().await.unwrap(), Some(expected()));
    assert_eq!(lines.next().await.unwrap(), Some(expected()));
    assert_eq!(lines.next().await.unwrap(), None);

    let mut events = client.events::<Thing>("/events").await.unwrap();
    assert_eq!(events.next().await.unwrap(), Some(expected()));

    // a client one release ahead sends a field this server does not know: refused, named
    let err = client
        .call::<Thing>(Method::POST, "/thing", Some(&newer()))
        .await
        .unwrap_err();
    match err {
        ClientError::Api { status, body } => {
            assert_eq!(status, 400);
            assert!(
                body.message.contains("unknown field `colour`"),
                "{}",
                body.message
            );
        }
        other => panic!("expected a 400, got {other}"),
    }
    // and a request it knows passes
    let sent = expected();
    let back: Thing = client
        .call(Method::POST, "/thing", Some(&sent))
        .await
        .unwrap();
    assert_eq!(back, sent);
}
