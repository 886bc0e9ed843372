//! [`RetryPolicy`]: how `call_activity_with_retry` and `call_sub_orchestrator_with_retry` retry.
//!
//! Retries wait on durable timers, so a retry schedule survives restarts and shows in history as
//! `TaskFailed` → `TimerCreated` → `TimerFired` → `TaskScheduled`.

use std::time::Duration;

/// Retry settings, with the Durable Functions meaning of each field.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry. Must be greater than zero.
    pub first_retry_interval: Duration,
    /// Multiplier applied to the delay after every failed attempt (1.0 = constant delay).
    pub backoff_coefficient: f64,
    /// Upper bound of a single delay.
    pub max_retry_interval: Duration,
    /// Attempts in total, the first one included. Must be at least 1.
    pub max_number_of_attempts: u32,
    /// Give up when this much time has passed since the first attempt (`None` = no limit).
    pub retry_timeout: Option<Duration>,
}

impl RetryPolicy {
    /// `max_number_of_attempts` attempts, `first_retry_interval` apart, no backoff, no timeout.
    pub fn new(max_number_of_attempts: u32, first_retry_interval: Duration) -> Self {
        RetryPolicy {
            first_retry_interval,
            backoff_coefficient: 1.0,
            max_retry_interval: Duration::from_secs(6 * 24 * 3600),
            max_number_of_attempts,
            retry_timeout: None,
        }
    }

    /// Sets the backoff coefficient.
    pub fn with_backoff_coefficient(mut self, coefficient: f64) -> Self {
        self.backoff_coefficient = coefficient;
        self
    }

    /// Sets the maximum delay between attempts.
    pub fn with_max_retry_interval(mut self, max: Duration) -> Self {
        self.max_retry_interval = max;
        self
    }

    /// Sets the overall retry timeout.
    pub fn with_retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = Some(timeout);
        self
    }

    /// Checks the settings; the message says which one is wrong.
    pub fn validate(&self) -> Result<(), crate::InvalidSetting> {
        use crate::InvalidSetting as Invalid;
        if self.first_retry_interval.is_zero() {
            return Err(Invalid::new(
                "first_retry_interval",
                "first_retry_interval must be greater than zero",
            ));
        }
        if self.max_number_of_attempts == 0 {
            return Err(Invalid::new("max_number_of_attempts", "max_number_of_attempts must be at least 1"));
        }
        if !(self.backoff_coefficient.is_finite() && self.backoff_coefficient >= 1.0) {
            return Err(Invalid::new(
                "backoff_coefficient",
                "backoff_coefficient must be a finite number >= 1.0",
            ));
        }
        Ok(())
    }

    /// The delay after failed attempt number `attempt` (1-based), or `None` when no attempt is
    /// left. `elapsed` is the time since the first attempt started.
    pub fn next_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        if attempt >= self.max_number_of_attempts {
            return None;
        }
        if let Some(timeout) = self.retry_timeout
            && elapsed >= timeout
        {
            return None;
        }
        let factor = self.backoff_coefficient.powi(attempt.saturating_sub(1) as i32);
        let secs = self.first_retry_interval.as_secs_f64() * factor;
        let max = self.max_retry_interval.as_secs_f64();
        Some(Duration::from_secs_f64(secs.min(max)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_and_caps() {
        let p = RetryPolicy::new(5, Duration::from_secs(1))
            .with_backoff_coefficient(2.0)
            .with_max_retry_interval(Duration::from_secs(5));
        let d: Vec<_> = (1..6).map(|a| p.next_delay(a, Duration::ZERO)).collect();
        assert_eq!(
            d,
            vec![
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(4)),
                Some(Duration::from_secs(5)),
                None
            ]
        );
    }

    #[test]
    fn stops_at_timeout() {
        let p = RetryPolicy::new(10, Duration::from_secs(1)).with_retry_timeout(Duration::from_secs(3));
        assert!(p.next_delay(1, Duration::from_secs(2)).is_some());
        assert!(p.next_delay(1, Duration::from_secs(3)).is_none());
    }

    #[test]
    fn validates() {
        assert!(RetryPolicy::new(0, Duration::from_secs(1)).validate().is_err());
        assert!(RetryPolicy::new(1, Duration::ZERO).validate().is_err());
        assert!(
            RetryPolicy::new(3, Duration::from_secs(1)).with_backoff_coefficient(0.5).validate().is_err()
        );
        assert!(RetryPolicy::new(3, Duration::from_secs(1)).validate().is_ok());
    }
}
