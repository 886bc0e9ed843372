//! Rate limits kept in the store: so they survive restarts and hold across every node sharing
//! the store.
//!
//! A limit is a key (opaque to the store, e.g. `answers-number/<keyed hash>`) with a [`Rate`]:
//! at most `max` units per `period`. The state of a key is one timestamp, its *theoretical
//! arrival time* (TAT) of the Generic Cell Rate Algorithm: charging `n` units at time `now`
//! moves it to `max(TAT, now) + n · period/max`, and is allowed while the result is at most
//! `period` ahead of `now`. So a fresh key allows a burst of `max` units, one unit comes back
//! every `period/max`, the whole budget is back `period` after the last charge, and any window
//! of length `W` admits at most `max + W·max/period` units. Refunds move the TAT back.
//!
//! The arithmetic lives here, in one place; stores only keep `(key, tat, reference)` rows and
//! run [`charge`] and [`refund`] inside their transactions.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// Microseconds since the Unix epoch (the stores' time unit for limits).
pub type Micros = i64;

/// Rows whose TAT is this long past are dropped when limits are swept: their key is at full
/// budget again, and any reference they carry (e.g. the verification waiting for an SMS reply)
/// has long expired.
pub const LIMIT_RETENTION: Duration = Duration::from_secs(48 * 3600);

/// At most `max` units per `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rate {
    /// Units per period (at least 1).
    pub max: u32,
    /// The period.
    pub period: Duration,
}

impl Rate {
    /// `max` units per `period`.
    pub fn new(max: u32, period: Duration) -> Self {
        Rate { max, period }
    }

    /// The time one unit takes to come back, in microseconds (at least 1).
    pub fn emission_us(&self) -> Micros {
        (micros(self.period) / Micros::from(self.max.max(1))).max(1)
    }

    /// The period in microseconds.
    pub fn period_us(&self) -> Micros {
        micros(self.period)
    }

    /// Checks the rate of the setting `what`; the message says what is wrong.
    pub fn validate(&self, what: &str) -> Result<(), durable_core::InvalidSetting> {
        let invalid = |message: String| Err(durable_core::InvalidSetting::new(what, message));
        if self.max == 0 || self.period.is_zero() {
            return invalid(format!("{what}: max and period must both be greater than zero"));
        }
        if self.period > Duration::from_secs(366 * 24 * 3600) {
            return invalid(format!("{what}: the period must be at most a year"));
        }
        Ok(())
    }
}

/// One charge of a start: `cost` units against the limit `key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitCharge {
    /// The limit's key (never a personal value in clear: hash phone numbers and addresses).
    pub key: String,
    /// The limit's name for the refusal message, e.g. `"SMS per phone number"`.
    pub limit: String,
    /// The allowed rate.
    pub rate: Rate,
    /// Units to charge (`0` only records `reference`).
    pub cost: u32,
    /// Stored with the key when the charge is applied (e.g. the instance that charged it), for
    /// [`Store::limit_reference`](crate::Store::limit_reference).
    pub reference: Option<String>,
}

/// Units to give back to a limit (e.g. answers a verification reserved but did not use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitRefund {
    /// The limit's key.
    pub key: String,
    /// The rate it is charged at.
    pub rate: Rate,
    /// Units to give back.
    pub units: u32,
}

/// Why a start was refused: which limit, and when to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitRefusal {
    /// The limit's name (from [`LimitCharge::limit`]).
    pub limit: String,
    /// The limit's rate.
    pub rate: Rate,
    /// How long until the charge would be allowed.
    pub retry_after: Duration,
}

impl std::fmt::Display for LimitRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the limit '{}' ({} per {}) is exhausted; retry in {} s",
            self.limit,
            self.rate.max,
            describe_period(self.rate.period),
            self.retry_after.as_secs_f64().ceil() as u64
        )
    }
}

/// `"10 min"`, `"24 h"`, `"90 s"`.
pub fn describe_period(period: Duration) -> String {
    let secs = period.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{} s", period.as_secs_f64())
    }
}

