//! The cluster's routers, as the scheduler waits on them: found in discoverd
//! (`router-api`), asked which routes and backends they have, and followed while a job
//! drains.

use std::time::Duration;

use discoverd_api::client::Client as Discoverd;
use host_api::client::Client as HostClient;
use host_api::JobId;
use router_api::client::Client as Router;
use router_api::EventKind;

/// The discoverd service routers register their API as.
pub const SERVICE: &str = "router-api";
/// How long a stop waits for every router to report the job drained.
pub const DRAIN_WAIT: Duration = Duration::from_secs(10);

/// Every registered router's API.
pub async fn all(discoverd: &Discoverd) -> Vec<Router> {
    match discoverd.instances(SERVICE).await {
        Ok(list) => list
            .into_iter()
            .map(|i| Router::new(host_api::Endpoint::Tcp(i.addr)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing routers in discoverd");
            Vec::new()
        }
    }
}

/// True when job `id` is registered in discoverd as `service` and every router with a route
/// to `service` routes it as a backend. A service no route names (a router's own API, which
/// the router registers itself) needs only the registration.
pub async fn ready(discoverd: &Discoverd, routers: &[Router], service: &str, id: &str) -> bool {
    let registered = discoverd
        .instances(service)
        .await
        .is_ok_and(|all| all.iter().any(|i| i.id == id));
    if !registered {
        return false;
    }
    for r in routers {
        let Ok(routes) = r.routes().await else {
            return false;
        };
        if !routes.iter().any(|route| route.service() == service) {
            continue;
        }
        match r.backends().await {
            Ok(b) if b.iter().any(|b| b.service == service && b.id == id) => {}
            _ => return false,
        }
    }
    true
}

/// Takes job `id` out of discoverd through its host and waits (at most [`DRAIN_WAIT`])
/// until every router that routed it reports it drained: no request to it in flight.
pub async fn drain(discoverd: &Discoverd, host: &HostClient, id: &JobId, service: &str) {
    let routers = all(discoverd).await;
    // Follow first, then see who routes it: nothing between the two is missed.
    let mut waiting = Vec::new();
    for r in &routers {
        let Ok(events) = r.events(&[EventKind::BackendDrained]).await else {
            continue;
        };
        let routes = r.backends().await.is_ok_and(|b| {
            b.iter()
                .any(|b| b.service == service && b.id == id.as_str())
        });
        if routes {
            waiting.push(events);
        }
    }
    if let Err(e) = host.deregister(id).await {
        tracing::warn!(job = %id, error = %e, "taking a job out of discoverd before its stop");
        return;
    }
    let wait = async {
        for mut events in waiting {
            loop {
                match events.next().await {
                    Ok(Some(ev)) if ev.backend.as_ref().is_some_and(|b| b.id == id.as_str()) => {
                        break
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    };
    if tokio::time::timeout(DRAIN_WAIT, wait).await.is_err() {
        tracing::warn!(job = %id, "routers did not report the job drained within {} s; stopping it", DRAIN_WAIT.as_secs());
    }
}
