//! The SMS phone-verification sample of Durable Functions, on **durable**.
//!
//! `E4_SmsPhoneVerification` sends a random code by SMS through the activity
//! `E4_SendSmsChallenge`, then races a durable timer (90 s) against up to 4
//! `SmsChallengeResponse` events: the right code gives output `true`; a timeout or 4 wrong codes
//! give `false`; the timer is cancelled either way.
//!
//! Unlike the original, no code is ever stored or logged in clear: a code is derived from the
//! verification key, the instance, the execution and the challenge number (so a re-sent SMS
//! carries the same code); the activity returns only `HMAC(key, instance ‖ code)`; an event hook
//! replaces every answer by the MAC of the guess before it is stored; the orchestrator compares
//! MACs in constant time. The key lives outside the database (a file in the data directory or an
//! environment variable). Answers that are not a code of the right length are refused with a
//! clear error and do not use up an attempt.
//!
//! It is also safe to expose: starts must carry an E.164 number ([`phone`]), abuse limits kept
//! in the store refuse floods and guessing ([`limits`]), the SMS is retried through Twilio
//! outages within the window, and Twilio's delivery status callbacks and SMS replies are served
//! by [`webhooks`] (signature-checked). The custom status shows the delivery status and the
//! answers left ([`VerificationStatus`]). See `SECURITY.md` at the repository root.
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use durable_phone_verification::{DevOutbox, VerificationKey, VerificationOptions, register};
//! use std::sync::Arc;
//!
//! let data_dir = std::path::Path::new(".data");
//! let key = VerificationKey::load_or_create(&data_dir.join("verification.key"))?;
//! let registry = register(
//!     durable_runtime::Registry::new(),
//!     Arc::new(DevOutbox::new(data_dir)),
//!     key,
//!     VerificationOptions::default(),
//! )?;
//! # Ok(()) }
//! ```

mod code;
pub mod limits;
pub mod metrics;
pub mod phone;
mod retry;
mod sms;
mod status;
pub mod webhooks;

pub use code::{CODE_DIGITS, Code, VerificationKey, tags_match};
pub use limits::{LimitOptions, RateSetting};
pub use sms::{DevOutbox, OutboxMessage, Sms, SmsError, SmsReceipt, SmsSender, TwilioSender};
pub use status::{DELIVERY_EVENT, DeliveryReport, VerificationStatus};

use durable_core::{Either, Error, InvalidSetting, OrchestrationContext, Payload, Timestamp};
use durable_runtime::{ActivityContext, Registry};
use durable_twilio::mask_phone;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The orchestrator's name.
pub const ORCHESTRATOR: &str = "E4_SmsPhoneVerification";
/// The activity's name.
pub const ACTIVITY: &str = "E4_SendSmsChallenge";
/// The answer event's name.
pub const EVENT: &str = "SmsChallengeResponse";

/// Behaviour of the sample; the defaults are the original's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerificationOptions {
    /// How long the user has to answer (default 90 s).
    #[serde(with = "humantime_secs")]
    pub window: Duration,
    /// How many answers are checked (default 4).
    pub attempts: u32,
    /// Code length in digits (default 4, 4 to 10).
    pub code_digits: u32,
    /// Abuse limits (`[verification.limits]`).
    pub limits: LimitOptions,
}

impl Default for VerificationOptions {
    fn default() -> Self {
        VerificationOptions {
            window: Duration::from_secs(90),
            attempts: 4,
            code_digits: 4,
            limits: LimitOptions::default(),
        }
    }
}

impl VerificationOptions {
    /// Checks the settings; the message names the wrong one.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.window.is_zero() || self.window > Duration::from_secs(24 * 3600) {
            return Err(InvalidSetting::new(
                "verification.window",
                "the verification window must be between 1 second and 24 hours",
            ));
        }
        if !(1..=100).contains(&self.attempts) {
            return Err(InvalidSetting::new(
                "verification.attempts",
                "verification attempts must be between 1 and 100",
            ));
        }
        if !CODE_DIGITS.contains(&self.code_digits) {
            return Err(InvalidSetting::new(
                "verification.code_digits",
                format!(
                    "the code length must be between {} and {} digits",
                    CODE_DIGITS.start(),
                    CODE_DIGITS.end()
                ),
            ));
        }
        self.limits.validate(self.attempts)
    }
}

/// The activity's input: which number, which challenge of the verification, and when the
/// verification started (the activity retries the send until `started_at + window`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeRequest {
    /// The number to send the code to (E.164).
    pub phone: String,
    /// Which challenge of the verification, from 1: with the instance and execution it
    /// determines the code, so every re-send of one challenge carries the same code.
    pub challenge: u32,
    /// When the verification started (its first turn).
    pub started_at: Timestamp,
}

