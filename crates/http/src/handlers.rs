//! The route handlers: each turns a request into client calls and a Durable Functions response.

use crate::error::ApiError;
use crate::extract::{Body, PathArgs, json_payload};
use crate::params::Params;
use crate::status::{StatusPayload, render_history};
use crate::throttle::ClientIp;
use crate::trace_context::{CallerSpan, with_traceparent};
use crate::urls::{CheckStatus, Origin};
use crate::{HttpState, json_response};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use durable_core::RuntimeStatus;
use durable_runtime::client::{Error as ClientError, StartFrom};
use durable_store::{InstanceQuery, InstanceState, PurgeFilter};
use serde::Serialize;
use std::net::IpAddr;
use std::time::Duration;

/// Request and response header of list paging.
pub const CONTINUATION_HEADER: &str = "x-ms-continuation-token";

/// Largest page `GET /instances` returns, whatever `top` asks for.
const MAX_PAGE: usize = 1000;

type Result<T = Response> = std::result::Result<T, ApiError>;

// ------------------------------------------------------------------------------------ start

/// `POST /orchestrators/{name}` and `/api/orchestrators/{name}`: the sample's HttpStart.
pub(crate) async fn start_http(
    State(state): State<HttpState>,
    origin: Origin,
    caller: CallerSpan,
    ClientIp(ip): ClientIp,
    PathArgs(name): PathArgs<String>,
    body: Body,
) -> Result {
    start(state, origin, Caller { span: caller, ip }, Params::default(), name, None, body).await
}

/// `POST /orchestrators/{name}/{id}` and `/api/orchestrators/{name}/{id}`.
pub(crate) async fn start_http_with_id(
    State(state): State<HttpState>,
    origin: Origin,
    caller: CallerSpan,
    ClientIp(ip): ClientIp,
    PathArgs((name, id)): PathArgs<(String, String)>,
    body: Body,
) -> Result {
    start(state, origin, Caller { span: caller, ip }, Params::default(), name, Some(id), body).await
}

/// Built-in `POST {base}/orchestrators/{name}`; honours `timeout` + `pollingInterval`.
pub(crate) async fn start_builtin(
    State(state): State<HttpState>,
    origin: Origin,
    caller: CallerSpan,
    ClientIp(ip): ClientIp,
    params: Params,
    PathArgs(name): PathArgs<String>,
    body: Body,
) -> Result {
    start(state, origin, Caller { span: caller, ip }, params, name, None, body).await
}

/// Built-in `POST {base}/orchestrators/{name}/{id}`.
pub(crate) async fn start_builtin_with_id(
    State(state): State<HttpState>,
    origin: Origin,
    caller: CallerSpan,
    ClientIp(ip): ClientIp,
    params: Params,
    PathArgs((name, id)): PathArgs<(String, String)>,
    body: Body,
) -> Result {
    start(state, origin, Caller { span: caller, ip }, params, name, Some(id), body).await
}

/// Who sent a start request: its span (a W3C `traceparent`) and its address.
struct Caller {
    span: CallerSpan,
    ip: Option<IpAddr>,
}

async fn start(
    state: HttpState,
    origin: Origin,
    Caller { span: CallerSpan(caller), ip: client_ip }: Caller,
    params: Params,
    name: String,
    id: Option<String>,
    Body(body): Body,
) -> Result {
    let input = json_payload(&body)?;
    let wait = wait_time(&params, &state)?;
    state.load_shed.admit(&state.client).await?;
    let from = StartFrom { client_addr: client_ip, caller: caller.as_ref() };
    let started = state.client.start_from(&name, id.as_deref(), input, from).await?;
    let id = &started.instance_id;
    let response = match wait {
        Some(timeout) => wait_or_check_status(&state, &origin, &params, id, timeout).await?,
        None => check_status_response(&state, &origin, id)?,
    };
    Ok(with_traceparent(response, started.traceparent.as_deref()))
}

/// `timeout` and `pollingInterval` together ask to wait (§2.12). We are woken by the store
/// rather than polling, so the interval is only checked for sanity.
fn wait_time(params: &Params, state: &HttpState) -> Result<Option<Duration>> {
    let (Some(timeout), Some(interval)) = (params.seconds("timeout")?, params.seconds("pollingInterval")?)
    else {
        return Ok(None);
    };
    if interval > timeout {
        return Err(ApiError::bad_request(
            "pollingInterval must not be greater than timeout; e.g. timeout=10&pollingInterval=1",
        ));
    }
    // The wait must end before the request timeout cuts the response off.
    let max = state.options.request_timeout.saturating_sub(Duration::from_secs(1));
    if timeout > max {
        return Err(ApiError::bad_request(format!(
            "timeout must be at most {} seconds on this server; poll statusQueryGetUri for longer waits",
            max.as_secs_f64()
        )));
    }
    Ok(Some(timeout))
}

