//! Cross-cutting layers: authentication and task hub check ([`guard`]), and the envelope of every
//! response ([`envelope`]): timeout, panics, JSON error bodies, security headers, logs, metrics.

use crate::error::ApiError;
use crate::params::Params;
use crate::throttle::{AuthThrottle, client_ip};
use crate::{HttpOptions, HttpState};
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use futures::FutureExt;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tracing::{Instrument, Span};

/// Header carrying the key, as the Functions host accepts it.
pub const KEY_HEADER: &str = "x-functions-key";

/// Runs before every matched route: checks the key and the task hub.
pub(crate) async fn guard(
    State(state): State<HttpState>,
    req: Request,
    next: Next,
) -> axum::response::Response {
    let params = Params::parse(req.uri().query());
    if state.options.auth_enabled() {
        let ip = client_ip(req.headers(), req.extensions(), state.options.trust_forwarded_headers);
        if let Err(e) = authorize_throttled(&state, ip, req.headers(), &params) {
            return e.into_response();
        }
    }
    if let Some(hub) = params.get("taskHub")
        && !hub.eq_ignore_ascii_case(&state.options.task_hub)
    {
        return ApiError::bad_request(format!(
            "this server serves task hub '{}', not '{}'; use the URLs returned by the start request",
            state.options.task_hub,
            hub.escape_debug()
        ))
        .into_response();
    }
    next.run(req).await
}

/// [`authorize`] behind the wrong-key throttle of the client's address (see
/// [`AuthThrottle`](crate::throttle::AuthThrottle)): a blocked address gets 429 before its key
/// is even looked at.
pub(crate) fn authorize_throttled(
    state: &HttpState,
    ip: Option<IpAddr>,
    headers: &axum::http::HeaderMap,
    params: &Params,
) -> Result<(), ApiError> {
    let throttle = &state.auth_throttle;
    let ip = ip.filter(|_| state.options.wrong_keys_before_throttle > 0);
    let now = Instant::now();
    if let Some(ip) = ip {
        throttle.check(ip, now).map_err(AuthThrottle::refusal)?;
    }
    let check = check_key(&state.options, headers, params);
    if let Some(ip) = ip {
        match check {
            KeyCheck::Valid => throttle.success(ip),
            // Only a key that was presented and is wrong counts; a missing key is no guess.
            KeyCheck::Wrong => {
                throttle.failure(ip, now);
            }
            KeyCheck::Missing => {}
        }
    }
    check.into_result()
}

/// The outcome of looking at the key of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyCheck {
    Valid,
    Missing,
    Wrong,
}

impl KeyCheck {
    fn into_result(self) -> Result<(), ApiError> {
        match self {
            KeyCheck::Valid => Ok(()),
            KeyCheck::Missing => Err(ApiError::unauthorized(
                "this API requires the system key: pass it as the `code` query parameter (the management URLs returned by a start request include it) or in the `x-functions-key` header",
            )),
            KeyCheck::Wrong => Err(ApiError::unauthorized(
                "the key is not valid; pass a current system key as the `code` query parameter or in the `x-functions-key` header \
                 (repeated wrong keys from one address are refused with 429 for growing periods)",
            )),
        }
    }
}

/// The key comes from the `x-functions-key` header or else the `code` query parameter (the
/// header wins when both are present, as with the Functions host).
#[cfg(test)]
fn authorize(
    options: &HttpOptions,
    headers: &axum::http::HeaderMap,
    params: &Params,
) -> Result<(), ApiError> {
    check_key(options, headers, params).into_result()
}

fn check_key(options: &HttpOptions, headers: &axum::http::HeaderMap, params: &Params) -> KeyCheck {
    if !options.auth_enabled() {
        return KeyCheck::Valid;
    }
    let presented = headers
        .get(KEY_HEADER)
        .map(HeaderValue::as_bytes)
        .filter(|k| !k.is_empty())
        .or_else(|| params.get("code").map(str::as_bytes));
    match presented {
        None => KeyCheck::Missing,
        Some(key) if key_matches(&options.system_keys, key) => KeyCheck::Valid,
        Some(_) => KeyCheck::Wrong,
    }
}

/// Compares against every key in constant time, without stopping at the first match, so the
/// timing reveals neither which key matched nor how much of one did. (Only a length mismatch
/// is faster; key lengths are not secret.)
pub(crate) fn key_matches(keys: &[String], presented: &[u8]) -> bool {
    let mut matched = subtle::Choice::from(0);
    for key in keys {
        matched |= key.as_bytes().ct_eq(presented);
    }
    matched.into()
}