/// Applies `charges` in order to the stored TATs `stored` (`None`: no row, full budget) at
/// `now`: either every charge fits, and the new TAT of each key is returned (with the last
/// reference given for it), or nothing is charged and the refusal with the longest wait is
/// returned. Several charges on one key add up.
pub fn charge(
    charges: &[LimitCharge],
    stored: impl Fn(&str) -> Option<Micros>,
    now: Micros,
) -> Result<Vec<(String, Micros, Option<String>)>, LimitRefusal> {
    // A start has a handful of charges: a vector beats a map here.
    let mut tats: Vec<(&str, Micros)> = Vec::with_capacity(charges.len());
    let mut refusal: Option<LimitRefusal> = None;
    for c in charges {
        let slot = match tats.iter().position(|(k, _)| *k == c.key) {
            Some(i) => i,
            None => {
                tats.push((c.key.as_str(), stored(&c.key).unwrap_or(now)));
                tats.len() - 1
            }
        };
        let current = tats[slot].1;
        let emission = c.rate.emission_us();
        let new_tat = current.max(now).saturating_add(emission.saturating_mul(Micros::from(c.cost)));
        let allowed_until = now.saturating_add(c.rate.period_us());
        if new_tat > allowed_until {
            let wait = Duration::from_micros(u64::try_from(new_tat - allowed_until).unwrap_or(u64::MAX));
            if refusal.as_ref().is_none_or(|r| wait > r.retry_after) {
                refusal = Some(LimitRefusal { limit: c.limit.clone(), rate: c.rate, retry_after: wait });
            }
            continue;
        }
        tats[slot].1 = new_tat;
    }
    if let Some(refusal) = refusal {
        return Err(refusal);
    }
    Ok(tats
        .into_iter()
        .map(|(key, tat)| {
            let reference = charges.iter().rev().filter(|c| c.key == key).find_map(|c| c.reference.clone());
            (key.to_owned(), tat, reference)
        })
        .collect())
}

/// The TAT after giving back `units` at `now`: never before `now` (unused budget does not
/// accumulate beyond full), and only while the key has used more than half its budget (its TAT
/// more than [`refund_threshold_us`] ahead of `now`); otherwise `tat` unchanged.
///
/// Why the threshold: with half the budget or more left, the units would only matter to a
/// caller who spends more than that half before they come back by themselves, and skipping
/// the refund means the store writes nothing. A refund is a page written at a random place of
/// the limits table, as costly as the start's own charge; with the sample's defaults (4
/// answers reserved of 40 per 24 h) a number verified a few times a day never needs one, while
/// one verified all day long stays at about half its budget. Refunds are best effort by
/// contract (a lost one only makes the limit stricter), so this changes no bound.
pub fn refund(tat: Micros, now: Micros, rate: Rate, units: u32) -> Micros {
    if tat.saturating_sub(now) <= refund_threshold_us(rate) {
        return tat;
    }
    tat.saturating_sub(rate.emission_us().saturating_mul(Micros::from(units))).max(now)
}

/// How far ahead of now a key's TAT must be for a refund to apply: half the period, that is
/// more than half the budget used (see [`refund`]).
pub fn refund_threshold_us(rate: Rate) -> Micros {
    rate.period_us() / 2
}

/// Merges refunds of the same key and rate (one write per key), keeping first-seen order.
pub fn merge_refunds(refunds: Vec<LimitRefund>) -> Vec<LimitRefund> {
    let mut index: HashMap<(String, Rate), usize> = HashMap::with_capacity(refunds.len());
    let mut merged: Vec<LimitRefund> = Vec::with_capacity(refunds.len());
    for r in refunds {
        match index.get(&(r.key.clone(), r.rate)) {
            Some(&i) => merged[i].units = merged[i].units.saturating_add(r.units),
            None => {
                index.insert((r.key.clone(), r.rate), merged.len());
                merged.push(r);
            }
        }
    }
    merged
}

