//! The Durable Functions compatible HTTP API of **durable**: the only crate that knows the wire
//! format.
//!
//! [`router`] serves:
//!
//! - `POST /orchestrators/{functionName}[/{instanceId}]` and the same under `/api` (the
//!   sample's HttpStart), and the built-in
//!   `POST /runtime/webhooks/durabletask/orchestrators/{functionName}[/{instanceId}]`, which
//!   also waits with `?timeout=&pollingInterval=`. All answer `202 Accepted` with `Location`,
//!   `Retry-After: 10` and the management URLs.
//! - Under `/runtime/webhooks/durabletask`: `GET /instances/{id}` (status, with
//!   `showHistory`, `showHistoryOutput`, `showInput`, `returnInternalServerErrorOnFailure`),
//!   `GET /instances` (paged with `x-ms-continuation-token`), `DELETE /instances/{id}` and
//!   `DELETE /instances` (purge), and `POST /instances/{id}/` `raiseEvent/{name}`,
//!   `terminate`, `suspend`, `resume`, `restart`, `rewind`. `/entities/...` answers 501
//!   (durable entities are not supported yet) for every method.
//!
//! [`local_rpc_router`] serves the same API without a key (also under `/durabletask`, the path
//! of Durable Functions' local RPC endpoint that the Python and JavaScript SDKs call through
//! `rpcBaseUrl`), for a listener bound to loopback.
//!
//! Differences from Durable Functions, all deliberate: starting an id that is still running is
//! `409 Conflict` (not 500); suspend and resume are queued and applied in the order they were
//! accepted, so a resume right after a suspend always resumes, and one that finds the instance
//! already in that state is accepted and changes nothing (`202`, not 500); restart of an
//! unknown instance is 404; JSON is parsed strictly (`0042` is a 400, not octal 34);
//! unparsable time filters and unknown `runtimeStatus` names are 400 instead of being ignored
//! (`Canceled`, which is never produced, is accepted and matches nothing); a `taskHub` other
//! than ours is a 400; instance ids must be printable (not `.`/`..`, no whitespace at either
//! end, no control, bidirectional or invisible characters). A start refused by a rate limit of
//! the orchestrator's start guard is a 429 with `Retry-After`; after a few wrong keys a client
//! address gets 429s for growing periods; while the engine's backlog is over
//! [`HttpOptions::max_backlog`], starts get 503; a full disk is 507.
//!
//! **Purge never deletes an unfinished instance unless asked with `force=true`.** The official
//! SDKs accept only 200 and 404 from purge, so `DELETE /instances/{id}` of a Pending, Running or
//! Suspended instance answers `200 {"instancesDeleted": 0, "message": …}` and keeps it (Durable
//! Functions answers 412 there, which the SDKs raise as an exception; older versions deleted
//! it). Purge by filter processes only Completed, Failed and Terminated instances, as Durable
//! Functions' does: unfinished statuses in `runtimeStatus` are skipped and named in `message`,
//! and when nothing is left to purge the answer is Durable Functions' 404 for "nothing
//! deleted". With `force=true` both delete unfinished instances too (for operators).
//!
//! Every error is JSON `{"error": "<Kind>", "message": "<what to do>"}` plus the fields of
//! Durable Functions' `HttpError` body that its SDKs read: `Message` and `ExceptionMessage` (the
//! same message) and `ExceptionType` (the .NET exception Durable Functions reports for that
//! kind of failure, e.g. `System.ArgumentException` for a 400; see
//! [`ApiError::exception_type`]); never a stack trace. Every response carries
//! `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`.
//!
//! [`health_router`] serves `GET /healthz` and `GET /readyz` for load balancers (no key).
//!
//! Every route requires a system key (`code=` query parameter or `x-functions-key` header)
//! unless [`HttpOptions::system_keys`] is empty. Logs carry method, path, status and latency
//! only: never query strings or keys. Bodies over [`HttpOptions::max_body_bytes`] get 413,
//! requests over [`HttpOptions::request_timeout`] get 408, and [`serve`] closes connections
//! whose headers do not arrive within [`ServeOptions::header_read_timeout`].
//!
//! ```no_run
//! # async fn demo(runtime: durable_runtime::Runtime) -> Result<(), Box<dyn std::error::Error>> {
//! use durable_http::{HttpOptions, HttpState, router, serve};
//!
//! let options = HttpOptions { system_keys: vec!["a-long-random-key".into()], ..HttpOptions::default() };
//! let state = HttpState::new(runtime.client(), options)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7071").await?;
//! serve(listener, router(state), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! runtime.shutdown().await;
//! # Ok(()) }
//! ```

mod error;
mod extract;
mod handlers;
mod health;
pub mod metrics;
mod middleware;
mod options;
mod params;
mod serve;
mod status;
mod throttle;
mod trace_context;
mod urls;

pub use error::ApiError;
pub use handlers::CONTINUATION_HEADER;
pub use health::{READY_TIMEOUT, health_router};
pub use middleware::KEY_HEADER;
pub use options::HttpOptions;
pub use serve::{ServeOptions, serve, serve_with};
pub use urls::{LOCAL_RPC_PATH, WEBHOOK_PATH};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use durable_runtime::Client;
use serde::Serialize;
use std::sync::Arc;

/// `Content-Type` of every JSON response (Durable Functions sends the charset).
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Errors of setting up the HTTP API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options are invalid.
    #[error("invalid HTTP options: {0}")]
    InvalidOptions(durable_core::InvalidSetting),
}

