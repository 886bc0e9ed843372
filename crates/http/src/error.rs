//! [`ApiError`]: every failure the API answers, mapped to a status code in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use durable_runtime::client::Error as ClientError;
use durable_store::Error as StoreError;
use serde::Serialize;

/// An error answer: status, a stable kind users can search for, and a message that says what
/// to do. Internal details (store errors) are logged, never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable kind, e.g. `"InstanceNotFound"`.
    pub kind: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `Retry-After` in seconds (429 and 503 answers that know when to come back).
    pub retry_after: Option<u64>,
}

/// The JSON body of every error response: our `error` (kind) and `message`, then the fields of
/// Durable Functions' ASP.NET `HttpError` body, which its client SDKs read (the Python SDK raises
/// `ExceptionMessage` of a 400 from start). No `StackTrace`: internals stay in the log.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(rename = "Message")]
    df_message: &'a str,
    #[serde(rename = "ExceptionMessage")]
    df_exception_message: &'a str,
    #[serde(rename = "ExceptionType")]
    df_exception_type: &'static str,
}

/// The hint appended to every invalid-JSON message: strict JSON differs from Durable Functions'
/// Newtonsoft parser, which reads `0042` as octal 34.
pub(crate) const JSON_HINT: &str = "The body must be one strict JSON document (RFC 8259): numbers \
    cannot have leading zeros, so send 42 or \"0042\", not 0042; strings need double quotes.";

impl ApiError {
    /// An error with `status`, `kind` and `message`.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, kind, message: message.into(), retry_after: None }
    }

    /// The same error with a `Retry-After: secs` header.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub(crate) fn invalid_json(detail: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidJson",
            format!("Invalid JSON content: {detail}. {JSON_HINT}"),
        )
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub(crate) fn instance_not_found(instance_id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "InstanceNotFound",
            format!(
                "instance '{}' was not found; check the id (ids are case-sensitive) or list instances with GET /runtime/webhooks/durabletask/instances",
                instance_id.escape_debug()
            ),
        )
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    pub(crate) fn payload_too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("the request body is larger than the limit of {limit} bytes; send a smaller body"),
        )
    }

    pub(crate) fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "something went wrong while processing the request; retry, and check the server log if it persists",
        )
    }

    /// The generic error for a bare status produced outside our handlers (405 from routing, 408
    /// from the timeout layer, ...).
    pub(crate) fn for_status(status: StatusCode, allow: Option<&str>, timeout_ms: u128) -> Self {
        match status {
            StatusCode::NOT_FOUND => ApiError::not_found(
                "no such route; the management API lives under /runtime/webhooks/durabletask (instances, orchestrators)",
            ),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
                status,
                "MethodNotAllowed",
                match allow {
                    Some(allow) if !allow.is_empty() => {
                        format!("this route does not accept that method; use one of: {allow}")
                    }
                    _ => "this route does not accept that method".to_owned(),
                },
            ),
            StatusCode::REQUEST_TIMEOUT => ApiError::new(
                status,
                "RequestTimeout",
                format!("the request did not complete within {timeout_ms} ms; retry, or use a shorter wait"),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(status, "PayloadTooLarge", "the request body is too large; send a smaller body")
            }
            s if s.is_server_error() => ApiError { status: s, ..ApiError::internal() },
            s => ApiError::new(
                s,
                "BadRequest",
                "the request could not be processed; check the URL, query and body",
            ),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        use StatusCode as S;
        match e {
            ClientError::NotFound(id) => ApiError::instance_not_found(&id),
            ClientError::AlreadyExists { .. } => ApiError::new(
                S::CONFLICT,
                "InstanceAlreadyExists",
                format!("{e}; or omit the instance id to get a random one"),
            ),
            ClientError::InstanceFinished { .. } => ApiError::new(S::GONE, "InstanceFinished", e.to_string()),
            ClientError::UnknownOrchestrator { .. } => ApiError::new(
                S::BAD_REQUEST,
                "UnknownOrchestrator",
                format!("{e}; use one of the registered names"),
            ),
            ClientError::InvalidInstanceId(_) => ApiError::new(
                S::BAD_REQUEST,
                "InvalidInstanceId",
                format!("{e}; {}", durable_runtime::client::INSTANCE_ID_RULES),
            ),
            ClientError::InvalidEventName(_) => {
                ApiError::new(S::BAD_REQUEST, "InvalidEventName", e.to_string())
            }
            ClientError::InvalidInput(_) => ApiError::new(S::BAD_REQUEST, "InvalidInput", e.to_string()),
            ClientError::RateLimited(refusal) => rate_limited(&refusal),
            ClientError::NotFailed { .. } => ApiError::new(
                S::PRECONDITION_FAILED,
                "NotFailed",
                format!("{e}; restart runs it again from the start"),
            ),
            ClientError::Conflict(_) => ApiError::new(S::CONFLICT, "Conflict", e.to_string()),
            ClientError::Timeout { .. } => ApiError::new(S::SERVICE_UNAVAILABLE, "Timeout", e.to_string()),
            ClientError::Store(store) => store.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        use StatusCode as S;
        match e {
            StoreError::NotFound { instance_id } => ApiError::instance_not_found(&instance_id),
            StoreError::Invalid(msg) => ApiError::bad_request(msg),
            StoreError::Conflict(_) | StoreError::AlreadyExists { .. } => ApiError::new(
                S::CONFLICT,
                "Conflict",
                "the instance changed while the request was processed; retry the request",
            ),
            StoreError::InstanceFinished { .. } => ApiError::new(S::GONE, "InstanceFinished", e.to_string()),
            StoreError::Unavailable(_) => {
                // The detail may name files or hosts; keep it in the log only.
                tracing::warn!(error = %e, "store unavailable");
                ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the store is unavailable (shutting down or unreachable); retry later",
                )
            }
            StoreError::RateLimited(refusal) => rate_limited(&refusal),
            StoreError::StorageFull(_) => {
                tracing::error!(error = %e, "the store's disk is full: writes are refused until space is freed");
                ApiError::new(
                    S::INSUFFICIENT_STORAGE,
                    "InsufficientStorage",
                    "the server's storage is full, so nothing was saved; retry once the operator has freed disk space \
                     (the server resumes by itself)",
                )
                .with_retry_after(30)
            }
            StoreError::LeaseLost | StoreError::Backend(_) => {
                tracing::error!(error = %e, "store error while serving a request");
                ApiError::internal()
            }
        }
    }
}