/// What the activity returns and history keeps: the MAC of the code and the rules it was sent
/// under (recorded, so a configuration change never alters a running verification on replay).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// `HMAC-SHA256(key, instance ‖ 0 ‖ code)` truncated to 128 bits, hex.
    pub tag: String,
    /// Seconds the user has to answer.
    pub window_secs: u64,
    /// Answers checked at most.
    pub attempts: u32,
    /// The delivery status when the SMS was handed over (`queued`, `outbox`, ...).
    #[serde(default)]
    pub sms_status: Option<String>,
}

/// An answer as stored in history: the MAC of the guessed code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// `HMAC-SHA256(key, instance ‖ 0 ‖ guess)` truncated to 128 bits, hex.
    pub tag: String,
}

/// The orchestrator: `E4_SmsPhoneVerification`.
pub async fn sms_phone_verification(ctx: OrchestrationContext, phone: Option<String>) -> Result<bool, Error> {
    // Starts are validated before the instance exists; this catches restarts of old instances
    // and sub-orchestration calls, which skip that check.
    let phone = phone
        .map(phone::unwrap_sdk_encoding)
        .ok_or_else(|| Error::permanent(format!("a phone number is required: {}", phone::E164_HINT)))?;
    phone::check_e164(&phone).map_err(Error::permanent)?;
    let request = ChallengeRequest { phone, challenge: 1, started_at: ctx.current_utc_datetime() };
    let challenge: Challenge = ctx.call_activity(ACTIVITY, &request).await?;
    let mut progress = VerificationStatus::new(challenge.sms_status.as_deref(), challenge.attempts);
    ctx.set_custom_status(&progress)?;
    let timeout = ctx.create_timer(ctx.current_utc_datetime() + Duration::from_secs(challenge.window_secs));
    let mut authorized = false;
    while progress.attempts_left > 0 {
        let answer = ctx.wait_for_external_event::<Answer>(EVENT);
        let delivery = ctx.wait_for_external_event::<DeliveryReport>(DELIVERY_EVENT);
        match ctx.select(ctx.select(answer, delivery), &timeout).await {
            Either::Left(Either::Left(answer)) => {
                // An answer that cannot be decoded counts as a wrong one.
                if answer.is_ok_and(|a| tags_match(&a.tag, &challenge.tag)) {
                    authorized = true;
                    break;
                }
                progress.attempts_left -= 1;
                ctx.set_custom_status(&progress)?;
            }
            Either::Left(Either::Right(Ok(report))) => {
                if progress.record(&report) {
                    ctx.set_custom_status(&progress)?;
                }
            }
            Either::Left(Either::Right(Err(_))) => {}
            Either::Right(()) => break,
        }
    }
    timeout.cancel();
    Ok(authorized)
}

/// Registers the sample's orchestrator, activity and answer hook on `registry`; the start guard
/// that refuses anything but an E.164 number before an instance is created and charges the
/// abuse limits of `options.limits`; and the finished hook that gives back the answers a
/// finished verification did not use.
pub fn register(
    registry: Registry,
    sms: Arc<dyn SmsSender>,
    key: VerificationKey,
    options: VerificationOptions,
) -> Result<Registry, InvalidSetting> {
    options.validate()?;
    metrics::describe();
    let activity_key = key.clone();
    let activity_options = options.clone();
    let send = move |ctx: ActivityContext, request: ChallengeRequest| {
        let sms = sms.clone();
        let key = activity_key.clone();
        let options = activity_options.clone();
        async move { send_sms_challenge(ctx, request, sms.as_ref(), &key, &options).await }
    };
    let digits = options.code_digits;
    let (limit_options, guard_key, attempts) = (options.limits.clone(), key.clone(), options.attempts);
    let refunds = limits::Refunds::new(options.limits.clone(), key.clone(), options.attempts);
    let hook: durable_runtime::EventHook = Arc::new(move |instance_id: &str, data: Option<Payload>| {
        let value: serde_json::Value = match &data {
            Some(p) => p.decode().map_err(|e| format!("the answer is not valid JSON: {e}"))?,
            None => serde_json::Value::Null,
        };
        let guess = Code::from_guess(&value, digits)?;
        let answer = Answer { tag: key.tag(instance_id, &guess) };
        Ok(Some(Payload::from_value(&answer).map_err(|e| e.to_string())?))
    });
    let guard: durable_runtime::StartGuard = Arc::new(move |start: &durable_runtime::StartRequest<'_>| {
        Ok(limits::start_charges(start, &limit_options, &guard_key, attempts)?)
    });
    let finished: durable_runtime::FinishedHook =
        Arc::new(move |client, instance| refunds.finished(client, instance));
    Ok(registry
        .orchestrator(ORCHESTRATOR, sms_phone_verification)
        .activity(ACTIVITY, send)
        .with_event_hook(ORCHESTRATOR, EVENT, hook)
        .with_start_guard(ORCHESTRATOR, guard)
        .on_finished(ORCHESTRATOR, finished))
}

