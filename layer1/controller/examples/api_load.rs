//! Open-loop load on a controller: `RATE` requests a second for `SECONDS`, each sent on its
//! tick whether or not earlier ones answered (so a slow server shows as latency, not as a
//! lower rate). Nine in ten read an app (`GET /apps/NAME`), one in ten creates one. Prints
//! one JSON line: rate, sent, errors, p50/p99/max in milliseconds.
//!
//! `api_load URL KEY RATE SECONDS`

use std::time::{Duration, Instant};

use controller_api::client::Client;
use controller_api::NewApp;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, key, rate, secs] = args.as_slice() else {
        eprintln!("usage: api_load URL KEY RATE SECONDS");
        std::process::exit(2);
    };
    let (rate, secs): (u64, u64) = (rate.parse().unwrap(), secs.parse().unwrap());
    let client = Client::new(url.parse().expect("an http URL"), key);
    let run = std::process::id();
    for i in 0..20 {
        let app = NewApp {
            name: Some(format!("load-{run}-{i}").parse().unwrap()),
            ..NewApp::default()
        };
        client.create_app(&app).await.expect("seeding apps");
    }
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let total = rate * secs;
    for n in 0..total {
        tick.tick().await;
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let ok = if n % 10 == 9 {
                let app = NewApp {
                    name: Some(format!("load-{run}-w{n}").parse().unwrap()),
                    ..NewApp::default()
                };
                c.create_app(&app).await.is_ok()
            } else {
                c.app(&format!("load-{run}-{}", n % 20)).await.is_ok()
            };
            (start.elapsed(), ok)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (d, ok) = t.await.unwrap();
        lat.push(d);
        errors += u64::from(!ok);
    }
    lat.sort();
    let ms = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "{{\"rate\": {rate}, \"sent\": {total}, \"errors\": {errors}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}, \"max_ms\": {:.2}}}",
        ms(0.5),
        ms(0.99),
        ms(1.0)
    );
}