/// Everything every response goes through, as one layer: one boxed future per request instead
/// of one per concern (seven layers, each wrapping every route, measured ~10 % of the CPU of a
/// verification over HTTP). Outside in: the HTTP metrics, the request's span and log line, the
/// security headers, panics (500), JSON error bodies, the request timeout (408).
pub(crate) async fn envelope(State(state): State<HttpState>, req: Request, next: Next) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let span = make_span(&req);
    let timeout = state.options.request_timeout;
    let handled = AssertUnwindSafe(tokio::time::timeout(timeout, next.run(req)))
        .catch_unwind()
        .instrument(span.clone())
        .await;
    let response = match handled {
        Ok(Ok(response)) => response,
        Ok(Err(_elapsed)) => StatusCode::REQUEST_TIMEOUT.into_response(),
        Err(panic) => span.in_scope(|| panic_response(panic)),
    };
    let mut response = with_json_error_body(response, timeout);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let latency = started.elapsed();
    span.in_scope(|| log_response(&response, latency));
    crate::metrics::record_request(&method, route.as_ref(), response.status(), latency);
    response
}

/// Gives every error response without a JSON body (405 from routing, 408 from the timeout,
/// rejections of axum's own extractors) our `{"error", "message"}` body.
fn with_json_error_body(response: Response<Body>, timeout: Duration) -> Response<Body> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let error =
        ApiError::for_status(status, allow.as_ref().and_then(|a| a.to_str().ok()), timeout.as_millis());
    let mut replaced = error.into_response();
    if let Some(allow) = allow {
        replaced.headers_mut().insert(header::ALLOW, allow);
    }
    replaced
}

fn is_json(response: &axum::response::Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// A panic in a handler becomes a 500 with our body; the server keeps running.
fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("a request handler panicked");
    ApiError::internal().into_response()
}

/// The span of a request: method and path only. The query string is left out on purpose: it
/// carries the system key (`code=`).
fn make_span(req: &Request) -> Span {
    tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
}

/// `latency` in milliseconds rounded to the microsecond, so logs say `latency_ms=0.06`, not
/// `latency_ms=0.059948999999999995` (f64 prints its shortest exact form).
fn whole_microseconds_in_ms(latency: Duration) -> f64 {
    latency.as_micros() as f64 / 1000.0
}

/// One line per response: status and latency (method and path come from the span).
fn log_response(res: &axum::response::Response, latency: Duration) {
    let status = res.status().as_u16();
    let latency_ms = whole_microseconds_in_ms(latency);
    if res.status().is_server_error() {
        tracing::warn!(status, latency_ms, "response");
    } else {
        tracing::info!(status, latency_ms, "response");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn opts(keys: &[&str]) -> HttpOptions {
        HttpOptions { system_keys: keys.iter().map(|k| (*k).to_owned()).collect(), ..Default::default() }
    }

    #[test]
    fn latency_is_logged_in_whole_microseconds() {
        assert_eq!(whole_microseconds_in_ms(Duration::from_nanos(59_948_999)).to_string(), "59.948");
        assert_eq!(whole_microseconds_in_ms(Duration::from_nanos(59_949)).to_string(), "0.059");
        assert_eq!(whole_microseconds_in_ms(Duration::from_millis(12)).to_string(), "12");
    }

    #[test]
    fn any_configured_key_matches_exactly() {
        let keys = vec!["alpha".to_owned(), "beta-key".to_owned()];
        assert!(key_matches(&keys, b"alpha"));
        assert!(key_matches(&keys, b"beta-key"));
        assert!(!key_matches(&keys, b"alph"));
        assert!(!key_matches(&keys, b"alphaa"));
        assert!(!key_matches(&keys, b""));
        assert!(!key_matches(&[], b""));
    }

    #[test]
    fn header_wins_over_query_and_auth_can_be_disabled() {
        let mut headers = HeaderMap::new();
        assert!(authorize(&opts(&[]), &headers, &Params::default()).is_ok());
        let o = opts(&["k1"]);
        assert_eq!(authorize(&o, &headers, &Params::default()).unwrap_err().status.as_u16(), 401);
        assert!(authorize(&o, &headers, &Params::parse(Some("code=k1"))).is_ok());
        headers.insert(KEY_HEADER, HeaderValue::from_static("wrong"));
        assert!(authorize(&o, &headers, &Params::parse(Some("code=k1"))).is_err());
        headers.insert(KEY_HEADER, HeaderValue::from_static("k1"));
        assert!(authorize(&o, &headers, &Params::parse(Some("code=wrong"))).is_ok());
    }
}
