//! Health checks for load balancers and orchestrators: `GET /healthz` (the process answers)
//! and `GET /readyz` (the store can serve requests). No key is needed and the answers carry
//! no details: the reason a node is not ready goes to the log, once per change.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use durable_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long the readiness check may take before the node counts as not ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct Health {
    store: Arc<dyn Store>,
    /// The last answer of `/readyz`, to log changes only (probes come every few seconds).
    was_ready: Arc<AtomicBool>,
}

/// `GET`/`HEAD` `/healthz` and `/readyz`, with `Cache-Control: no-store`.
pub fn health_router(store: Arc<dyn Store>) -> Router {
    let health = Health { store, was_ready: Arc::new(AtomicBool::new(true)) };
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(health)
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn healthz() -> Response {
    plain(StatusCode::OK, "ok\n")
}

async fn readyz(State(health): State<Health>) -> Response {
    let outcome = match tokio::time::timeout(READY_TIMEOUT, health.store.check_ready()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("the store did not answer within {READY_TIMEOUT:?}")),
    };
    let ready = outcome.is_ok();
    if health.was_ready.swap(ready, Ordering::Relaxed) != ready {
        match &outcome {
            Ok(()) => tracing::info!("ready again: the store answers"),
            Err(why) => tracing::warn!(reason = %why, "not ready"),
        }
    }
    if ready {
        plain(StatusCode::OK, "ready\n")
    } else {
        plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
