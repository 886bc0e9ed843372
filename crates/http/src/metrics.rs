//! Prometheus metrics: the recorder, `GET /metrics`, and the metrics of HTTP requests.
//!
//! The `metrics` facade carries every metric of the process (runtime, stores, HTTP, the SMS
//! sample) to one Prometheus recorder ([`install_recorder`]); `GET /metrics` renders it in the
//! Prometheus text format after reading the gauges that describe the store
//! ([`Client::refresh_store_gauges`](durable_runtime::Client::refresh_store_gauges)).
//! Requests are counted by route *template* (`/runtime/webhooks/durabletask/instances/:id`,
//! never the path itself, which holds instance ids), method and status.

use crate::HttpState;
use crate::error::ApiError;
use crate::params::Params;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// `Content-Type` of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket bounds of every `_seconds` histogram: 0.5 ms to 60 s.
const SECONDS_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Bucket bounds of the commit batch size histogram.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
/// How often histogram samples are folded into their buckets between scrapes (bounds the
/// memory of samples recorded while nobody scrapes).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
/// Call it before starting stores and runtimes: they register their metrics when they start,
/// with whatever recorder is installed then.
pub fn install_recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_batch_size".into()), BATCH_BUCKETS))
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "another metrics recorder is installed; /metrics shows only what reaches ours"
                );
            }
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "durable_http_requests_total",
        "HTTP requests answered, by method, route template and status."
    );
    metrics::describe_histogram!(
        "durable_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by method and route template."
    );
    durable_runtime::metrics::describe();
}

/// `GET /metrics` as [`HttpState::with_metrics`] configured it.
#[derive(Clone)]
pub(crate) struct MetricsEndpoint {
    pub(crate) handle: PrometheusHandle,
    pub(crate) require_key: bool,
}

/// `GET /metrics`: the Prometheus text format.
pub(crate) async fn scrape(State(state): State<HttpState>, req: Request) -> Response {
    let Some(endpoint) = &state.metrics else { return ApiError::not_found("no route here").into_response() };
    if endpoint.require_key {
        let params = Params::parse(req.uri().query());
        let trusted = state.options.trust_forwarded_headers;
        let ip = crate::throttle::client_ip(req.headers(), req.extensions(), trusted);
        if let Err(e) = crate::middleware::authorize_throttled(&state, ip, req.headers(), &params) {
            return e.into_response();
        }
    }
    state.client.refresh_store_gauges().await;
    let mut response = endpoint.handle.render().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE));
    response
}

/// Counts a request by method, route template and status, and records how long it took.
pub(crate) fn record_request(
    method: &Method,
    route: Option<&MatchedPath>,
    status: StatusCode,
    took: Duration,
) {
    let route = route.map_or_else(|| "unmatched".to_owned(), |path| route_label(path.as_str()));
    let labels = [("method", method_label(method).to_owned()), ("route", route)];
    metrics::histogram!("durable_http_request_duration_seconds", &labels).record(took.as_secs_f64());
    let [method, route] = labels;
    let status = ("status", status.as_str().to_owned());
    metrics::counter!("durable_http_requests_total", &[method, route, status]).increment(1);
}

/// A route template as a label, parameters written `:name` (`/instances/:id`): braces inside
/// label values are valid Prometheus text, but some parsers and tools stumble on them.
fn route_label(template: &str) -> String {
    let mut label = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        label.push_str(&rest[..open]);
        let parameter = &rest[open + 1..];
        let (name, after) = parameter.split_once('}').unwrap_or((parameter, ""));
        let (sigil, name) = name.strip_prefix('*').map_or((':', name), |name| ('*', name));
        label.push(sigil);
        label.push_str(name);
        rest = after;
    }
    label.push_str(rest);
    label
}

/// The method as a label: the standard ones by name, anything else as `other` (methods are
/// free text in HTTP, and labels must stay bounded).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_write_parameters_with_a_colon_and_wildcards_with_a_star() {
        let label = route_label;
        assert_eq!(
            label("/runtime/webhooks/durabletask/instances/{id}"),
            "/runtime/webhooks/durabletask/instances/:id"
        );
        assert_eq!(label("/instances/{id}/raiseEvent/{event}"), "/instances/:id/raiseEvent/:event");
        assert_eq!(label("/entities/{*rest}"), "/entities/*rest");
        assert_eq!(label("/instances"), "/instances");
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
