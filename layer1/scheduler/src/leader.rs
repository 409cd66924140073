//! Leader election through discoverd: every scheduler registers as `flynn-scheduler` and
//! the oldest live registration leads. A leader that dies stops heartbeating, its
//! registration expires after [`TTL`], and the next oldest takes over.

use std::net::SocketAddr;
use std::time::Duration;

use discoverd_api::client::Client as Discoverd;
use discoverd_api::{Event, Proto, Registration};
use tokio::sync::mpsc;

use crate::error::FollowError;
use crate::scheduler::Input;

/// The discoverd service schedulers register as.
pub const SERVICE: &str = "flynn-scheduler";
/// Registration TTL: how long a dead leader keeps its place.
pub const TTL: Duration = Duration::from_secs(5);

/// Registers this scheduler as `id` (its status API at `addr`) and reports, until the
/// receiver goes away, whether it leads: `Leader(false)` whenever it cannot tell.
pub async fn run(discoverd: Discoverd, id: String, addr: SocketAddr, tx: mpsc::Sender<Input>) {
    let reg = Registration {
        addr,
        proto: Proto::Tcp,
        meta: Default::default(),
    };
    let _heartbeat = discoverd.keep_registered(SERVICE, &id, reg, TTL);
    loop {
        if let Err(e) = follow(&discoverd, &id, &tx).await {
            tracing::warn!(error = %e, "following the scheduler leader; again in 1 s");
        }
        if tx.send(Input::Leader(false)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn follow(
    discoverd: &Discoverd,
    id: &str,
    tx: &mpsc::Sender<Input>,
) -> Result<(), FollowError> {
    let mut w = discoverd
        .watch(Some(SERVICE))
        .await
        .map_err(FollowError::Discoverd)?;
    while let Some(ev) = w.next().await.map_err(FollowError::Discoverd)? {
        let leads = match ev {
            Event::Leader { instance, .. } => instance.is_some_and(|i| i.id == id),
            Event::Current { .. } => discoverd
                .leader(SERVICE)
                .await
                .map_err(FollowError::Discoverd)?
                .is_some_and(|i| i.id == id),
            _ => continue,
        };
        if tx.send(Input::Leader(leads)).await.is_err() {
            return Ok(());
        }
    }
    Err(FollowError::StreamEnded("discoverd"))
}
