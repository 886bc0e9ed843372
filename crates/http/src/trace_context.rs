//! W3C trace context on the start request (`traceparent`, `tracestate`): the caller's span
//! becomes the parent of the orchestration's span, and the answer names the orchestration's
//! span in its own `traceparent` header (when tracing is on).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header::HeaderName};
use axum::response::Response;
use durable_runtime::tracing_spans::SpanRef;
use std::convert::Infallible;

/// The W3C `traceparent` header.
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The caller's span, when the request carries a valid `traceparent` (an invalid one is
/// ignored, as the W3C specification asks: the orchestration then starts a new trace).
pub(crate) struct CallerSpan(pub(crate) Option<SpanRef>);

impl<S: Send + Sync> FromRequestParts<S> for CallerSpan {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let header = |name: &HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
        Ok(CallerSpan(header(&TRACEPARENT).and_then(|tp| SpanRef::parse(tp, header(&TRACESTATE)))))
    }
}

/// Adds `traceparent` (the orchestration's span) to a start response.
pub(crate) fn with_traceparent(mut response: Response, traceparent: Option<&str>) -> Response {
    if let Some(value) = traceparent.and_then(|t| HeaderValue::from_str(t).ok()) {
        response.headers_mut().insert(TRACEPARENT, value);
    }
    response
}
