//! The SMS phone-verification sample of Durable Functions, on **durable**.
//!
//! `E4_SmsPhoneVerification` sends a random code by SMS through the activity
//! `E4_SendSmsChallenge`, then races a durable timer (90 s) against up to 4
//! `SmsChallengeResponse` events: the right code gives output `true`; a timeout or 4 wrong codes
//! give `false`; the timer is cancelled either way.
//!
//! Unlike the original, no code is ever stored or logged in clear: codes come from the OS CSPRNG;
//! the activity returns only `HMAC(key, instance ‖ code)`; an event hook replaces every answer by
//! the MAC of the guess before it is stored; the orchestrator compares MACs in constant time.
//! The key lives outside the database (a file in the data directory or an environment
//! variable). Answers that are not a code of the right length are refused with a clear error
//! and do not use up an attempt.
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
#![warn(missing_docs)]

mod code;
pub mod metrics;
mod sms;

pub use code::{CODE_DIGITS, Code, VerificationKey, tags_match, write_private};
pub use sms::{DevOutbox, OutboxMessage, SmsError, SmsSender, TwilioSender};

use durable_core::{Either, Error, OrchestrationContext, Payload};
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
}

impl Default for VerificationOptions {
    fn default() -> Self {
        VerificationOptions { window: Duration::from_secs(90), attempts: 4, code_digits: 4 }
    }
}

impl VerificationOptions {
    /// Checks the settings; the message names the wrong one.
    pub fn validate(&self) -> Result<(), String> {
        if self.window.is_zero() || self.window > Duration::from_secs(24 * 3600) {
            return Err("the verification window must be between 1 second and 24 hours".into());
        }
        if !(1..=100).contains(&self.attempts) {
            return Err("verification attempts must be between 1 and 100".into());
        }
        if !CODE_DIGITS.contains(&self.code_digits) {
            return Err(format!(
                "the code length must be between {} and {} digits",
                CODE_DIGITS.start(),
                CODE_DIGITS.end()
            ));
        }
        Ok(())
    }
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
}

/// An answer as stored in history: the MAC of the guessed code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// `HMAC-SHA256(key, instance ‖ 0 ‖ guess)` truncated to 128 bits, hex.
    pub tag: String,
}

/// The orchestrator: `E4_SmsPhoneVerification`.
pub async fn sms_phone_verification(ctx: OrchestrationContext, phone: Option<String>) -> Result<bool, Error> {
    let phone = phone.filter(|p| !p.trim().is_empty()).ok_or_else(|| {
        Error::permanent(
            "a phone number is required: start E4_SmsPhoneVerification with a JSON string body such as \"+14255550123\"",
        )
    })?;
    let challenge: Challenge = ctx.call_activity(ACTIVITY, &phone).await?;
    let timeout = ctx.create_timer(ctx.current_utc_datetime() + Duration::from_secs(challenge.window_secs));
    let mut authorized = false;
    for _ in 0..challenge.attempts {
        match ctx.select(ctx.wait_for_external_event::<Answer>(EVENT), &timeout).await {
            Either::Left(Ok(answer)) => {
                if tags_match(&answer.tag, &challenge.tag) {
                    authorized = true;
                    break;
                }
            }
            // An answer that cannot be decoded counts as a wrong one.
            Either::Left(Err(_)) => {}
            Either::Right(()) => break,
        }
    }
    timeout.cancel();
    Ok(authorized)
}

/// Registers the sample's orchestrator, activity and answer hook on `registry`.
pub fn register(
    registry: Registry,
    sms: Arc<dyn SmsSender>,
    key: VerificationKey,
    options: VerificationOptions,
) -> Result<Registry, String> {
    options.validate()?;
    metrics::describe();
    let activity_key = key.clone();
    let activity_options = options.clone();
    let send = move |ctx: ActivityContext, phone: String| {
        let sms = sms.clone();
        let key = activity_key.clone();
        let options = activity_options.clone();
        async move { send_sms_challenge(ctx, phone, sms.as_ref(), &key, &options).await }
    };
    let digits = options.code_digits;
    let hook: durable_runtime::EventHook = Arc::new(move |instance_id: &str, data: Option<Payload>| {
        let value: serde_json::Value = match &data {
            Some(p) => p.decode().map_err(|e| format!("the answer is not valid JSON: {e}"))?,
            None => serde_json::Value::Null,
        };
        let guess = Code::from_guess(&value, digits)?;
        let answer = Answer { tag: key.tag(instance_id, &guess) };
        Payload::from_value(&answer).map(Some).map_err(|e| e.to_string())
    });
    Ok(registry.orchestrator(ORCHESTRATOR, sms_phone_verification).activity(ACTIVITY, send).with_event_hook(
        ORCHESTRATOR,
        EVENT,
        hook,
    ))
}

/// The activity: `E4_SendSmsChallenge`. Sends `Your verification code is 0042` and returns the
/// code's MAC. Runs at least once: a re-run after a crash sends a new code, and only the newest
/// code is accepted.
async fn send_sms_challenge(
    ctx: ActivityContext,
    phone: String,
    sms: &dyn SmsSender,
    key: &VerificationKey,
    options: &VerificationOptions,
) -> Result<Challenge, Error> {
    let code = Code::random(options.code_digits)
        .map_err(|e| Error::msg(format!("the OS random generator failed: {e}")))?;
    let body = format!("Your verification code is {}", code.reveal());
    sms.send(&phone, &body, &ctx.idempotency_key()).await.map_err(|e| {
        tracing::warn!(to = %mask_phone(&phone), instance_id = %ctx.instance_id, error = %e, "verification SMS not sent");
        metrics::sms_failed(sms.kind(), e.permanent);
        if e.permanent { Error::permanent(e.message) } else { Error::msg(e.message) }
    })?;
    metrics::sms_sent(sms.kind());
    Ok(Challenge {
        tag: key.tag(&ctx.instance_id, &code),
        window_secs: options.window.as_secs().max(1),
        attempts: options.attempts,
    })
}

/// `window` as whole seconds or a duration string like `"90s"`, `"2m"`.
mod humantime_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", d.as_secs()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
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
