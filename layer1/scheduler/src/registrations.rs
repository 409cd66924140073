//! Following which jobs are registered in discoverd: a job whose process type names a
//! service serves only once it is registered under it (by its host after its health check,
//! or by itself), so the scheduler counts it as running only from then on (a draining
//! host's jobs stop only once their replacements serve). One watch of every service: the
//! state at its start (and again after each reconnect) replaces what was known, then each
//! instance that comes and goes.

use std::collections::BTreeSet;
use std::time::Duration;

use discoverd_api::client::Client as Discoverd;
use discoverd_api::Event;
use tokio::sync::mpsc;

use crate::scheduler::Input;

/// Follows discoverd until the receiver goes away.
pub async fn follow(discoverd: Discoverd, tx: mpsc::Sender<Input>) {
    loop {
        let mut w = crate::watch::open(&discoverd, None, "registrations").await;
        let mut state = BTreeSet::new();
        let mut current = false;
        while let Some(ev) = crate::watch::next(&mut w, "registration").await {
            let input = match ev {
                Event::Up {
                    service, instance, ..
                } if !current => {
                    state.insert((service, instance.id));
                    continue;
                }
                Event::Current { .. } if !current => {
                    current = true;
                    Input::Registrations(std::mem::take(&mut state))
                }
                Event::Up {
                    service, instance, ..
                } => Input::Registration {
                    service,
                    id: instance.id,
                    up: true,
                },
                Event::Down {
                    service, instance, ..
                } => Input::Registration {
                    service,
                    id: instance.id,
                    up: false,
                },
                _ => continue,
            };
            if tx.send(input).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