/// Waits for the instance: Completed → 200 with the raw output; Failed/Terminated → the status
/// response; still running → the 202 check-status response.
async fn wait_or_check_status(
    state: &HttpState,
    origin: &Origin,
    params: &Params,
    id: &str,
    timeout: Duration,
) -> Result {
    match state.client.wait_for_completion(id, timeout).await {
        Ok(done) if done.status == RuntimeStatus::Completed => {
            let output = done.output.map_or_else(|| "null".to_owned(), |p| p.as_str().to_owned());
            Ok(json_bytes(StatusCode::OK, output.into_bytes()))
        }
        Ok(done) => status_response(state, origin, params, done).await,
        Err(ClientError::Timeout { .. }) => check_status_response(state, origin, id),
        Err(e) => Err(e.into()),
    }
}

/// `202 Accepted` with `Location` and `Retry-After: 10` and the management URLs (§2.4).
fn check_status_response(state: &HttpState, origin: &Origin, id: &str) -> Result {
    let body = CheckStatus::new(origin, state, id, false);
    let location = HeaderValue::from_str(&body.status_query_get_uri).map_err(|_| ApiError::internal())?;
    let mut response = json_response(StatusCode::ACCEPTED, &body);
    response.headers_mut().insert(header::LOCATION, location);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    Ok(response)
}

// ----------------------------------------------------------------------------------- status

/// `GET {base}/instances/{id}`.
pub(crate) async fn get_status(
    State(state): State<HttpState>,
    origin: Origin,
    params: Params,
    PathArgs(id): PathArgs<String>,
) -> Result {
    let instance = state.client.status(&id).await?.ok_or_else(|| ApiError::instance_not_found(&id))?;
    status_response(&state, &origin, &params, instance).await
}

/// The status payload with Durable Functions' codes: 202 (+ `Location`, `Retry-After: 5`)
/// while unfinished, 200 when finished, 500 for Failed with `returnInternalServerErrorOnFailure`.
async fn status_response(
    state: &HttpState,
    origin: &Origin,
    params: &Params,
    instance: InstanceState,
) -> Result {
    let show_input = params.flag("showInput", true);
    let history = if params.flag("showHistory", false) {
        let events = state.client.history(&instance.instance_id).await?;
        Some(render_history(&events, show_input, params.flag("showHistoryOutput", false)))
    } else {
        None
    };
    let status = instance.status;
    let payload = StatusPayload::new(instance, show_input, history);
    Ok(match status {
        RuntimeStatus::Pending
        | RuntimeStatus::Running
        | RuntimeStatus::Suspended
        | RuntimeStatus::ContinuedAsNew => {
            let location = HeaderValue::from_str(&origin.request_url()).map_err(|_| ApiError::internal())?;
            let mut response = json_response(StatusCode::ACCEPTED, &payload);
            response.headers_mut().insert(header::LOCATION, location);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
        RuntimeStatus::Failed if params.flag("returnInternalServerErrorOnFailure", false) => {
            json_response(StatusCode::INTERNAL_SERVER_ERROR, &payload)
        }
        RuntimeStatus::Completed | RuntimeStatus::Failed | RuntimeStatus::Terminated => {
            json_response(StatusCode::OK, &payload)
        }
    })
}

/// `GET {base}/instances`: a page of status payloads, next page token in the response header.
pub(crate) async fn list(State(state): State<HttpState>, params: Params, headers: HeaderMap) -> Result {
    let show_input = params.flag("showInput", true);
    let Some(statuses) = params.statuses()? else {
        return Ok(page_response(Vec::new(), None));
    };
    let page_size = match params.get("top") {
        None => 100,
        // Larger pages are cut to the maximum rather than refused: clients follow the
        // continuation token anyway.
        Some(top) => {
            top.trim().parse::<usize>().ok().filter(|n| *n >= 1).map(|n| n.min(MAX_PAGE)).ok_or_else(
                || {
                    ApiError::bad_request(
                        "top must be a whole number of at least 1 (the page size; default 100)",
                    )
                },
            )?
        }
    };
    let continuation = match headers.get(CONTINUATION_HEADER) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| {
                ApiError::bad_request(
                    "x-ms-continuation-token must be the token of the previous page, unchanged",
                )
            })?;
            Some(v.trim().to_owned()).filter(|v| !v.is_empty())
        }
    };
    let query = InstanceQuery {
        statuses,
        name: None,
        created_from: params.time("createdTimeFrom")?,
        created_to: params.time("createdTimeTo")?,
        instance_id_prefix: params.get("instanceIdPrefix").map(str::to_owned),
        page_size,
        continuation,
        include_input: show_input,
        // Durable Functions lists oldest first.
        newest_first: false,
    };
    let page = state.client.list(&query).await?;
    let items = page.instances.into_iter().map(|i| StatusPayload::new(i, show_input, None)).collect();
    Ok(page_response(items, page.continuation))
}

