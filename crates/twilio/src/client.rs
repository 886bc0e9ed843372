//! The Twilio REST client: one `POST …/Messages.json` per attempt, retried with backoff.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, RETRY_AFTER};

use crate::error::is_retryable_status;
use crate::message::ApiErrorBody;
use crate::retry::{backoff, parse_retry_after};
use crate::{Error, SentMessage, TwilioConfig, mask_phone};

/// Twilio's documents are small; a cap keeps a misbehaving proxy from making us buffer megabytes.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How much of a non-Twilio error body (an HTML page from a proxy, say) goes into `Error::Api`.
const MAX_SNIPPET_CHARS: usize = 200;

/// Sends SMS through Twilio's Programmable Messaging API. Cheap to clone (one shared connection
/// pool); build one per process and share it.
#[derive(Clone)]
pub struct TwilioClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: TwilioConfig,
    messages_url: reqwest::Url,
    http: reqwest::Client,
}

impl fmt::Debug for TwilioClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `TwilioConfig`'s Debug already prints the token as `***`.
        f.debug_struct("TwilioClient").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

/// What one failed attempt leaves behind: the error and, for 429/503, the server's `Retry-After`.
#[derive(Debug)]
pub struct AttemptError {
    /// Why the attempt failed.
    pub error: Error,
    /// How long Twilio asked us to wait (`Retry-After` of a retryable answer), if it did.
    pub retry_after: Option<Duration>,
}

type Failure = AttemptError;

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self { error, retry_after: None }
    }
}

/// Message options beyond `To` and `Body`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmsOptions {
    /// `StatusCallback`: the URL Twilio POSTs delivery status changes to (`queued`, `sent`,
    /// `delivered`, `undelivered`, `failed`, with `ErrorCode`), signed with `X-Twilio-Signature`.
    pub status_callback: Option<String>,
}

