//! The scheduler's own small API: `GET /ping`, and `GET /status` (whether it leads, its
//! hosts and jobs, formations, crashed and blocked jobs), both behind the controller key.

use std::sync::{Arc, Mutex};

use flynn_http::server::{json, Router};
use hyper::{Method, StatusCode};

use crate::scheduler::Status;

/// The routes, answering from `status`.
pub fn router() -> Router<Arc<Mutex<Status>>> {
    Router::new()
        .not_found_message("no such API path: the scheduler serves /ping and /status")
        .route(Method::GET, "/ping", |_, _, _| async {
            Ok(json(StatusCode::OK, &"ok"))
        })
        .route(
            Method::GET,
            "/status",
            |st: Arc<Mutex<Status>>, _, _| async move {
                let s = st.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Ok(json(StatusCode::OK, &s))
            },
        )
}
