//! Twilio's webhooks of the sample, served next to the Durable Functions API:
//!
//! - `POST /twilio/status?instance=<id>`: Twilio's delivery status callback for a verification's
//!   SMS (the sender asks for it when a public base URL is configured). Raises
//!   [`DELIVERY_EVENT`] on the verification, which shows the status in its custom status.
//! - `POST /twilio/sms`: an inbound message. Its digits answer the waiting verification of the
//!   sender's number exactly as an `SmsChallengeResponse` raised through the API would (same
//!   hook, same attempt counting); the answer is TwiML: `Verified.`, `Wrong code, N tries
//!   left.`, or nothing when no verification waits.
//!
//! Both check `X-Twilio-Signature` (HMAC-SHA1 of the full public URL and the sorted form
//! parameters, keyed with the auth token, compared in constant time) before anything else, and
//! refuse a missing or wrong signature with 403, so an unsigned request learns nothing, in
//! particular not whether a verification exists. They are not behind the system key: Twilio
//! cannot send it; the signature is their authentication.

use crate::{
    DELIVERY_EVENT, DeliveryReport, EVENT, ORCHESTRATOR, VerificationKey, VerificationStatus, limits,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use durable_core::Payload;
use durable_runtime::Client;
use durable_runtime::client::Error as ClientError;
use durable_twilio::webhook::{SIGNATURE_HEADER, is_valid};
use durable_twilio::{SecretString, mask_phone};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Path of the delivery status callback.
pub const STATUS_PATH: &str = "/twilio/status";
/// Path of the inbound message webhook.
pub const SMS_PATH: &str = "/twilio/sms";

/// Largest webhook body accepted (Twilio's forms are a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;
/// How long an inbound message waits for the verification to take its answer, before it
/// replies without the outcome (Twilio waits 15 s for the TwiML).
const OUTCOME_WAIT: Duration = Duration::from_secs(5);

/// The `StatusCallback` URL of a verification's SMS: `{base}/twilio/status?instance=<id>`. The
/// instance id travels in the URL, which Twilio signs, so a report can only reach the
/// verification its SMS belongs to.
pub fn status_callback_url(public_base_url: &str, instance_id: &str) -> String {
    let id: String = form_urlencoded::byte_serialize(instance_id.as_bytes()).collect();
    format!("{}{STATUS_PATH}?instance={id}", public_base_url.trim_end_matches('/'))
}

/// What the webhooks need.
#[derive(Clone)]
pub struct WebhookOptions {
    /// The account's auth token: the key of Twilio's signatures.
    pub auth_token: SecretString,
    /// The account SID; requests naming another account are ignored.
    pub account_sid: String,
    /// The URL Twilio calls, up to the path (e.g. `https://verify.example.com`), as configured
    /// in Twilio. Without it the URL is rebuilt from the request (`Host`, and with
    /// `trust_forwarded_headers` `X-Forwarded-Proto`/`-Host`), which only matches when Twilio
    /// reaches this server directly.
    pub public_base_url: Option<String>,
    /// Trust `X-Forwarded-Proto`/`X-Forwarded-Host` when rebuilding the URL.
    pub trust_forwarded_headers: bool,
    /// The verification key (for the keyed hash that finds a number's verification).
    pub key: VerificationKey,
    /// Digits of a code.
    pub code_digits: u32,
}

struct Hooks {
    client: Client,
    options: WebhookOptions,
}

/// The routes `POST /twilio/status` and `POST /twilio/sms`, to merge into the server's router.
pub fn router(client: Client, options: WebhookOptions) -> Router {
    let hooks = Arc::new(Hooks { client, options });
    Router::new()
        .route(STATUS_PATH, post(status_callback))
        .route(SMS_PATH, post(inbound_sms))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(hooks)
}

/// A signed request's form parameters, or the 403 for an unsigned or wrongly signed one.
fn verified(
    hooks: &Hooks,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, Box<Response>> {
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let url = format!(
        "{}{}",
        public_base(&hooks.options, headers),
        uri.path_and_query().map_or("", |pq| pq.as_str())
    );
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if !is_valid(hooks.options.auth_token.expose(), &url, &params, signature) {
        REFUSED.note(uri.path());
        return Err(Box::new(forbidden()));
    }
    let account = param(&params, "AccountSid");
    if account.is_some_and(|a| a != hooks.options.account_sid) {
        tracing::warn!(path = uri.path(), "ignored a signed Twilio webhook of another account");
        return Err(Box::new(StatusCode::NO_CONTENT.into_response()));
    }
    Ok(params)
}

/// Counts refused webhook requests and logs them at most once a minute, so a flood of forged
/// requests cannot flood the log.
struct RefusedLog {
    count: AtomicU64,
    logged_at: AtomicU64,
}

static REFUSED: RefusedLog = RefusedLog { count: AtomicU64::new(0), logged_at: AtomicU64::new(0) };

impl RefusedLog {
    fn note(&self, path: &str) {
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let last = self.logged_at.load(Ordering::Relaxed);
        if now >= last + 60
            && self.logged_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.count.fetch_sub(count, Ordering::Relaxed);
            tracing::warn!(
                path,
                refused = count,
                "refused a Twilio webhook without a valid signature ({count} since the last such line)"
            );
        }
    }
}

fn public_base(options: &WebhookOptions, headers: &HeaderMap) -> String {
    if let Some(base) = &options.public_base_url {
        return base.trim_end_matches('/').to_owned();
    }
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or("").trim().to_owned())
    };
    let forwarded = |name: &str| if options.trust_forwarded_headers { first(name) } else { None };
    let scheme = forwarded("x-forwarded-proto")
        .filter(|p| p == "https" || p == "http")
        .unwrap_or_else(|| "http".into());
    let host = forwarded("x-forwarded-host").or_else(|| first("host")).unwrap_or_default();
    format!("{scheme}://{host}")
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn forbidden() -> Response {
    let body = r#"{"error":"Forbidden","message":"the request does not carry a valid X-Twilio-Signature for this URL"}"#;
    let mut response = (StatusCode::FORBIDDEN, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    response
}

/// `POST /twilio/status?instance=<id>`.
async fn status_callback(
    State(hooks): State<Arc<Hooks>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match verified(&hooks, &uri, &headers, &body) {
        Ok(params) => params,
        Err(response) => return *response,
    };
    let instance = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "instance")
        .map(|(_, v)| v.into_owned());
    let status = param(&params, "MessageStatus").or_else(|| param(&params, "SmsStatus"));
    if let (Some(instance), Some(status)) = (instance, status) {
        let report = DeliveryReport {
            // Bounded: only known statuses are ever shown (see VerificationStatus::record).
            status: status.chars().take(32).collect(),
            error_code: param(&params, "ErrorCode").and_then(|c| c.parse().ok()),
        };
        if let Ok(payload) = Payload::from_value(&report) {
            match hooks.client.raise_event_raw(&instance, DELIVERY_EVENT, Some(payload)).await {
                Ok(()) => {
                    tracing::debug!(instance_id = %instance, status = %report.status, "SMS delivery status recorded");
                }
                // A report for a finished or purged verification has nobody to tell.
                Err(ClientError::NotFound(_) | ClientError::InstanceFinished { .. }) => {}
                Err(e) => {
                    tracing::warn!(instance_id = %instance, error = %e, "could not record an SMS delivery status");
                }
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /twilio/sms`.
async fn inbound_sms(State(hooks): State<Arc<Hooks>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = match verified(&hooks, &uri, &headers, &body) {
        Ok(params) => params,
        Err(response) => return *response,
    };
    let (Some(from), Some(text)) = (param(&params, "From"), param(&params, "Body")) else {
        return twiml(None);
    };
    let Some(instance_id) = waiting_verification(&hooks, from).await else {
        tracing::info!(from = %mask_phone(from), "an SMS reply found no waiting verification");
        return twiml(None);
    };
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let expected = hooks.options.code_digits as usize;
    if digits.len() != expected {
        // Not a guess: no attempt is used, as with a malformed answer through the API.
        return twiml(Some(&format!("Please reply with the {expected}-digit code only.")));
    }
    let before = answers_left(&hooks.client, &instance_id).await;
    let payload = Payload::from_value(&digits).expect("a string is JSON");
    match hooks.client.raise_event_raw(&instance_id, EVENT, Some(payload)).await {
        Ok(()) => {}
        Err(ClientError::NotFound(_) | ClientError::InstanceFinished { .. }) => return twiml(None),
        Err(ClientError::InvalidInput(_)) => {
            return twiml(Some(&format!("Please reply with the {expected}-digit code only.")));
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not deliver an SMS reply to its verification");
            return twiml(None);
        }
    }
    twiml(outcome(&hooks.client, &instance_id, before).await.as_deref())
}

/// The verification the number's last start created, if it still waits for an answer.
async fn waiting_verification(hooks: &Hooks, from: &str) -> Option<String> {
    crate::phone::check_e164(from).ok()?;
    let key = limits::sms_number_key(&hooks.options.key, from);
    let instance_id = match hooks.client.limit_reference(&key).await.ok()? {
        Some(id) => id,
        None => {
            let legacy = limits::legacy_sms_number_key(&hooks.options.key, from);
            hooks.client.limit_reference(&legacy).await.ok()??
        }
    };
    let state = hooks.client.status(&instance_id).await.ok()??;
    let input = state.input.as_ref().and_then(|p| p.decode::<String>().ok());
    (state.name == ORCHESTRATOR && !state.status.is_terminal() && input.as_deref() == Some(from))
        .then_some(instance_id)
}

/// `attemptsLeft` of the verification's custom status (`None` before the SMS is out).
async fn answers_left(client: &Client, instance_id: &str) -> Option<u32> {
    let state = client.status(instance_id).await.ok()??;
    Some(state.custom_status?.decode::<VerificationStatus>().ok()?.attempts_left)
}

/// What became of the answer, once the verification took it: finished, or fewer attempts
/// left. Woken by the completion notification; between checks it waits a little longer each
/// time, for at most [`OUTCOME_WAIT`] in all.
async fn outcome(client: &Client, instance_id: &str, before: Option<u32>) -> Option<String> {
    let deadline = Instant::now() + OUTCOME_WAIT;
    let mut pause = Duration::from_millis(10);
    loop {
        let state = client.status(instance_id).await.ok()??;
        let left = state
            .custom_status
            .as_ref()
            .and_then(|s| s.decode::<VerificationStatus>().ok())
            .map(|s| s.attempts_left);
        if state.status.is_terminal() {
            let verified = state.output.as_ref().and_then(|o| o.decode::<bool>().ok()) == Some(true);
            return Some(if verified {
                "Verified.".into()
            } else {
                format!("Wrong code, {} tries left.", left.unwrap_or(0))
            });
        }
        if let (Some(before), Some(left)) = (before, left)
            && left < before
        {
            return Some(format!("Wrong code, {left} tries left."));
        }
        let now = Instant::now();
        if now >= deadline {
            return Some("Code received.".into());
        }
        let _ = client.wait_for_completion(instance_id, pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(320));
    }
}

/// A TwiML answer: one `<Message>`, or an empty `<Response/>` (no reply SMS).
fn twiml(message: Option<&str>) -> Response {
    let body = match message {
        Some(text) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            xml_escape(text)
        ),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".to_owned(),
    };
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    response
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_callback_urls_carry_the_encoded_instance() {
        assert_eq!(
            status_callback_url("https://v.example.com/", "a b&c"),
            "https://v.example.com/twilio/status?instance=a+b%26c"
        );
    }

    #[test]
    fn twiml_is_escaped() {
        let r = twiml(Some("a<b"));
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/xml; charset=utf-8");
    }
}
