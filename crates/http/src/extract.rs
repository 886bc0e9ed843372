//! Extractors whose failures are [`ApiError`]s, so every rejection is a JSON answer.

use crate::HttpState;
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use durable_core::Payload;
use serde::de::DeserializeOwned;

/// Path parameters; a malformed segment (bad percent-encoding, invalid UTF-8) is a 400.
pub(crate) struct PathArgs<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for PathArgs<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(PathArgs(t)),
            Err(e @ PathRejection::FailedToDeserializePathParams(_)) => Err(ApiError::bad_request(format!(
                "{}; percent-encode path segments as UTF-8",
                e.body_text()
            ))),
            Err(e) => {
                tracing::error!(error = %e, "path parameters missing for a matched route");
                Err(ApiError::internal())
            }
        }
    }
}

/// The request body, read up to `max_body_bytes`. Too large → 413, whether announced by
/// `Content-Length` (rejected before reading) or discovered while streaming a chunked body.
pub(crate) struct Body(pub(crate) Bytes);

impl FromRequest<HttpState> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &HttpState) -> Result<Self, Self::Rejection> {
        let limit = state.options.max_body_bytes;
        let announced = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::payload_too_large(limit));
        }
        match axum::body::to_bytes(req.into_body(), limit).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(e) if is_length_limit(&e) => Err(ApiError::payload_too_large(limit)),
            Err(_) => {
                Err(ApiError::bad_request("the request body could not be read completely; send it again"))
            }
        }
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Parses a JSON body strictly: empty (or whitespace) means no input; a UTF-8 byte order mark,
/// which Windows tools like to send and .NET ignores, is skipped.
pub(crate) fn json_payload(body: &[u8]) -> Result<Option<Payload>, ApiError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::invalid_json("the body is not valid UTF-8"))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    Payload::from_json(text).map(Some).map_err(ApiError::invalid_json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_are_strict() {
        assert_eq!(json_payload(b"").unwrap(), None);
        assert_eq!(json_payload(b"  \n").unwrap(), None);
        assert_eq!(json_payload(b" 42 ").unwrap().unwrap().as_str(), "42");
        assert_eq!(json_payload(b"\xEF\xBB\xBF\"0042\"").unwrap().unwrap().as_str(), "\"0042\"");
        let deep = "[".repeat(10_000);
        for bad in [&b"0042"[..], b"{", b"1 2", b"'x'", b"\xff", b"NaN", deep.as_bytes()] {
            let e = json_payload(bad).unwrap_err();
            assert_eq!(e.kind, "InvalidJson");
            assert!(e.message.contains("send 42 or \"0042\""), "{}", e.message);
        }
    }
}
