//! Where the request came from ([`Origin`]) and the management URLs we hand out (§2.4 of the
//! Durable Functions HTTP API).

use crate::HttpState;
use crate::error::ApiError;
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

/// Path of the built-in management API.
pub const WEBHOOK_PATH: &str = "/runtime/webhooks/durabletask";

/// Path of the same API on the key-less local RPC endpoint (Durable Functions' `rpcBaseUrl` is
/// `http://127.0.0.1:17071/durabletask/`), served by [`local_rpc_router`](crate::local_rpc_router).
pub const LOCAL_RPC_PATH: &str = "/durabletask";

/// Everything but RFC 3986 unreserved characters is encoded, in path segments and query values
/// alike (an instance id may contain `:`, `%`, spaces, `&`...).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub(crate) fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// Scheme and authority of the request, as the client addressed us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) scheme: &'static str,
    pub(crate) authority: String,
    /// Path and query as the client sent them (before routing stripped any prefix).
    pub(crate) path_and_query: String,
}

impl Origin {
    /// `{scheme}://{authority}`.
    pub(crate) fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// The absolute URL of the request.
    pub(crate) fn request_url(&self) -> String {
        format!("{}{}", self.base(), self.path_and_query)
    }

    pub(crate) fn from_parts(parts: &Parts, trust_forwarded: bool) -> Result<Origin, ApiError> {
        let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |o| &o.0);
        let path_and_query = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |pq| pq.to_string());
        if trust_forwarded {
            let scheme = match first_value(&parts.headers, "x-forwarded-proto") {
                None => None,
                Some(p) if p.eq_ignore_ascii_case("https") => Some("https"),
                Some(p) if p.eq_ignore_ascii_case("http") => Some("http"),
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "X-Forwarded-Proto must be http or https; fix the proxy configuration",
                    ));
                }
            };
            if let Some(host) = first_value(&parts.headers, "x-forwarded-host") {
                let authority = valid_authority(host).ok_or_else(|| {
                    ApiError::bad_request(
                        "X-Forwarded-Host is not a valid host[:port]; fix the proxy configuration",
                    )
                })?;
                let scheme = scheme.unwrap_or_else(|| direct_scheme(parts));
                return Ok(Origin { scheme, authority, path_and_query });
            }
            if let Some(scheme) = scheme {
                let authority = direct_authority(parts)?;
                return Ok(Origin { scheme, authority, path_and_query });
            }
        }
        Ok(Origin { scheme: direct_scheme(parts), authority: direct_authority(parts)?, path_and_query })
    }
}

impl FromRequestParts<HttpState> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, Self::Rejection> {
        Origin::from_parts(parts, state.options.trust_forwarded_headers)
    }
}

fn direct_scheme(parts: &Parts) -> &'static str {
    // We serve plain HTTP; a TLS terminator in front is what forwarded headers are for.
    match parts.uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    }
}

fn direct_authority(parts: &Parts) -> Result<String, ApiError> {
    let host = match parts.uri.authority() {
        Some(a) => Some(a.as_str().to_owned()),
        None => parts.headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned),
    };
    host.as_deref()
        .and_then(valid_authority)
        .ok_or_else(|| ApiError::bad_request("the request has no valid Host header; send Host: host[:port]"))
}

/// The first comma-separated value of a header (proxies append theirs).
fn first_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let v = headers.get(name)?.to_str().ok()?;
    v.split(',').next().map(str::trim).filter(|s| !s.is_empty())
}

/// Accepts `host`, `host:port` and `[v6]:port` with conservative characters only: the value
/// is echoed into URLs we return, so nothing that could break out of a URL gets through.
fn valid_authority(host: &str) -> Option<String> {
    let ok_chars = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'));
    if host.is_empty() || host.len() > 255 || !ok_chars {
        return None;
    }
    host.parse::<axum::http::uri::Authority>().ok().map(|a| a.as_str().to_ascii_lowercase())
}