fn page_response(items: Vec<StatusPayload>, continuation: Option<String>) -> Response {
    let mut response = json_response(StatusCode::OK, &items);
    // Always present, empty on the last page: clients loop while it is non-empty.
    let token =
        continuation.and_then(|t| HeaderValue::from_str(&t).ok()).unwrap_or(HeaderValue::from_static(""));
    response.headers_mut().insert(CONTINUATION_HEADER, token);
    response
}

// ------------------------------------------------------------------------------------ purge

/// The body of a purge answer: Durable Functions' `{"instancesDeleted": n}`, plus a `message`
/// when something asked for was deliberately left alone.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Purged {
    instances_deleted: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// `DELETE {base}/instances/{id}[?force=true]`. An instance that has not finished is kept and
/// the answer is `200 {"instancesDeleted": 0, "message": …}`: the Durable Functions SDKs accept
/// only 200 and 404 from purge (Durable Functions itself answers 412, which they turn into an
/// exception), and deleting the state of a running instance is never what a client meant.
/// `force=true` purges it anyway.
pub(crate) async fn purge_one(
    State(state): State<HttpState>,
    params: Params,
    PathArgs(id): PathArgs<String>,
) -> Result {
    let deleted = match state.client.purge(&id, params.flag("force", false)).await {
        Ok(deleted) => deleted,
        // The only conflict of purge: the instance has not finished.
        Err(ClientError::Conflict(reason)) => {
            let message = format!(
                "nothing was deleted: {reason} (add force=true to the query to delete it while it runs)"
            );
            return Ok(json_response(
                StatusCode::OK,
                &Purged { instances_deleted: 0, message: Some(message) },
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if deleted == 0 {
        return Err(ApiError::instance_not_found(&id));
    }
    Ok(json_response(StatusCode::OK, &Purged { instances_deleted: deleted, message: None }))
}

/// `DELETE {base}/instances?createdTimeFrom=…[&createdTimeTo=…][&runtimeStatus=…][&force=true]`.
/// As in Durable Functions, only finished instances (Completed, Failed, Terminated) are purged:
/// unfinished statuses in `runtimeStatus` are skipped (and said so) unless `force=true`.
pub(crate) async fn purge_many(State(state): State<HttpState>, params: Params) -> Result {
    let Some(created_from) = params.time("createdTimeFrom")? else {
        return Err(ApiError::bad_request(
            "Please provide value for 'createdTimeFrom' parameter. (ISO 8601, e.g. createdTimeFrom=2026-01-01T00:00:00Z)",
        ));
    };
    let created_to = params.time("createdTimeTo")?;
    let Some(mut statuses) = params.statuses()? else {
        return Err(nothing_purged(None));
    };
    let mut skipped = None;
    if !params.flag("force", false) {
        let unfinished: Vec<&str> =
            statuses.iter().filter(|s| !s.is_terminal()).map(|s| s.as_str()).collect();
        if !unfinished.is_empty() {
            skipped = Some(format!(
                "unfinished instances ({}) are not purged unless force=true is added (it deletes them while they run)",
                unfinished.join(", ")
            ));
            statuses.retain(|s| s.is_terminal());
            if statuses.is_empty() {
                return Err(ApiError::not_found(format!(
                    "nothing was deleted: {}",
                    skipped.unwrap_or_default()
                )));
            }
        }
    }
    let deleted = state
        .client
        .purge_by(&PurgeFilter { created_from: Some(created_from), created_to, statuses })
        .await?;
    if deleted == 0 {
        return Err(nothing_purged(skipped));
    }
    Ok(json_response(StatusCode::OK, &Purged { instances_deleted: deleted, message: skipped }))
}

/// Durable Functions answers 404 when a purge by filter deleted nothing; the SDKs read it as
/// "0 deleted".
fn nothing_purged(skipped: Option<String>) -> ApiError {
    let message = "no instances matched the filter, nothing was deleted; without runtimeStatus only \
        Completed, Failed and Terminated instances are purged";
    ApiError::not_found(match skipped {
        Some(skipped) => format!("{message}; {skipped}"),
        None => message.to_owned(),
    })
}

// ------------------------------------------------------------------------- events, lifecycle

/// `POST {base}/instances/{id}/raiseEvent/{name}`. Check order as Durable Functions: 404, 410,
/// content type, JSON, then 202.
pub(crate) async fn raise_event(
    State(state): State<HttpState>,
    headers: HeaderMap,
    PathArgs((id, event)): PathArgs<(String, String)>,
    Body(body): Body,
) -> Result {
    let instance = state.client.status(&id).await?.ok_or_else(|| ApiError::instance_not_found(&id))?;
    if instance.status.is_terminal() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "InstanceFinished",
            format!(
                "instance '{}' has already finished ({}); it can no longer receive events",
                id.escape_debug(),
                instance.status
            ),
        ));
    }
    if !is_json_content_type(&headers) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnsupportedContentType",
            "Only application/json request content is supported; send the header Content-Type: application/json",
        ));
    }
    let data = json_payload(&body)?;
    state.client.raise_event_raw(&id, &event, data).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The media type (parameters such as `charset` ignored) must be `application/json`.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// `POST {base}/instances/{id}/terminate?reason=`.
