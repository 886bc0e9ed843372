//! Abuse limits of the sample, kept in the store (so they survive restarts and hold across
//! nodes) and keyed by keyed hashes (never a phone number or an address in clear):
//!
//! - **SMS per phone number** (default 5 per 10 min): SMS pumping and harassment of one number.
//! - **Failed answers per phone number** (default 40 per 24 h): guessing across verifications.
//!   Each start *reserves* the verification's `attempts` answers; when it ends, the answers it
//!   did not use are given back, and a successful verification gives back all of them. So the
//!   budget counts wrong answers plus the answers running verifications may still receive, and
//!   no number of parallel verifications gets an attacker more checked guesses than the budget.
//!   The store gives back only to a number that used more than half its budget (see
//!   `durable_store::limits::refund`): a number verified a few times a day never needs it, and
//!   the store writes nothing for it.
//! - **Starts per client address** (default 60 per min): one caller flooding the API.
//! - **SMS for all numbers** (default 100 per min): the cost ceiling.
//! - **Country calling codes** (default: all): an optional allow-list.
//!
//! The charges of a start are checked and written by the store in the transaction that creates
//! the instance: a refused start creates nothing and sends nothing, and the limits cost no
//! extra commit. The refunds of finished verifications are gathered in memory and written in
//! batches, off the verification's path; one lost in a crash only makes the limit stricter.

use crate::{VerificationKey, phone};
use durable_core::{InvalidSetting, RuntimeStatus};
use durable_runtime::{Client, FinishedInstance, StartRequest};
use durable_store::{LimitCharge, LimitRefund, Rate};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the refund writer waits after each batch, so refunds cost a few commits per second
/// at most, whatever the load.
const REFUND_PAUSE: Duration = Duration::from_millis(200);

/// `max` per `per`, as written in the config file: `{ max = 5, per = "10m" }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSetting {
    /// Units per period.
    pub max: u32,
    /// The period: seconds or a duration such as `"10m"`, `"24h"`.
    #[serde(with = "crate::humantime_secs")]
    pub per: Duration,
}

impl RateSetting {
    /// `max` per `per`.
    pub const fn new(max: u32, per: Duration) -> Self {
        RateSetting { max, per }
    }

    fn rate(self) -> Rate {
        Rate::new(self.max, self.per)
    }
}

/// `[verification.limits]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitOptions {
    /// `false` lifts every limit but the country allow-list (benchmarks, local experiments).
    pub enabled: bool,
    /// SMS sent to one number.
    pub sms_per_number: RateSetting,
    /// Answers checked (or still checkable) for one number, across its verifications.
    pub failed_answers_per_number: RateSetting,
    /// Starts from one client address (IPv6: one /64).
    pub starts_per_client: RateSetting,
    /// SMS sent to all numbers together: the cost ceiling.
    pub sms_global: RateSetting,
    /// Country calling codes numbers may have (e.g. `["1", "44"]`); empty allows all.
    pub country_codes: Vec<String>,
}

impl Default for LimitOptions {
    fn default() -> Self {
        LimitOptions {
            enabled: true,
            sms_per_number: RateSetting::new(5, Duration::from_secs(600)),
            failed_answers_per_number: RateSetting::new(40, Duration::from_secs(24 * 3600)),
            starts_per_client: RateSetting::new(60, Duration::from_secs(60)),
            sms_global: RateSetting::new(100, Duration::from_secs(60)),
            country_codes: Vec::new(),
        }
    }
}

impl LimitOptions {
    /// Every limit lifted (the country allow-list stays empty too).
    pub fn off() -> Self {
        LimitOptions { enabled: false, ..LimitOptions::default() }
    }

