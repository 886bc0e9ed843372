//! Conversions between the store's values and SQLite columns.
//!
//! Timestamps are stored as INTEGER unix microseconds (8 bytes instead of a 27-byte RFC 3339
//! string), statuses as small integers, payloads as their JSON text and everything structured
//! (events, failures) as compact JSON.

use durable_core::Timestamp;
use durable_store::{Error, Result};
use std::time::Duration;

/// Maps `rusqlite` results into store errors (the orphan rule forbids a `From` impl).
pub(crate) trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(Error::backend)
    }
}

impl<T> Db<T> for std::result::Result<T, rusqlite::types::FromSqlError> {
    fn db(self) -> Result<T> {
        self.map_err(Error::backend)
    }
}

/// Unix microseconds, truncated (used for "now" and status-row times).
pub(crate) fn us(t: Timestamp) -> i64 {
    t.as_microsecond()
}

/// Unix microseconds rounded up, for due times: a message becomes visible when
/// `visible_at <= now_us`, and rounding up guarantees that never happens before `t`.
pub(crate) fn us_ceil(t: Timestamp) -> i64 {
    let floor = t.as_microsecond();
    if t.subsec_nanosecond() % 1000 > 0 { floor.saturating_add(1) } else { floor }
}

/// The timestamp of `us` unix microseconds (clamped to jiff's range).
pub(crate) fn ts(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(if us < 0 { Timestamp::MIN } else { Timestamp::MAX })
}

/// A duration in microseconds, saturating.
pub(crate) fn dur_us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A non-negative microsecond count as a duration.
pub(crate) fn us_dur(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

// The encodings both stores share (status numbers, JSON text of payloads, failures, events).
pub(crate) use durable_store::codec::{
    failure, failure_text, from_json, payload, payload_text, status_code, status_from, to_json,
};

/// The error of every operation after `close()` or after the background threads stopped.
pub(crate) fn closed() -> Error {
    Error::Unavailable("the SQLite store is closed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_round_up() {
        let t: Timestamp = "2026-01-01T00:00:00.000001001Z".parse().unwrap();
        assert_eq!(us_ceil(t), us(t) + 1);
        let exact = ts(us(t));
        assert_eq!(us_ceil(exact), us(exact));
    }
}
