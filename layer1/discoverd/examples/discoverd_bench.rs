//! discoverd and etcd under load, for `bench/discoverd.sh`:
//!
//! `discoverd_bench discoverd URL REGISTRATIONS CONCURRENCY WATCHERS`: registrations/s through
//! the HTTP API, then WATCHERS watches of one service and the time from one registration until
//! the last watcher has its `up` event.
//!
//! `discoverd_bench etcd ENDPOINT PUTS CONCURRENCY WATCHERS`: the same two figures for etcd
//! itself (puts/s; WATCHERS watches of one key, time until all see one put), as the reference.

use std::sync::Arc;
use std::time::{Duration, Instant};

use discoverd::{Client, EventKind, Registration};
use tokio::sync::Barrier;

fn reg(i: usize) -> Registration {
    Registration {
        addr: format!("100.100.{}.{}:80", (i / 250) % 250, i % 250 + 1)
            .parse()
            .expect("an IP:PORT"),
        proto: discoverd_api::Proto::Tcp,
        meta: Default::default(),
    }
}

async fn spread<F, Fut>(n: usize, conc: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..conc {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                f(i).await;
                i += conc;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn report(what: &str, rate: f64, fanout: &mut [Duration]) {
    fanout.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: {rate:.0} writes/s; fan-out to {} watchers: median {:.1} ms, last {:.1} ms",
        fanout.len(),
        ms(fanout[fanout.len() / 2]),
        ms(fanout[fanout.len() - 1])
    );
}

async fn bench_discoverd(url: &str, n: usize, conc: usize, watchers: usize) {
    let key = std::env::var("DISCOVERD_KEY").unwrap_or_default();
    let c = Client::new(url.parse().expect("an http://IP:PORT URL")).with_key(key);
    let cc = c.clone();
    let rate = spread(n, conc, move |i| {
        let c = cc.clone();
        async move {
            c.register("bench", &format!("i{i}"), &reg(i), Duration::from_secs(60))
                .await
                .expect("register");
        }
    })
    .await;
    let ready = Arc::new(Barrier::new(watchers + 1));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let (c, ready) = (c.clone(), ready.clone());
        tasks.push(tokio::spawn(async move {
            let mut w = c.watch(Some("fan")).await.expect("watch");
            while w.next().await.expect("event").unwrap().kind() != EventKind::Current {}
            ready.wait().await;
            loop {
                let e = w.next().await.expect("event");
                if e.unwrap().kind() == EventKind::Up {
                    return Instant::now();
                }
            }
        }));
    }
    ready.wait().await;
    let t0 = Instant::now();
    c.register("fan", "one", &reg(1), Duration::from_secs(60))
        .await
        .unwrap();
    let mut lat = Vec::new();
    for t in tasks {
        lat.push(t.await.unwrap() - t0);
    }
    report("discoverd", rate, &mut lat);
}

async fn bench_etcd(endpoint: &str, n: usize, conc: usize, watchers: usize) {
    let client = etcd_client::Client::connect([endpoint], None)
        .await
        .expect("etcd");
    let c = client.clone();
    let rate = spread(n, conc, move |i| {
        let mut c = c.clone();
        async move {
            c.put(format!("/bench/put/{i}"), "x".repeat(100), None)
                .await
                .expect("put");
        }
    })
    .await;
    let ready = Arc::new(Barrier::new(watchers + 1));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let (mut c, ready) = (client.clone(), ready.clone());
        tasks.push(tokio::spawn(async move {
            let (_w, mut s) = c.watch("/bench/fan", None).await.expect("watch");
            ready.wait().await;
            loop {
                let r = s.message().await.expect("watch").expect("event");
                if !r.events().is_empty() {
                    return Instant::now();
                }
            }
        }));
    }
    ready.wait().await;
    let mut c = client.clone();
    let t0 = Instant::now();
    c.put("/bench/fan", "x", None).await.unwrap();
    let mut lat = Vec::new();
    for t in tasks {
        lat.push(t.await.unwrap() - t0);
    }
    report("etcd", rate, &mut lat);
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert!(
        a.len() == 6,
        "usage: discoverd_bench discoverd|etcd URL COUNT CONCURRENCY WATCHERS"
    );
    let (n, conc, w): (usize, usize, usize) = (
        a[3].parse().unwrap(),
        a[4].parse().unwrap(),
        a[5].parse().unwrap(),
    );
    match a[1].as_str() {
        "discoverd" => bench_discoverd(&a[2], n, conc, w).await,
        "etcd" => bench_etcd(&a[2], n, conc, w).await,
        m => panic!("unknown mode {m}"),
    }
}