    /// Checks the settings against the verification's `attempts`; the message names the wrong one.
    pub fn validate(&self, attempts: u32) -> Result<(), InvalidSetting> {
        for (name, setting) in [
            ("sms_per_number", self.sms_per_number),
            ("failed_answers_per_number", self.failed_answers_per_number),
            ("starts_per_client", self.starts_per_client),
            ("sms_global", self.sms_global),
        ] {
            setting.rate().validate(&format!("verification.limits.{name}"))?;
        }
        if self.enabled && self.failed_answers_per_number.max < attempts {
            return Err(InvalidSetting::new(
                "verification.limits.failed_answers_per_number",
                format!(
                    "verification.limits.failed_answers_per_number.max ({}) must be at least the verification \
                     attempts ({attempts}): every start reserves its attempts",
                    self.failed_answers_per_number.max
                ),
            ));
        }
        for code in &self.country_codes {
            if code.is_empty()
                || code.len() > 3
                || code.starts_with('0')
                || !code.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(InvalidSetting::new(
                    "verification.limits.country_codes",
                    format!(
                        "verification.limits.country_codes: '{}' is not a country calling code (1 to 3 digits \
                         without '+', e.g. \"1\" or \"44\")",
                        code.escape_debug()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Limit keys (the store sees only these: a purpose and a keyed hash).
///
/// A number's two keys are neighbours in the store's key order (the SMS key extends the answers
/// key), so a start's two per-number rows share one B-tree leaf: one page to write per start
/// instead of two, which was most of what the limits cost in WAL bytes. The answers key kept
/// its name from before the pairing, so its 24 h budget survived the upgrade; the SMS key moved
/// (its 10 min budget restarted once; replies still look the old key up, see
/// [`legacy_sms_number_key`]).
pub(crate) fn sms_number_key(key: &VerificationKey, phone: &str) -> String {
    sms_number_key_of(&key.pseudonym(phone))
}

fn sms_number_key_of(pseudonym: &str) -> String {
    format!("answers-number/{pseudonym}/sms")
}

/// Where the SMS key was before the pairing: verifications started by an older version record
/// themselves there, for the SMS reply webhook. Rows expire within `LIMIT_RETENTION` (48 h).
pub(crate) fn legacy_sms_number_key(key: &VerificationKey, phone: &str) -> String {
    format!("sms-number/{}", key.pseudonym(phone))
}

fn answers_number_key(key: &VerificationKey, phone: &str) -> String {
    answers_number_key_of(&key.pseudonym(phone))
}

fn answers_number_key_of(pseudonym: &str) -> String {
    format!("answers-number/{pseudonym}")
}

fn client_key(key: &VerificationKey, ip: IpAddr) -> String {
    // IPv6 clients are counted per /64, which one host usually owns whole.
    let ip = match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked")),
        v4 => v4,
    };
    format!("starts-client/{}", key.pseudonym(&ip.to_string()))
}

const SMS_GLOBAL_KEY: &str = "sms-global";

/// The start guard: an E.164 number from an allowed country, then the charges of the start.
/// The SMS-per-number charge also records the instance as the number's latest verification,
/// which the SMS reply webhook answers (so replies by SMS need the limits on).
pub(crate) fn start_charges(
    start: &StartRequest<'_>,
    limits: &LimitOptions,
    key: &VerificationKey,
    attempts: u32,
) -> Result<Vec<LimitCharge>, String> {
    let phone = phone::phone_from_input(start.input)?;
    if !phone::country_allowed(&phone, &limits.country_codes) {
        let allowed: Vec<String> = limits.country_codes.iter().map(|c| format!("+{c}")).collect();
        return Err(format!(
            "numbers of the country of {} are not accepted by this server (allowed country codes: {})",
            durable_twilio::mask_phone(&phone),
            allowed.join(", ")
        ));
    }
    if !limits.enabled {
        return Ok(Vec::new());
    }
    // One keyed hash serves both per-number keys.
    let pseudonym = key.pseudonym(&phone);
    let mut charges = vec![LimitCharge {
        key: sms_number_key_of(&pseudonym),
        limit: "SMS per phone number".into(),
        rate: limits.sms_per_number.rate(),
        cost: 1,
        reference: Some(start.instance_id.to_owned()),
    }];
    charges.push(LimitCharge {
        key: answers_number_key_of(&pseudonym),
        limit: "failed answers per phone number".into(),
        rate: limits.failed_answers_per_number.rate(),
        cost: attempts,
        reference: None,
    });
    charges.push(LimitCharge {
        key: SMS_GLOBAL_KEY.into(),
        limit: "SMS for all numbers".into(),
        rate: limits.sms_global.rate(),
        cost: 1,
        reference: None,
    });
    if let Some(ip) = start.client_addr {
        charges.push(LimitCharge {
            key: client_key(key, ip),
            limit: "starts per client address".into(),
            rate: limits.starts_per_client.rate(),
            cost: 1,
            reference: None,
        });
    }
    Ok(charges)
}

/// Gives back the answers a finished verification reserved but did not use (all of them after
/// a success: the user proved they hold the phone). Gathered and written in batches by a task
/// started on first use.
pub(crate) struct Refunds {
    limits: LimitOptions,
    key: VerificationKey,
    attempts: u32,
    writer: OnceLock<mpsc::UnboundedSender<LimitRefund>>,
}

impl Refunds {
    pub(crate) fn new(limits: LimitOptions, key: VerificationKey, attempts: u32) -> Arc<Self> {
        Arc::new(Refunds { limits, key, attempts, writer: OnceLock::new() })
    }

    /// The finished hook.
    pub(crate) fn finished(&self, client: &Client, finished: FinishedInstance) {
        if !self.limits.enabled {
            return;
        }
        let Some(units) = unused_answers(&finished, self.attempts) else { return };
        let Some(phone) = finished.input.as_ref().and_then(|p| p.decode::<String>().ok()) else { return };
        if units == 0 || phone::check_e164(&phone).is_err() {
            return;
        }
        let refund = LimitRefund {
            key: answers_number_key(&self.key, &phone),
            rate: self.limits.failed_answers_per_number.rate(),
            units,
        };
        let writer = self.writer.get_or_init(|| spawn_writer(client.clone()));
        let _ = writer.send(refund);
    }
}

/// The answers a finished verification reserved and may give back: all on success or when it
/// never got to check answers, else those left (from its custom status).
fn unused_answers(finished: &FinishedInstance, attempts: u32) -> Option<u32> {
    let verified = finished.output.as_ref().is_some_and(|o| o.as_str().trim() == "true");
    let left = || {
        finished
            .custom_status
            .as_ref()
            .and_then(|s| s.decode::<crate::VerificationStatus>().ok())
            .map(|s| s.attempts_left.min(attempts))
    };
    match finished.status {
        RuntimeStatus::Completed if verified => Some(attempts),
        RuntimeStatus::Completed | RuntimeStatus::Terminated | RuntimeStatus::Failed => {
            Some(left().unwrap_or(attempts))
        }
        _ => None,
    }
}

/// The batch writer: takes everything queued, writes it as one store call, pauses, repeats.
fn spawn_writer(client: Client) -> mpsc::UnboundedSender<LimitRefund> {
    let (tx, mut rx) = mpsc::unbounded_channel::<LimitRefund>();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 10_000).await > 0 {
            let n = batch.len();
            if let Err(e) = client.refund_limits(std::mem::take(&mut batch)).await {
                // Lost refunds only make the limit stricter until it refills by itself.
                tracing::warn!(error = %e, refunds = n, "could not write answer refunds; the limit refills by itself");
            }
            tokio::time::sleep(REFUND_PAUSE).await;
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_core::Payload;

    fn key() -> VerificationKey {
        VerificationKey::from_hex(&"11".repeat(32)).unwrap()
    }

    fn start<'a>(input: &'a Payload, ip: Option<IpAddr>) -> StartRequest<'a> {
        StartRequest { orchestrator: "E4", instance_id: "i1", input: Some(input), client_addr: ip }
    }

    #[test]
    fn defaults_are_valid_and_keep_guessing_under_one_percent_a_day() {
        let l = LimitOptions::default();
        l.validate(4).unwrap();
        // Any 24 h window admits at most max + max (burst plus refill) checked answers; each
        // checks one of 10^4 equally likely 4-digit codes.
        let per_day = 2 * l.failed_answers_per_number.max;
        assert_eq!(l.failed_answers_per_number.per, Duration::from_secs(24 * 3600));
        assert!(f64::from(per_day) / 1e4 < 0.01, "{per_day} guesses per day");
        assert!(
            LimitOptions {
                failed_answers_per_number: RateSetting::new(3, Duration::from_secs(60)),
                ..l.clone()
            }
            .validate(4)
            .is_err()
        );
        assert!(LimitOptions { country_codes: vec!["+1".into()], ..l }.validate(4).is_err());
        assert!(
            LimitOptions { sms_global: RateSetting::new(0, Duration::from_secs(60)), ..l }
                .validate(4)
                .is_err()
        );
    }

    #[test]
    fn charges_use_keyed_hashes_and_name_their_limits() {
        let input = Payload::from_json("\"+14255550123\"").unwrap();
        let ip: IpAddr = "2001:db8:1:2::7".parse().unwrap();
        let charges = start_charges(&start(&input, Some(ip)), &LimitOptions::default(), &key(), 4).unwrap();
        assert_eq!(charges.len(), 4);
        for c in &charges {
            assert!(!c.key.contains("4255550123") && !c.key.contains("2001"), "{}", c.key);
        }
        assert_eq!(charges[0].reference.as_deref(), Some("i1"));
        // The number's two rows are neighbours in key order: nothing sorts between a key and
        // its extension, and every pseudonym has the same length.
        let (sms, answers) = (&charges[0].key, &charges[1].key);
        assert!(
            sms.strip_prefix(answers.as_str()).is_some_and(|rest| rest.starts_with('/')),
            "{sms} {answers}"
        );
        assert_eq!(charges[1].cost, 4, "a start reserves its attempts");
        let same_64: IpAddr = "2001:db8:1:2::8".parse().unwrap();
        let other =
            start_charges(&start(&input, Some(same_64)), &LimitOptions::default(), &key(), 4).unwrap();
        assert_eq!(charges[3].key, other[3].key, "one /64 is one client");

        let off = start_charges(&start(&input, Some(ip)), &LimitOptions::off(), &key(), 4).unwrap();
        assert!(off.is_empty(), "lifted limits charge nothing");

        let foreign = LimitOptions { country_codes: vec!["44".into()], ..LimitOptions::default() };
        let e = start_charges(&start(&input, None), &foreign, &key(), 4).unwrap_err();
        assert!(e.contains("+44") && !e.contains("4255550123"), "{e}");
        let bad = Payload::from_json("\"+1\"").unwrap();
        assert!(start_charges(&start(&bad, None), &LimitOptions::default(), &key(), 4).is_err());
    }

    #[test]
    fn unused_answers_are_given_back() {
        let finished = |status, output: &str, custom: Option<&str>| FinishedInstance {
            instance_id: "i".into(),
            name: "E4".into(),
            input: None,
            status,
            output: Some(Payload::from_json(output).unwrap()),
            custom_status: custom.map(|c| Payload::from_json(c).unwrap()),
        };
        let left = Some(r#"{"sms":"delivered","attemptsLeft":1}"#);
        assert_eq!(unused_answers(&finished(RuntimeStatus::Completed, "true", left), 4), Some(4));
        assert_eq!(unused_answers(&finished(RuntimeStatus::Completed, "false", left), 4), Some(1));
        assert_eq!(unused_answers(&finished(RuntimeStatus::Failed, "null", None), 4), Some(4));
        assert_eq!(unused_answers(&finished(RuntimeStatus::Terminated, "\"bye\"", left), 4), Some(1));
        assert_eq!(unused_answers(&finished(RuntimeStatus::Running, "null", None), 4), None);
    }
}
