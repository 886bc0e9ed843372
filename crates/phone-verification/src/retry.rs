//! How long the SMS activity waits between attempts.

use std::time::Duration;

/// First pause between attempts; it doubles per attempt.
const INITIAL: Duration = Duration::from_millis(500);
/// Longest pause our own backoff picks (a provider's `Retry-After` may ask for more).
const MAX: Duration = Duration::from_secs(10);

/// The pause after failed attempt `attempt` (≥ 1): exponential from 500 ms, capped at 10 s,
/// with "equal jitter" (half fixed, half random) so verifications throttled together do not
/// retry in lock-step; never shorter than the provider's `Retry-After`.
pub(crate) fn delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let nominal = INITIAL.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(MAX);
    let half = nominal / 2;
    let jittered = half + half.mul_f64(unit());
    jittered.max(retry_after.unwrap_or_default())
}

/// A uniform value in `[0, 1)` (jitter needs no secrecy; the OS generator is simply at hand).
fn unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_jitters_and_honours_retry_after() {
        for (attempt, nominal_ms) in [(1, 500), (2, 1000), (3, 2000), (5, 8000), (6, 10_000), (60, 10_000)] {
            let nominal = Duration::from_millis(nominal_ms);
            for _ in 0..20 {
                let d = delay(attempt, None);
                assert!(d >= nominal / 2 && d <= nominal, "attempt {attempt}: {d:?}");
            }
        }
        assert_eq!(delay(1, Some(Duration::from_secs(30))), Duration::from_secs(30));
    }
}