pub(crate) async fn terminate(
    State(state): State<HttpState>,
    params: Params,
    PathArgs(id): PathArgs<String>,
) -> Result {
    state.client.terminate(&id, params.get("reason")).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST {base}/instances/{id}/suspend?reason=`.
pub(crate) async fn suspend(
    State(state): State<HttpState>,
    params: Params,
    PathArgs(id): PathArgs<String>,
) -> Result {
    state.client.suspend(&id, params.get("reason")).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST {base}/instances/{id}/resume?reason=`.
pub(crate) async fn resume(
    State(state): State<HttpState>,
    params: Params,
    PathArgs(id): PathArgs<String>,
) -> Result {
    state.client.resume(&id, params.get("reason")).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST {base}/instances/{id}/restart?restartWithNewInstanceId=` (default true): the 202
/// check-status response of the new instance, or the wait semantics of start.
pub(crate) async fn restart(
    State(state): State<HttpState>,
    origin: Origin,
    params: Params,
    PathArgs(id): PathArgs<String>,
) -> Result {
    let wait = wait_time(&params, &state)?;
    state.load_shed.admit(&state.client).await?;
    let new_id = state.client.restart(&id, params.flag("restartWithNewInstanceId", true)).await?;
    match wait {
        Some(timeout) => wait_or_check_status(&state, &origin, &params, &new_id, timeout).await,
        None => check_status_response(&state, &origin, &new_id),
    }
}

/// `POST {base}/instances/{id}/rewind?reason=`: a Failed instance runs its failed work again
/// (202); 404 unknown, 412 not Failed (the JavaScript SDK's code for it), 409 when its history
/// no longer replays with this code.
pub(crate) async fn rewind(
    State(state): State<HttpState>,
    params: Params,
    PathArgs(id): PathArgs<String>,
) -> Result {
    state.client.rewind(&id, params.get("reason")).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `{base}/entities/...`, every method: durable has no durable entities yet. A 501 with a
/// message (rather than "no such route") lets the SDKs' `signalEntity`/`readEntityState` report
/// it honestly.
pub(crate) async fn entities() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "NotImplemented",
        "entities are not supported yet: durable runs orchestrations and activities; keep entity state in an \
         orchestration (events and custom status) or in your own store for now",
    )
}

/// Unknown routes.
pub(crate) async fn fallback() -> ApiError {
    ApiError::for_status(StatusCode::NOT_FOUND, None, 0)
}

fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::JSON_CONTENT_TYPE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_parameters_are_allowed() {
        let ok = ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"];
        for ct in ok {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            assert!(is_json_content_type(&h), "{ct}");
        }
        for ct in ["text/plain", "application/jsonp", "application/x-www-form-urlencoded"] {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            assert!(!is_json_content_type(&h), "{ct}");
        }
        assert!(!is_json_content_type(&HeaderMap::new()));
    }
}