impl ApiError {
    /// The .NET exception type Durable Functions reports for this class of failure, in the
    /// `ExceptionType` field: its HTTP handler turns `ArgumentException`s into 400s, and state
    /// conflicts are `InvalidOperationException`s.
    pub fn exception_type(&self) -> &'static str {
        use StatusCode as S;
        match self.status {
            S::UNAUTHORIZED | S::FORBIDDEN => "System.UnauthorizedAccessException",
            S::REQUEST_TIMEOUT | S::SERVICE_UNAVAILABLE | S::GATEWAY_TIMEOUT => "System.TimeoutException",
            S::CONFLICT | S::GONE | S::PRECONDITION_FAILED => "System.InvalidOperationException",
            S::NOT_IMPLEMENTED => "System.NotImplementedException",
            s if s.is_client_error() => "System.ArgumentException",
            _ => "System.Exception",
        }
    }
}

/// `429 Too Many Requests` for a start a rate limit refused: names the limit and when to retry.
fn rate_limited(refusal: &durable_store::LimitRefusal) -> ApiError {
    let secs = refusal.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let at = jiff::Timestamp::now()
        .checked_add(std::time::Duration::from_secs(secs))
        .map(|t| format!(" (at {})", t.round(jiff::Unit::Second).unwrap_or(t)))
        .unwrap_or_default();
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "RateLimited",
        format!(
            "the start was refused by the limit '{}' ({} per {}): no instance was created and no message sent; \
             retry in {secs} s{at}",
            refusal.limit,
            refusal.rate.max,
            durable_store::limits::describe_period(refusal.rate.period),
        ),
    )
    .with_retry_after(secs)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&ErrorBody {
            error: self.kind,
            message: &self.message,
            df_message: &self.message,
            df_exception_message: &self.message,
            df_exception_type: self.exception_type(),
        })
        .unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::JSON_CONTENT_TYPE));
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_core::RuntimeStatus;

    #[test]
    fn client_errors_map_to_durable_functions_statuses() {
        let cases: Vec<(ClientError, StatusCode)> = vec![
            (ClientError::NotFound("a".into()), StatusCode::NOT_FOUND),
            (
                ClientError::AlreadyExists { instance_id: "a".into(), status: RuntimeStatus::Running },
                StatusCode::CONFLICT,
            ),
            (
                ClientError::InstanceFinished { instance_id: "a".into(), status: RuntimeStatus::Completed },
                StatusCode::GONE,
            ),
            (
                ClientError::UnknownOrchestrator { name: "X".into(), registered: "A, B".into() },
                StatusCode::BAD_REQUEST,
            ),
            (ClientError::InvalidInstanceId("x".into()), StatusCode::BAD_REQUEST),
            (ClientError::InvalidEventName("x".into()), StatusCode::BAD_REQUEST),
            (ClientError::InvalidInput("x".into()), StatusCode::BAD_REQUEST),
            (ClientError::Conflict("x".into()), StatusCode::CONFLICT),
            (
                ClientError::NotFailed { instance_id: "a".into(), status: RuntimeStatus::Completed },
                StatusCode::PRECONDITION_FAILED,
            ),
            (ClientError::Store(StoreError::Invalid("bad token".into())), StatusCode::BAD_REQUEST),
            (ClientError::Store(StoreError::Unavailable("closed".into())), StatusCode::SERVICE_UNAVAILABLE),
            (ClientError::Store(StoreError::LeaseLost), StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (e, status) in cases {
            let text = e.to_string();
            assert_eq!(ApiError::from(e).status, status, "{text}");
        }
    }

    #[test]
    fn unknown_orchestrator_message_lists_registered_names() {
        let e: ApiError =
            ClientError::UnknownOrchestrator { name: "X".into(), registered: "Alpha, Beta".into() }.into();
        assert!(e.message.contains("Alpha, Beta"), "{}", e.message);
    }

    #[test]
    fn exception_types_follow_durable_functions_by_status() {
        let of = |status: u16| {
            ApiError::new(StatusCode::from_u16(status).unwrap(), "K", "m").exception_type().to_owned()
        };
        assert_eq!(of(400), "System.ArgumentException");
        assert_eq!(of(404), "System.ArgumentException");
        assert_eq!(of(413), "System.ArgumentException");
        assert_eq!(of(401), "System.UnauthorizedAccessException");
        assert_eq!(of(409), "System.InvalidOperationException");
        assert_eq!(of(410), "System.InvalidOperationException");
        assert_eq!(of(408), "System.TimeoutException");
        assert_eq!(of(503), "System.TimeoutException");
        assert_eq!(of(501), "System.NotImplementedException");
        assert_eq!(of(500), "System.Exception");
    }

    #[test]
    fn backend_details_stay_out_of_the_body() {
        let e: ApiError = StoreError::backend(std::io::Error::other("/var/db/secret.sqlite locked")).into();
        assert!(!e.message.contains("secret"), "{}", e.message);
    }
}
