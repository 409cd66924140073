//! A backend for router tests: an HTTP/1.1 and h2c server on one port that answers with its
//! name, echoes headers, holds requests until released, streams server-sent events and
//! large bodies, counts uploads, and turns any `Upgrade` request into an echo tunnel.
//!
//! ```text
//! GET  /            NAME
//! GET  /headers     the request's headers as JSON, with "version" and "path"
//! GET  /seen        every path requested so far, one a line
//! GET  /hold        answers only after GET /release (each release frees one hold)
//! GET  /sse         one event, then another after GET /release
//! GET  /download?bytes=N
//! POST /upload      the number of body bytes read
//! any  with Upgrade 101, then every byte sent back upper-cased
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

struct State {
    name: String,
    seen: Mutex<Vec<String>>,
    release: Semaphore,
}

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).boxed()
}

async fn handle(st: Arc<State>, mut req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    st.seen.lock().unwrap().push(path.clone());
    if req.headers().contains_key("upgrade") {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 4096];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n].to_ascii_uppercase()).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", req.headers()["upgrade"].clone())
            .body(full(""))
            .unwrap();
    }
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    match path.as_str() {
        "/headers" => {
            let mut h: HashMap<String, String> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            h.insert("version".into(), format!("{:?}", req.version()));
            h.insert("path".into(), req.uri().to_string());
            Response::new(full(serde_json::to_vec(&h).unwrap()))
        }
        "/seen" => Response::new(full(st.seen.lock().unwrap().join("\n"))),
        "/hold" => {
            st.release.acquire().await.unwrap().forget();
            Response::new(full(format!("{} released\n", st.name)))
        }
        "/release" => {
            st.release.add_permits(1);
            Response::new(full("ok\n"))
        }
        "/sse" => {
            let st = st.clone();
            let stream = futures_util::stream::unfold(0, move |i| {
                let st = st.clone();
                async move {
                    match i {
                        0 => Some((Ok(Frame::data(Bytes::from("data: first\n\n"))), 1)),
                        1 => {
                            st.release.acquire().await.unwrap().forget();
                            Some((Ok(Frame::data(Bytes::from("data: second\n\n"))), 2))
                        }
                        _ => None,
                    }
                }
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .unwrap()
        }
        "/download" => {
            let total: u64 = query.get("bytes").and_then(|b| b.parse().ok()).unwrap_or(0);
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures_util::stream::unfold(total, move |left| {
                let chunk = chunk.clone();
                async move {
                    (left > 0).then(|| {
                        let n = left.min(chunk.len() as u64);
                        (Ok(Frame::data(chunk.slice(..n as usize))), left - n)
                    })
                }
            });
            Response::new(BodyExt::boxed(StreamBody::new(stream)))
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut n: u64 = 0;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => n += f.data_ref().map(|d| d.len() as u64).unwrap_or(0),
                    Err(_) => break,
                }
            }
            Response::new(full(format!("{n}\n")))
        }
        _ => Response::new(full(format!("{}\n", st.name))),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().expect("usage: test-backend ADDR NAME");
    let name = args.next().expect("usage: test-backend ADDR NAME");
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    let st = Arc::new(State {
        name,
        seen: Mutex::default(),
        release: Semaphore::new(0),
    });
    loop {
        let (stream, _) = listener.accept().await.expect("accept");
        let st = st.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let st = st.clone();
                async move { Ok::<_, Infallible>(handle(st, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}