/// What the handlers share: the runtime client and the options. Cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    pub(crate) client: Client,
    pub(crate) options: Arc<HttpOptions>,
    /// `GET /metrics`, when metrics are on.
    pub(crate) metrics: Option<metrics::MetricsEndpoint>,
    pub(crate) auth_throttle: Arc<throttle::AuthThrottle>,
    pub(crate) load_shed: Arc<throttle::LoadShed>,
}

impl HttpState {
    /// Validates `options` and bundles them with `client`.
    pub fn new(client: Client, options: HttpOptions) -> Result<Self, Error> {
        options.validate().map_err(Error::InvalidOptions)?;
        let auth_throttle = Arc::new(throttle::AuthThrottle::new(
            options.wrong_keys_before_throttle,
            options.max_wrong_key_block,
        ));
        let load_shed = Arc::new(throttle::LoadShed::new(options.max_backlog));
        Ok(HttpState { client, options: Arc::new(options), metrics: None, auth_throttle, load_shed })
    }

    /// Serves `GET /metrics` (Prometheus text format) from `handle` (see
    /// [`metrics::install_recorder`]); with `require_key`, a scrape needs the system key like
    /// every other route (`code=` or `x-functions-key`).
    pub fn with_metrics(
        mut self,
        handle: metrics_exporter_prometheus::PrometheusHandle,
        require_key: bool,
    ) -> Self {
        self.metrics = Some(metrics::MetricsEndpoint { handle, require_key });
        self
    }

    /// The options in force.
    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    /// The runtime client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// The management routes, relative to [`WEBHOOK_PATH`].
fn webhook_routes() -> Router<HttpState> {
    use handlers::*;
    Router::new()
        .route("/orchestrators/{name}", post(start_builtin))
        .route("/orchestrators/{name}/{id}", post(start_builtin_with_id))
        .route("/instances", get(list).delete(purge_many))
        .route("/instances/", get(list).delete(purge_many))
        .route("/instances/{id}", get(get_status).delete(purge_one))
        .route("/instances/{id}/raiseEvent/{event}", post(raise_event))
        .route("/instances/{id}/terminate", post(terminate))
        .route("/instances/{id}/suspend", post(suspend))
        .route("/instances/{id}/resume", post(resume))
        .route("/instances/{id}/restart", post(restart))
        .route("/instances/{id}/rewind", post(rewind))
        .route("/entities", any(entities))
        .route("/entities/", any(entities))
        .route("/entities/{*rest}", any(entities))
}

/// The whole API. Test it with `tower::ServiceExt::oneshot`; serve it with [`serve`].
pub fn router(state: HttpState) -> Router {
    router_with(state, Router::new())
}

/// The whole API plus `extra` routes (e.g. an application's webhooks), which get the same
/// request timeout, JSON error bodies, security headers and request logs but not the system
/// key check: they authenticate their callers themselves.
pub fn router_with(state: HttpState, extra: Router) -> Router {
    build(state, Router::new(), extra)
}

/// The API for the **local RPC endpoint**, like Durable Functions' key-less listener on
/// `http://127.0.0.1:17071/durabletask/` that the out-of-process SDKs call through `rpcBaseUrl`
/// (the Python SDK never sends a key). It serves everything [`router`] does, also under
/// [`LOCAL_RPC_PATH`], **without a key**: the keys of `state` are dropped, so no request needs
/// one and no URL it hands out carries one. Serve it on a loopback listener only (the server
/// refuses any other address); forwarded headers are ignored, since no proxy stands in front.
pub fn local_rpc_router(state: HttpState) -> Router {
    let mut options = (*state.options).clone();
    options.system_keys.clear();
    options.trust_forwarded_headers = false;
    let state = HttpState { options: Arc::new(options), metrics: None, ..state };
    build(state, Router::new().nest(LOCAL_RPC_PATH, webhook_routes()), Router::new())
}

/// The API with `guarded` routes (behind the key check, like the API's own) and `unguarded`
/// ones (which authenticate their callers themselves).
fn build(state: HttpState, guarded: Router<HttpState>, unguarded: Router) -> Router {
    use handlers::{fallback, start_http, start_http_with_id};
    // Outside the guard: a scrape checks the key itself, when its settings ask for one.
    let scrape = match state.metrics {
        Some(_) => Router::new().route("/metrics", get(metrics::scrape)),
        None => Router::new(),
    };
    Router::new()
        .route("/orchestrators/{name}", post(start_http))
        .route("/orchestrators/{name}/{id}", post(start_http_with_id))
        .route("/api/orchestrators/{name}", post(start_http))
        .route("/api/orchestrators/{name}/{id}", post(start_http_with_id))
        .nest(WEBHOOK_PATH, webhook_routes())
        // ASP.NET routing is case-insensitive and the docs spell it both ways.
        .nest("/runtime/webhooks/durableTask", webhook_routes())
        .merge(guarded)
        // Only matched routes are guarded: unknown paths are a plain 404 for everyone.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), middleware::guard))
        .merge(scrape)
        .fallback(fallback)
        .with_state(state.clone())
        .merge(unguarded)
        .layer(axum::middleware::from_fn_with_state(state, middleware::envelope))
}

/// A JSON response with our content type.
pub(crate) fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = (status, bytes).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "response serialization failed");
            ApiError::internal().into_response()
        }
    }
}
