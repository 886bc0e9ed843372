//! Backoff and `Retry-After` handling.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

/// The pause before attempt `attempt + 1`, after `attempt` (≥ 1) failed: exponential from
/// `initial`, capped at `max`, with "equal jitter" (half fixed, half random) so that clients
/// throttled together do not retry in lock-step, while the wait never drops below half the
/// nominal value.
pub(crate) fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(31);
    let nominal = initial.saturating_mul(1u32 << exp).min(max);
    let half = nominal / 2;
    half + half.mul_f64(random_unit())
}

/// A uniform value in `[0, 1)`. Jitter needs no cryptographic quality, and std's randomly keyed
/// hasher is enough to decorrelate processes without pulling in an RNG crate.
fn random_unit() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A date in
/// the past means "now". Unparseable values are ignored (`None`), falling back to our backoff.
pub(crate) fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let at = PARSER.parse_timestamp(value).ok()?;
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters_within_bounds() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        for (attempt, nominal_ms) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (40, 1000)] {
            for _ in 0..50 {
                let d = backoff(attempt, initial, max);
                let nominal = Duration::from_millis(nominal_ms);
                assert!(d >= nominal / 2 && d <= nominal, "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn jitter_varies() {
        let samples: std::collections::HashSet<_> =
            (0..20).map(|_| backoff(3, Duration::from_secs(1), Duration::from_secs(10))).collect();
        assert!(samples.len() > 1);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now: jiff::Timestamp = "2024-01-10T10:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 10 Jan 2024 10:00:07 GMT", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 10 Jan 2024 09:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
