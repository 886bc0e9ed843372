//! The connection to a server's HTTP API, and the translation of its answers into advice for
//! people at a command line: flags to pass, commands to run, never query parameters.

use crate::args::RemoteArgs;
use crate::config::{self, Target};
use anyhow::{Context, Result, anyhow};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// The management API's base path.
pub(crate) const WEBHOOK: &str = "/runtime/webhooks/durabletask";
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An authenticated connection to a server.
pub(crate) struct Api {
    http: reqwest::Client,
    pub target: Target,
}

/// A successful answer: headers and JSON body (`Value::Null` when empty).
pub(crate) struct Reply {
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

/// Why a call did not succeed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer: the server is not there, or the connection broke.
    Transport(reqwest::Error),
    /// An error answer.
    Refused(Refusal),
}

/// An error answer of the server.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    /// The stable error kind of the body (`"InstanceNotFound"`, …), empty when absent.
    pub kind: String,
    /// The server's message.
    pub message: String,
}

impl Api {
    pub(crate) fn new(remote: &RemoteArgs) -> Result<Api> {
        let target = config::target(remote)?;
        reqwest::Url::parse(&target.url).map_err(|e| {
            anyhow!("--url '{}' is not a URL ({e}); use e.g. {}", target.url, config::DEFAULT_URL)
        })?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api { http, target })
    }

    pub(crate) fn base(&self) -> &str {
        &self.target.url
    }

    /// Sends a request; the key travels in the `x-functions-key` header, never in the URL.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        headers: &[(&str, String)],
        body: Option<String>,
    ) -> Result<Reply, CallError> {
        let mut request = self.http.request(method, format!("{}{path}", self.target.url)).query(query);
        if let Some(key) = &self.target.key {
            request = request.header(durable_http::KEY_HEADER, key);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.map_err(CallError::Transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(CallError::Transport)?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_client_error() || status.is_server_error() {
            let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
            return Err(CallError::Refused(Refusal {
                status,
                kind: field("error").unwrap_or_default(),
                message: field("message")
                    .or_else(|| body.as_str().map(str::to_owned))
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
            }));
        }
        Ok(Reply { headers, body })
    }

    /// GET with a query.
    pub(crate) async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Reply, CallError> {
        self.call(Method::GET, path, query, &[], None).await
    }

    /// The advice for a failed call about instance `id` (if any), for whatever the command
    /// did not handle itself.
    pub(crate) fn explain(&self, error: CallError, id: Option<&str>) -> anyhow::Error {
        match error {
            CallError::Transport(e) => self.explain_transport(e),
            CallError::Refused(r) => self.explain_refusal(r, id),
        }
    }

    fn explain_transport(&self, e: reqwest::Error) -> anyhow::Error {
        let url = &self.target.url;
        if e.is_connect() {
            let cause = root_cause(&e);
            return anyhow!(
                "cannot connect to {url} ({cause}): is `durable serve` running at {url}? \
                 Start it with `durable serve`, or point --url (or DURABLE_URL) at the server"
            );
        }
        if e.is_timeout() {
            return anyhow!(
                "the server at {url} did not answer within {} s; check that it is healthy (its log) and try again",
                REQUEST_TIMEOUT.as_secs()
            );
        }
        anyhow!("cannot talk to the server at {url}: {}", root_cause(&e))
    }

    fn explain_refusal(&self, r: Refusal, id: Option<&str>) -> anyhow::Error {
        let url = &self.target.url;
        match r.status {
            StatusCode::UNAUTHORIZED => self.explain_unauthorized(),
            StatusCode::NOT_FOUND if r.kind == "InstanceNotFound" || id.is_some() && r.kind != "NotFound" => {
                match id {
                    Some(id) => anyhow!(
                        "no instance '{id}' at {url}: check the id (ids are case-sensitive); `durable list` shows the instances there"
                    ),
                    None => anyhow!("{}", cli_words(&r.message)),
                }
            }
            StatusCode::NOT_FOUND => anyhow!(
                "{url} answered 404 ({}): is --url (DURABLE_URL) the address of a durable server?",
                cli_words(&r.message)
            ),
            s if s.is_server_error() => anyhow!(
                "the server at {url} failed ({} {}): {}; its log has the details",
                s.as_u16(),
                s.canonical_reason().unwrap_or(""),
                cli_words(&r.message)
            ),
            s => anyhow!("the server refused the request ({}): {}", s.as_u16(), cli_words(&r.message)),
        }
    }

    fn explain_unauthorized(&self) -> anyhow::Error {
        let url = &self.target.url;
        let fix = "pass the server's key with --key or DURABLE_SYSTEM_KEY, point --data-dir at the \
                   server's data directory (its system.key), or save both once with `durable login`";
        match &self.target.key_source {
            Some(source) => anyhow!(
                "{url} refused the key from {source} (401): it is not that server's system key; {fix}"
            ),
            None => anyhow!(
                "{url} needs its system key (401) and none was found ({}); {fix}",
                self.target.looked.join("; ")
            ),
        }
    }
}

/// The innermost cause of a transport error ("Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Rewrites the HTTP API's advice (query parameters) into this command line's flags.
pub(crate) fn cli_words(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("add force=true to the query to purge it anyway", "pass --force to purge it anyway"),
        ("add force=true to do it anyway", "pass --force to do it anyway"),
        ("force=true", "--force"),
        ("'createdTimeFrom' parameter", "--created-from"),
        ("createdTimeFrom=", "--created-from "),
        ("createdTimeFrom", "--created-from"),
        ("createdTimeTo", "--created-to"),
        ("runtimeStatus", "--status"),
        ("instanceIdPrefix", "--prefix"),
        ("without --status only", "without --status, only"),
    ];
    let mut out = message.to_owned();
    for (api, cli) in WORDS {
        out = out.replace(api, cli);
    }
    out
}

/// A path segment, percent-encoded.
pub(crate) fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The path of an instance.
pub(crate) fn instance_path(id: &str) -> String {
    format!("{WEBHOOK}/instances/{}", encode(id))
}

/// A JSON value as text: strings without quotes, null as `-`.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The argument as JSON when it is JSON, else as a JSON string (`0042` → `"0042"`);
/// `force_string` always makes it a string.
pub(crate) fn json_or_string(argument: &str, force_string: bool) -> String {
    if !force_string && serde_json::from_str::<Value>(argument).is_ok() {
        return argument.to_owned();
    }
    Value::String(argument.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_that_are_not_json_are_sent_as_strings() {
        assert_eq!(json_or_string("0042", false), "\"0042\"");
        assert_eq!(json_or_string("2168", false), "2168");
        assert_eq!(json_or_string("2168", true), "\"2168\"");
        assert_eq!(json_or_string("+14255550123", false), "\"+14255550123\"");
        assert_eq!(json_or_string("\"+14255550123\"", false), "\"+14255550123\"");
        assert_eq!(json_or_string("{\"a\": 1}", false), "{\"a\": 1}");
        assert_eq!(json_or_string("say \"hi\"", false), "\"say \\\"hi\\\"\"");
        assert_eq!(json_or_string("true", false), "true");
    }

    #[test]
    fn http_advice_becomes_flags() {
        assert_eq!(
            cli_words("instance 'x' has not finished: add force=true to the query to purge it anyway"),
            "instance 'x' has not finished: pass --force to purge it anyway"
        );
        assert_eq!(
            cli_words("Please provide value for 'createdTimeFrom' parameter."),
            "Please provide value for --created-from."
        );
    }
}