/// Microseconds of `d`, saturating.
pub fn micros(d: Duration) -> Micros {
    Micros::try_from(d.as_micros()).unwrap_or(Micros::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Micros = 60_000_000;

    fn c(key: &str, max: u32, period_min: u64, cost: u32) -> LimitCharge {
        LimitCharge {
            key: key.into(),
            limit: format!("limit {key}"),
            rate: Rate::new(max, Duration::from_secs(period_min * 60)),
            cost,
            reference: None,
        }
    }

    #[test]
    fn a_burst_of_max_then_one_unit_per_emission_interval() {
        // 5 per 10 min: 5 at once, the 6th 2 min later, all 5 again 10 min after the last.
        let mut tat = None;
        for _ in 0..5 {
            let out = charge(&[c("k", 5, 10, 1)], |_| tat, 0).unwrap();
            tat = Some(out[0].1);
        }
        let refused = charge(&[c("k", 5, 10, 1)], |_| tat, 0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(120));
        assert_eq!(refused.limit, "limit k");
        assert!(charge(&[c("k", 5, 10, 1)], |_| tat, 2 * MIN).is_ok());
        assert!(charge(&[c("k", 5, 10, 5)], |_| tat, 10 * MIN).is_ok(), "full budget after the period");
        assert!(charge(&[c("k", 5, 10, 6)], |_| None, 0).is_err(), "a cost above max never fits");
    }

    #[test]
    fn all_or_nothing_and_the_longest_wait_wins() {
        let stored = |k: &str| (k == "full").then_some(10 * MIN);
        let refused =
            charge(&[c("free", 5, 10, 1), c("full", 5, 10, 1), c("other", 1, 60, 2)], stored, 0).unwrap_err();
        assert_eq!(refused.limit, "limit other", "{refused}");
        assert_eq!(refused.retry_after, Duration::from_secs(3600));
        assert!(refused.to_string().contains("1 per 1 h"), "{refused}");
        // Two charges of one key add up.
        assert!(charge(&[c("k", 5, 10, 3), c("k", 5, 10, 3)], |_| None, 0).is_err());
        let ok = charge(&[c("k", 5, 10, 2), c("k", 5, 10, 3)], |_| None, 0).unwrap();
        assert_eq!(ok, vec![("k".into(), 10 * MIN, None)]);
    }

    #[test]
    fn refunds_move_back_but_never_before_now() {
        let rate = Rate::new(5, Duration::from_secs(600));
        assert_eq!(refund(10 * MIN, 0, rate, 2), 6 * MIN);
        assert_eq!(refund(10 * MIN, 4 * MIN, rate, 5), 4 * MIN);
        // With half the budget or more left, nothing to give back (and nothing to write).
        assert_eq!(refund(10 * MIN, 5 * MIN, rate, 1), 10 * MIN, "exactly half used");
        assert_eq!(refund(4 * MIN, 0, rate, 2), 4 * MIN, "two of five used");
        assert_eq!(refund(6 * MIN, 0, rate, 2), 2 * MIN, "three of five used");
        let merged = merge_refunds(vec![
            LimitRefund { key: "a".into(), rate, units: 1 },
            LimitRefund { key: "b".into(), rate, units: 1 },
            LimitRefund { key: "a".into(), rate, units: 2 },
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].units, 3);
    }

    #[test]
    fn any_window_admits_at_most_max_plus_its_refill() {
        // A greedy client charging 1 unit whenever allowed, over 24 h, at 40 per 24 h: at most
        // 40 + 40 = 80 units in any 24 h window.
        let rate = Rate::new(40, Duration::from_secs(24 * 3600));
        let mut tat = None;
        let mut admitted = Vec::new();
        let mut now = 0;
        while now < 48 * 60 * MIN {
            if let Ok(out) = charge(&[LimitCharge { rate, ..c("k", 1, 1, 1) }], |_| tat, now) {
                tat = Some(out[0].1);
                admitted.push(now);
            }
            now += MIN / 6;
        }
        let day = 24 * 60 * MIN;
        let most = admitted
            .iter()
            .map(|start| admitted.iter().filter(|t| **t >= *start && **t < start + day).count())
            .max()
            .unwrap();
        assert!(most <= 80, "{most} units in one day");
        assert!(most >= 79, "the bound is reached: {most}");
    }

    #[test]
    fn periods_read_well() {
        assert_eq!(describe_period(Duration::from_secs(600)), "10 min");
        assert_eq!(describe_period(Duration::from_secs(86_400)), "24 h");
        assert_eq!(describe_period(Duration::from_secs(90)), "90 s");
    }
}
