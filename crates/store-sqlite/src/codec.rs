//! Conversions between the store's values and SQLite columns.
//!
//! Timestamps are stored as INTEGER unix microseconds (8 bytes instead of a 27-byte RFC 3339
//! string), statuses as small integers, payloads as their JSON text and everything structured
//! (events, failures) as compact JSON.

use durable_core::{EventKind, HistoryEvent, Timestamp};
use durable_store::{Error, Result};
use std::time::Duration;

/// Maps `rusqlite` results into store errors (the orphan rule forbids a `From` impl).
pub(crate) trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(|e| match e.sqlite_error_code() {
            // The disk (or max_page_count) is full: say so, so the API can answer 507 instead
            // of a bare 500. Nothing was written; writes work again once space is freed.
            Some(rusqlite::ErrorCode::DiskFull) => Error::StorageFull(format!(
                "the disk holding the SQLite database is full ({e}); free space and retry"
            )),
            _ => Error::backend(e),
        })
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

/// A turn's events as stored in one `history` row.
///
/// Compact form, when the turn starts with `OrchestratorStarted` (every turn the runtime
/// commits): `{"t":<turn time>,"v":[...]}` with that first event left out and each other event's
/// `ts` left out when it equals the turn time (actions are stamped with it). Otherwise the plain
/// JSON array of events. A parked verification's two rows shrink by about a third.
pub(crate) fn encode_turn(events: &[HistoryEvent]) -> Result<String> {
    let Some((first, rest)) = events.split_first() else { return to_json(events) };
    if first.kind != EventKind::OrchestratorStarted {
        return to_json(events);
    }
    let t = first.timestamp.as_microsecond();
    let v: Vec<StoredEvent<'_>> = rest
        .iter()
        .map(|e| {
            let ts = e.timestamp.as_microsecond();
            StoredEvent { ts: (ts != t).then_some(ts), e: &e.kind }
        })
        .collect();
    to_json(&CompactTurn { t, v })
}

/// Reads a row written by [`encode_turn`] (either form).
pub(crate) fn decode_turn(text: &str) -> Result<Vec<HistoryEvent>> {
    if text.starts_with('[') {
        return from_json(text);
    }
    let turn: CompactTurnOwned = from_json(text)?;
    let at =
        |us: i64| Timestamp::from_microsecond(us).map_err(|e| durable_store::codec::corrupt(e.to_string()));
    let t = at(turn.t)?;
    let mut events = Vec::with_capacity(turn.v.len() + 1);
    events.push(HistoryEvent::new(t, EventKind::OrchestratorStarted));
    for e in turn.v {
        events.push(HistoryEvent::new(e.ts.map(at).transpose()?.unwrap_or(t), e.e));
    }
    Ok(events)
}

#[derive(serde::Serialize)]
struct CompactTurn<'a> {
    t: i64,
    v: Vec<StoredEvent<'a>>,
}

#[derive(serde::Serialize)]
struct StoredEvent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<i64>,
    e: &'a EventKind,
}

#[derive(serde::Deserialize)]
struct CompactTurnOwned {
    t: i64,
    v: Vec<StoredEventOwned>,
}

#[derive(serde::Deserialize)]
struct StoredEventOwned {
    #[serde(default)]
    ts: Option<i64>,
    e: EventKind,
}

/// The `event` column of a queued message. A timer's `TimerFired` (stamped with its due time)
/// is fully described by the row's `timer_id` and `visible_at`, so it is stored as an empty
/// string; every other event as JSON.
pub(crate) fn encode_message(event: &HistoryEvent, visible_at: Option<i64>) -> Result<String> {
    if let (EventKind::TimerFired { fire_at, .. }, Some(due)) = (&event.kind, visible_at)
        && event.timestamp == *fire_at
        && fire_at.as_microsecond() == due
    {
        return Ok(String::new());
    }
    to_json(event)
}

/// Reads a message's event (see [`encode_message`]).
pub(crate) fn decode_message(
    text: &str,
    visible_at: Option<i64>,
    timer_id: Option<i64>,
) -> Result<HistoryEvent> {
    if !text.is_empty() {
        return from_json(text);
    }
    match (visible_at, timer_id.and_then(|t| u32::try_from(t).ok())) {
        (Some(due), Some(timer_id)) => {
            let fire_at = ts(due);
            Ok(HistoryEvent::new(fire_at, EventKind::TimerFired { timer_id, fire_at }))
        }
        _ => Err(durable_store::codec::corrupt("a message without an event that is not a timer".into())),
    }
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

    #[test]
    fn turns_round_trip_in_the_compact_form_and_the_plain_one_is_read() {
        let t = ts(1_800_000_000_123_456);
        let earlier = ts(1_800_000_000_000_001);
        let turn = vec![
            HistoryEvent::new(t, EventKind::OrchestratorStarted),
            HistoryEvent::new(earlier, EventKind::EventRaised { name: "A".into(), input: None, id: None }),
            HistoryEvent::new(t, EventKind::TimerCreated { id: 0, fire_at: earlier }),
        ];
        let text = encode_turn(&turn).unwrap();
        assert!(text.starts_with("{\"t\":1800000000123456,"), "{text}");
        assert!(!text.contains("OrchestratorStarted"), "{text}");
        assert_eq!(decode_turn(&text).unwrap(), turn);
        let plain = to_json(&turn).unwrap();
        assert_eq!(decode_turn(&plain).unwrap(), turn);
        // A history that does not start with OrchestratorStarted is kept as it is.
        let odd = vec![turn[1].clone()];
        assert_eq!(decode_turn(&encode_turn(&odd).unwrap()).unwrap(), odd);
        assert_eq!(decode_turn(&encode_turn(&[]).unwrap()).unwrap(), vec![]);
    }

    #[test]
    fn timer_messages_are_stored_without_their_event() {
        let due = ts(1_800_000_000_000_007);
        let fired = HistoryEvent::new(due, EventKind::TimerFired { timer_id: 3, fire_at: due });
        let text = encode_message(&fired, Some(us(due))).unwrap();
        assert_eq!(text, "");
        assert_eq!(decode_message(&text, Some(us(due)), Some(3)).unwrap(), fired);
        let other =
            HistoryEvent::new(due, EventKind::EventRaised { name: "A".into(), input: None, id: None });
        let text = encode_message(&other, None).unwrap();
        assert_eq!(decode_message(&text, None, None).unwrap(), other);
        assert!(decode_message("", None, None).is_err());
    }
}
