//! Conversions between the store's values and SQLite columns.
//!
//! Timestamps are stored as INTEGER unix microseconds (8 bytes instead of a 27-byte RFC 3339
//! string), statuses as small integers, payloads as their JSON text and everything structured
//! (events, failures) as compact JSON.

use durable_core::{FailureDetails, Payload, RuntimeStatus, Timestamp};
use durable_store::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
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

/// The column value of a status. The numbers are part of the schema: never renumber.
pub(crate) fn status_code(s: RuntimeStatus) -> i64 {
    match s {
        RuntimeStatus::Pending => 0,
        RuntimeStatus::Running => 1,
        RuntimeStatus::Completed => 2,
        RuntimeStatus::Failed => 3,
        RuntimeStatus::Terminated => 4,
        RuntimeStatus::Suspended => 5,
        RuntimeStatus::ContinuedAsNew => 6,
    }
}

/// The status of a column value.
pub(crate) fn status_from(code: i64) -> Result<RuntimeStatus> {
    RuntimeStatus::ALL
        .into_iter()
        .find(|s| status_code(*s) == code)
        .ok_or_else(|| corrupt(format!("unknown status code {code}")))
}

/// Serializes a value as compact JSON.
pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(Error::backend)
}

/// Parses JSON written by [`to_json`].
pub(crate) fn from_json<T: DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| corrupt(format!("unreadable JSON in the database: {e}")))
}

/// The column text of an optional payload.
pub(crate) fn payload_text(p: &Option<Payload>) -> Option<&str> {
    p.as_ref().map(Payload::as_str)
}

/// The payload of an optional column text.
pub(crate) fn payload(text: Option<String>) -> Result<Option<Payload>> {
    text.map(|t| {
        Payload::from_json(&t).map_err(|e| corrupt(format!("unreadable payload in the database: {e}")))
    })
    .transpose()
}

/// The column text of an optional failure.
pub(crate) fn failure_text(f: &Option<FailureDetails>) -> Result<Option<String>> {
    f.as_ref().map(to_json).transpose()
}

/// The failure of an optional column text.
pub(crate) fn failure(text: Option<String>) -> Result<Option<FailureDetails>> {
    text.map(|t| from_json(&t)).transpose()
}

/// An error for data this store did not write (or a newer version wrote).
pub(crate) fn corrupt(msg: String) -> Error {
    Error::Backend(msg.into())
}

/// The error of every operation after `close()` or after the background threads stopped.
pub(crate) fn closed() -> Error {
    Error::Unavailable("the SQLite store is closed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_round_up_and_statuses_round_trip() {
        let t: Timestamp = "2026-01-01T00:00:00.000001001Z".parse().unwrap();
        assert_eq!(us_ceil(t), us(t) + 1);
        let exact = ts(us(t));
        assert_eq!(us_ceil(exact), us(exact));
        for s in RuntimeStatus::ALL {
            assert_eq!(status_from(status_code(s)).unwrap(), s);
        }
        assert!(status_from(42).is_err());
    }
}