/// The activity: `E4_SendSmsChallenge`. Sends `Your verification code is 0042` and returns the
/// code's MAC. The code is derived from the key, the instance, the execution and the challenge
/// number, so every run of one challenge (a retry after a Twilio failure, a re-run after a
/// crash between Twilio accepting the SMS and the activity's commit) sends the same code.
///
/// Transient failures (Twilio 429/5xx, timeouts, refused connections) are retried with
/// exponential backoff, waiting at least what `Retry-After` asks, until the verification
/// window (from the verification's start) is over; a permanent failure (invalid number 21211,
/// unsubscribed 21610, ...) ends the verification at once with Twilio's message.
async fn send_sms_challenge(
    ctx: ActivityContext,
    request: ChallengeRequest,
    sms: &dyn SmsSender,
    key: &VerificationKey,
    options: &VerificationOptions,
) -> Result<Challenge, Error> {
    // Never send (or log) anything that is not a phone number, whatever the input says.
    phone::check_e164(&request.phone).map_err(Error::permanent)?;
    let code = key.derive_code(&ctx.instance_id, &ctx.execution_id, request.challenge, options.code_digits);
    let body = format!("Your verification code is {}", code.reveal());
    let reference = ctx.idempotency_key();
    let message =
        Sms { to: &request.phone, body: &body, reference: &reference, instance_id: &ctx.instance_id };
    let deadline = request.started_at.checked_add(options.window).unwrap_or(request.started_at);
    let mut attempt = 1u32;
    let receipt = loop {
        let error = match sms.send(&message).await {
            Ok(receipt) => {
                metrics::sms_sent(sms.kind());
                break receipt;
            }
            Err(e) => e,
        };
        let masked = mask_phone(&request.phone);
        metrics::sms_failed(sms.kind(), error.permanent);
        if error.permanent {
            tracing::warn!(to = %masked, instance_id = %ctx.instance_id, error = %error, "verification SMS refused; the verification ends");
            return Err(Error::permanent(error.message));
        }
        let delay = retry::delay(attempt, error.retry_after);
        let now = Timestamp::now();
        if now.checked_add(delay).is_ok_and(|at| at >= deadline) || now >= deadline {
            tracing::warn!(to = %masked, instance_id = %ctx.instance_id, attempts = attempt, error = %error, "verification SMS not sent within the verification window; the verification ends");
            return Err(Error::permanent(format!(
                "the SMS could not be sent within the verification window of {} s ({attempt} attempt(s)); last error: {}",
                options.window.as_secs(),
                error.message
            )));
        }
        tracing::warn!(to = %masked, instance_id = %ctx.instance_id, attempt, delay_ms = delay.as_millis() as u64, error = %error, "verification SMS not sent yet; retrying");
        tokio::time::sleep(delay).await;
        attempt += 1;
    };
    Ok(Challenge {
        tag: key.tag(&ctx.instance_id, &code),
        window_secs: options.window.as_secs().max(1),
        attempts: options.attempts,
        sms_status: Some(receipt.status),
    })
}

/// `window` as whole seconds or a duration string like `"90s"`, `"2m"`.
pub(crate) mod humantime_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", d.as_secs()))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => super::parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses a duration: `"90s"`, `"2m"`, `"1h30m"`, `"500ms"`, `"2 minutes"` (jiff's friendly
/// format), or a plain number of seconds. Negative, fractional-nanosecond or absurdly large
/// values are an error, never a panic.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("'{text}' is not a duration; use e.g. 90s, 2m, 1h30m or 500ms");
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u64>().map(Duration::from_secs).map_err(|_| format!("'{text}' is too large"));
    }
    let signed: jiff::SignedDuration = t.parse().map_err(|_| bad())?;
    Duration::try_from(signed).map_err(|_| format!("'{text}' is negative; use a positive duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("").is_err());
    }

    /// Issue 9, defect 5: a huge window in the config file panicked in
    /// `Duration::from_secs_f64`; every input is an error or a value, never a panic.
    #[test]
    fn absurd_durations_are_errors_not_panics() {
        for text in
            ["1e30s", "100000000000000000000s", "99999999999999999999", "18446744073709551616", "1e308h"]
        {
            assert!(parse_duration(text).is_err(), "{text}");
        }
        let toml_like: Result<VerificationOptions, _> =
            serde_json::from_str(r#"{"window": "100000000000000000000000s"}"#);
        assert!(toml_like.is_err());
        let huge: VerificationOptions = serde_json::from_str(r#"{"window": 18446744073709551615}"#).unwrap();
        assert!(huge.validate().is_err(), "a window over 24 h is refused by validate");
    }

    #[test]
    fn options_validate() {
        assert!(VerificationOptions::default().validate().is_ok());
        assert!(VerificationOptions { code_digits: 3, ..Default::default() }.validate().is_err());
        assert!(VerificationOptions { attempts: 0, ..Default::default() }.validate().is_err());
        assert!(VerificationOptions { window: Duration::ZERO, ..Default::default() }.validate().is_err());
    }
}
