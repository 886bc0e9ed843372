//! The web dashboard of **durable**: what an operator looks at, served by `durable serve` on
//! the same port as the Durable Functions API.
//!
//! - **Sign-in** with the system key, which becomes an `HttpOnly`, `SameSite=Strict` session
//!   cookie (`Secure` behind https): the key is never put in a dashboard URL. Every action is
//!   protected against CSRF (a per-session token in each form, plus an origin check).
//! - **Instances**: counts per status, a list filtered by status, name, creation time and id
//!   prefix, newest first, paged with cursors through any number of instances, refreshed live.
//! - **An instance**: status, input, output, custom status, failure, the history as a table and
//!   as a timeline (activities and timers as bars, events as marks, sub-orchestrations linked),
//!   open timers, awaited events, raw JSON; actions with confirmation (raise event, terminate,
//!   suspend, resume, restart, purge) whose result is shown in place.
//! - **Try it**: optionally, a page that runs the phone-verification sample end to end
//!   ([`TryIt`]); the dashboard knows the sample only through that description, so it does not
//!   depend on the sample's crate.
//!
//! Pages are rendered on the server (maud templates); a small script adds live refresh, in-place
//! action results and JSON validation, and everything works without it. Every asset is compiled
//! into the binary: the dashboard works offline.
//!
//! ```no_run
//! # async fn demo(runtime: durable_runtime::Runtime) -> Result<(), Box<dyn std::error::Error>> {
//! use durable_dashboard::{Dashboard, DashboardOptions};
//!
//! let options = DashboardOptions { system_keys: vec!["a-long-random-key".into()], ..Default::default() };
//! let dashboard = Dashboard::new(runtime.client(), runtime.store().clone(), options);
//! let app = durable_dashboard::router(dashboard); // merge it with the API router
//! # let _ = app; Ok(()) }
//! ```
// Handlers leave early with a ready `Response` (`Result<T, Response>`), the axum idiom; it is
// large, but built once per refused request.
#![allow(clippy::result_large_err)]

mod actions;
mod assets;
mod auth;
mod format;
mod pages;
mod timeline;
mod tryit;

pub use tryit::{Outbox, OutboxEntry, TryIt};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use durable_runtime::Client;
use durable_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Whether the session cookie gets the `Secure` attribute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecureCookies {
    /// When the request came over https: a TLS connection, or `X-Forwarded-Proto: https` from
    /// a trusted proxy (`trust_forwarded_headers`).
    #[default]
    Auto,
    /// Always (the dashboard is only reached over https).
    Always,
}

/// Settings of the dashboard.
#[derive(Clone)]
pub struct DashboardOptions {
    /// The system keys that sign in (the first also signs sessions). Empty: no sign-in (the
    /// server runs without authentication); actions are still protected against CSRF.
    pub system_keys: Vec<String>,
    /// How long a session lasts (default 12 hours).
    pub session_ttl: Duration,
    /// When the session cookie is `Secure`.
    pub secure_cookies: SecureCookies,
    /// Honour `X-Forwarded-Proto` (only behind a proxy that sets it).
    pub trust_forwarded_headers: bool,
    /// Largest accepted form body in bytes (raised event data included).
    pub max_body_bytes: usize,
    /// How often open pages refresh themselves (default 3 s).
    pub refresh_interval: Duration,
    /// Event names offered in the raise-event form and checked against what instances wait for.
    pub event_names: Vec<String>,
    /// The try-it page of the phone-verification sample, if the server runs it.
    pub try_it: Option<TryIt>,
    /// A trace viewer's URL for one trace, with `{trace_id}` where the id goes (e.g. Jaeger's
    /// `http://localhost:16686/trace/{trace_id}`): the instance page links its trace there.
    /// Without it the page shows the trace id only.
    pub trace_url: Option<String>,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions {
            system_keys: Vec::new(),
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookies: SecureCookies::Auto,
            trust_forwarded_headers: false,
            max_body_bytes: 1024 * 1024,
            refresh_interval: Duration::from_secs(3),
            event_names: Vec::new(),
            try_it: None,
            trace_url: None,
        }
    }
}

// Keys must never reach logs.
impl std::fmt::Debug for DashboardOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardOptions")
            .field("system_keys", &format_args!("[{} redacted]", self.system_keys.len()))
            .field("session_ttl", &self.session_ttl)
            .field("secure_cookies", &self.secure_cookies)
            .field("trust_forwarded_headers", &self.trust_forwarded_headers)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("refresh_interval", &self.refresh_interval)
            .field("event_names", &self.event_names)
            .field("try_it", &self.try_it.is_some())
            .finish()
    }
}

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    pub(crate) client: Client,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) options: Arc<DashboardOptions>,
    pub(crate) sessions: Arc<auth::Sessions>,
}

impl Dashboard {
    /// A dashboard over `client` (actions, lists, histories) and `store` (status counts).
    pub fn new(client: Client, store: Arc<dyn Store>, options: DashboardOptions) -> Self {
        let sessions = Arc::new(auth::Sessions::new(&options.system_keys, options.session_ttl));
        Dashboard { client, store, options: Arc::new(options), sessions }
    }
}

/// Every dashboard route, with its own security headers, limits and request logs. Its paths
/// (`/`, `/instances/…`, `/live/…`, `/try/…`, `/sign-in`, `/sign-out`, `/assets/…`) never
/// overlap the Durable Functions API, so the two routers merge (a merge panics on overlap).
pub fn router(dashboard: Dashboard) -> Router {
    let protected = Router::new()
        .route("/", get(pages::instances::page))
        .route("/live/instances", get(pages::instances::live))
        .route("/instances", get(pages::instances::goto))
        .route("/instances/{id}", get(pages::instance::page))
        .route("/live/instances/{id}", get(pages::instance::live))
        .route("/instances/{id}/actions/{action}", post(actions::run))
        .route("/try/phone-verification", get(tryit::page).post(tryit::start))
        .route("/try/phone-verification/{id}", get(tryit::instance).post(tryit::answer))
        .route("/live/try/phone-verification/{id}", get(tryit::live))
        .route("/sign-out", post(auth::sign_out))
        .route_layer(axum::middleware::from_fn_with_state(dashboard.clone(), auth::require_session));
    Router::new()
        .merge(protected)
        .route("/sign-in", get(auth::sign_in_page).post(auth::sign_in))
        .route("/assets/{file}", get(assets::serve))
        .layer(DefaultBodyLimit::max(dashboard.options.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .layer(CatchPanicLayer::custom(pages::panic_response))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        // Not `no-referrer`: with it, browsers send `Origin: null` on form posts, which the
        // CSRF origin check must refuse. Dashboard URLs carry filters, never secrets.
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            ),
        ))
        .layer(
            TraceLayer::new_for_http()
                // Method and path only: query strings carry filters, never keys, but stay out
                // of logs anyway.
                .make_span_with(|req: &axum::extract::Request| {
                    tracing::info_span!("dashboard", method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_response(|res: &axum::response::Response, latency: Duration, _: &tracing::Span| {
                    tracing::debug!(status = res.status().as_u16(), latency_ms = latency.as_secs_f64() * 1000.0, "response");
                })
                .on_failure(()),
        )
        .with_state(dashboard)
}