/// The body of the 202 check-status response, fields in Durable Functions' order.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckStatus {
    pub(crate) id: String,
    pub(crate) status_query_get_uri: String,
    pub(crate) send_event_post_uri: String,
    pub(crate) terminate_post_uri: String,
    pub(crate) purge_history_delete_uri: String,
    pub(crate) restart_post_uri: String,
    pub(crate) suspend_post_uri: String,
    pub(crate) resume_post_uri: String,
}

impl CheckStatus {
    /// The management URLs of `instance_id`. `{eventName}` and `{text}` are literal
    /// placeholders for the client to fill in.
    pub(crate) fn new(
        origin: &Origin,
        state: &HttpState,
        instance_id: &str,
        return_500_on_failure: bool,
    ) -> Self {
        let o = &state.options;
        let mut suffix = format!("taskHub={}&connection={}", encode(&o.task_hub), encode(&o.connection_name));
        if let Some(key) = o.system_keys.first() {
            suffix.push_str("&code=");
            suffix.push_str(&encode(key));
        }
        let instance = format!("{}{WEBHOOK_PATH}/instances/{}", origin.base(), encode(instance_id));
        let mut status = format!("{instance}?{suffix}");
        if return_500_on_failure {
            status.push_str("&returnInternalServerErrorOnFailure=true");
        }
        CheckStatus {
            id: instance_id.to_owned(),
            status_query_get_uri: status,
            send_event_post_uri: format!("{instance}/raiseEvent/{{eventName}}?{suffix}"),
            terminate_post_uri: format!("{instance}/terminate?reason={{text}}&{suffix}"),
            purge_history_delete_uri: format!("{instance}?{suffix}"),
            restart_post_uri: format!("{instance}/restart?{suffix}"),
            suspend_post_uri: format!("{instance}/suspend?reason={{text}}&{suffix}"),
            resume_post_uri: format!("{instance}/resume?reason={{text}}&{suffix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn origin_comes_from_host_unless_forwarded_headers_are_trusted() {
        let p = parts(
            "/x?code=k",
            &[
                ("host", "Internal:7071"),
                ("x-forwarded-host", "api.example.com"),
                ("x-forwarded-proto", "https"),
            ],
        );
        let direct = Origin::from_parts(&p, false).unwrap();
        assert_eq!(direct.base(), "http://internal:7071");
        assert_eq!(direct.request_url(), "http://internal:7071/x?code=k");
        let fwd = Origin::from_parts(&p, true).unwrap();
        assert_eq!(fwd.base(), "https://api.example.com");
    }

    #[test]
    fn forwarded_values_take_the_first_hop_and_are_validated() {
        let p = parts(
            "/",
            &[
                ("host", "h"),
                ("x-forwarded-host", "a.example, b.internal"),
                ("x-forwarded-proto", "https, http"),
            ],
        );
        assert_eq!(Origin::from_parts(&p, true).unwrap().base(), "https://a.example");
        let p = parts("/", &[("host", "h"), ("x-forwarded-proto", "https")]);
        assert_eq!(Origin::from_parts(&p, true).unwrap().base(), "https://h");
        let p = parts("/", &[("host", "h"), ("x-forwarded-proto", "gopher")]);
        assert!(Origin::from_parts(&p, true).is_err());
        let p = parts("/", &[("host", "h"), ("x-forwarded-host", "evil.com/path?")]);
        assert!(Origin::from_parts(&p, true).is_err());
    }

    #[test]
    fn hosts_that_could_break_urls_are_rejected() {
        for bad in ["", "user@host", "a b", "h\"x", "h/p", "h<script>"] {
            assert_eq!(valid_authority(bad), None, "{bad}");
        }
        assert_eq!(valid_authority("[::1]:8080").as_deref(), Some("[::1]:8080"));
        assert_eq!(valid_authority("localhost:7071").as_deref(), Some("localhost:7071"));
        assert!(Origin::from_parts(&parts("/", &[]), false).is_err());
        let absolute = parts("https://h2.example:8443/p", &[]);
        assert_eq!(Origin::from_parts(&absolute, false).unwrap().base(), "https://h2.example:8443");
    }

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(encode("a b/c?d&e=f:g%"), "a%20b%2Fc%3Fd%26e%3Df%3Ag%25");
        assert_eq!(encode("abc-1._~"), "abc-1._~");
    }
}