impl TwilioClient {
    /// Validates `config` and builds the HTTP client; no request is made yet.
    pub fn new(config: TwilioConfig) -> Result<Self, Error> {
        config.validate()?;
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            config.base_url.trim_end_matches('/'),
            config.account_sid
        );
        let messages_url = reqwest::Url::parse(&url).map_err(|err| Error::InvalidConfig {
            field: "base_url",
            reason: format!("cannot form the Messages URL from {:?}: {err}", config.base_url),
        })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("durable-twilio/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.request_timeout)
            // Twilio never redirects this endpoint; following a redirect would re-POST the
            // message (and its credentials) somewhere we did not configure.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| Error::Transport { attempts: 0, source })?;
        Ok(Self { inner: Arc::new(Inner { config, messages_url, http }) })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &TwilioConfig {
        &self.inner.config
    }

    /// Sends `body` to `to` (E.164, e.g. `+14155551234`) from the configured sender.
    ///
    /// Retries throttling (429), server errors (5xx), timeouts and transport errors up to
    /// [`TwilioConfig::max_attempts`] in total, with exponential backoff and jitter, waiting at
    /// least as long as a `Retry-After` header asks. Other 4xx answers are returned at once.
    ///
    /// Because Twilio's create call has no idempotency key, a retry after a timeout or a broken
    /// connection can send the SMS twice if the first request did reach Twilio; for a
    /// verification code a duplicate is the lesser evil compared to no SMS. Set `max_attempts`
    /// to 1 to leave that decision to the caller ([`Error::may_have_been_sent`]).
    ///
    /// Logs carry only the masked recipient, the attempt, HTTP status, Twilio code and message
    /// SID: never the body (it holds the code) nor the auth token.
    pub async fn send_sms(&self, to: &str, body: &str) -> Result<SentMessage, Error> {
        self.send_sms_with(to, body, &SmsOptions::default()).await
    }

    /// [`send_sms`](Self::send_sms) with options (e.g. a status callback URL).
    pub async fn send_sms_with(
        &self,
        to: &str,
        body: &str,
        options: &SmsOptions,
    ) -> Result<SentMessage, Error> {
        let cfg = &self.inner.config;
        let masked_to = mask_phone(to);
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(to, body, options, attempt).await {
                Ok(message) => {
                    tracing::info!(
                        to = %masked_to,
                        sid = %message.sid,
                        status = ?message.status,
                        attempt,
                        "Twilio accepted the SMS"
                    );
                    return Ok(message);
                }
                Err(failure) => failure,
            };
            let error = failure.error;
            if error.is_permanent() || attempt >= cfg.max_attempts {
                tracing::warn!(
                    to = %masked_to,
                    attempt,
                    http_status = error.http_status(),
                    code = error.code(),
                    permanent = error.is_permanent(),
                    kind = kind(&error),
                    "sending SMS through Twilio failed"
                );
                return Err(error);
            }
            let mut delay = backoff(attempt, cfg.initial_backoff, cfg.max_backoff);
            if let Some(retry_after) = failure.retry_after {
                if retry_after > cfg.max_retry_after {
                    tracing::warn!(
                        to = %masked_to,
                        attempt,
                        http_status = error.http_status(),
                        code = error.code(),
                        retry_after_secs = retry_after.as_secs(),
                        max_retry_after_secs = cfg.max_retry_after.as_secs(),
                        "Twilio asked to retry later than max_retry_after; giving up for now"
                    );
                    return Err(error);
                }
                delay = delay.max(retry_after);
            }
            tracing::warn!(
                to = %masked_to,
                attempt,
                http_status = error.http_status(),
                code = error.code(),
                kind = kind(&error),
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "Twilio request failed; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Exactly one HTTP exchange, without retries, for callers that run their own retry policy
    /// (e.g. one bounded by a deadline): the error says whether another try can help
    /// ([`Error::is_permanent`]) and how long Twilio asked to wait.
    pub async fn try_send_sms(
        &self,
        to: &str,
        body: &str,
        options: &SmsOptions,
    ) -> Result<SentMessage, AttemptError> {
        let result = self.attempt(to, body, options, 1).await;
        match &result {
            Ok(message) => tracing::info!(
                to = %mask_phone(to),
                sid = %message.sid,
                status = ?message.status,
                "Twilio accepted the SMS"
            ),
            Err(failure) => tracing::warn!(
                to = %mask_phone(to),
                http_status = failure.error.http_status(),
                code = failure.error.code(),
                permanent = failure.error.is_permanent(),
                kind = kind(&failure.error),
                retry_after_secs = failure.retry_after.map(|d| d.as_secs()),
                "sending SMS through Twilio failed"
            ),
        }
        result
    }

    /// One HTTP exchange, classified into a message or a [`Failure`].
    async fn attempt(
        &self,
        to: &str,
        body: &str,
        options: &SmsOptions,
        attempt: u32,
    ) -> Result<SentMessage, Failure> {
        let cfg = &self.inner.config;
        let mut form = vec![("To", to), ("From", cfg.from.as_str()), ("Body", body)];
        if let Some(url) = &options.status_callback {
            form.push(("StatusCallback", url.as_str()));
        }
        let request = self
            .inner
            .http
            .post(self.inner.messages_url.clone())
            .basic_auth(&cfg.account_sid, Some(cfg.auth_token.expose()))
            .header(ACCEPT, "application/json")
            .timeout(cfg.request_timeout)
            .form(&form);

        let response = request.send().await.map_err(|err| self.transport(err, attempt))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        let success = response.status().is_success();

        let bytes = match read_capped(response).await {
            Ok(bytes) => bytes,
            // Twilio has already said yes: retrying would send a second SMS.
            Err(err) if success => {
                return Err(Error::InvalidResponse {
                    http_status: status,
                    reason: format!("reading the body failed: {err}"),
                }
                .into());
            }
            Err(err) => return Err(self.transport(err, attempt).into_failure(retry_after)),
        };

        if success {
            return serde_json::from_slice::<SentMessage>(&bytes).map_err(|err| {
                Error::InvalidResponse {
                    http_status: status,
                    reason: format!("expected a Twilio Message resource: {err}"),
                }
                .into()
            });
        }

        let error = match serde_json::from_slice::<ApiErrorBody>(&bytes) {
            Ok(doc) if doc.code.is_some() || doc.message.is_some() => Error::Api {
                http_status: status,
                code: doc.code,
                message: doc.message.unwrap_or_default(),
                more_info: doc.more_info,
                attempts: attempt,
            },
            _ => Error::Api {
                http_status: status,
                code: None,
                message: snippet(&bytes),
                more_info: None,
                attempts: attempt,
            },
        };
        Err(Failure { error, retry_after: retry_after.filter(|_| is_retryable_status(status)) })
    }

    fn transport(&self, err: reqwest::Error, attempt: u32) -> Error {
        if err.is_timeout() {
            Error::Timeout { timeout: self.inner.config.request_timeout, attempts: attempt }
        } else {
            Error::Transport { attempts: attempt, source: err }
        }
    }
}

impl Error {
    fn into_failure(self, retry_after: Option<Duration>) -> Failure {
        Failure { error: self, retry_after }
    }
}

/// A stable, low-cardinality name for the error variant, for log fields.
fn kind(error: &Error) -> &'static str {
    match error {
        Error::InvalidConfig { .. } => "invalid_config",
        Error::Api { .. } => "api",
        Error::Transport { .. } => "transport",
        Error::Timeout { .. } => "timeout",
        Error::InvalidResponse { .. } => "invalid_response",
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    Ok(buf)
}

/// The start of a non-JSON body, on one line, for an error message.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String =
        text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(MAX_SNIPPET_CHARS).collect();
    if out.is_empty() {
        out.push_str("(empty body)");
    }
    out
}
