//! Conversions between the store's values and PostgreSQL columns, and error mapping.
//!
//! Timestamps are `timestamptz` (readable with psql, compared as 8-byte integers by the server),
//! passed in binary as microseconds; statuses are `smallint` codes shared with the SQL; payloads,
//! events and failures are `text` holding JSON exactly as serialized (a `jsonb` column would
//! normalize it, and payloads must round-trip byte for byte).

use bytes::{BufMut, BytesMut};
use durable_core::Timestamp;
use durable_store::Error;
use std::time::Duration;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, accepts, to_sql_checked};

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// A `timestamptz` as Unix microseconds; `i64::MIN` / `i64::MAX` are `-infinity` / `infinity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Micros(pub i64);

impl Micros {
    /// The timestamp, truncated to microseconds.
    pub(crate) fn of(t: Timestamp) -> Micros {
        Micros(t.as_microsecond())
    }

    /// The timestamp rounded up to microseconds, for due times: a message becomes visible when
    /// `visible_at <= now`, and rounding up guarantees that never happens before `t`.
    pub(crate) fn ceil(t: Timestamp) -> Micros {
        let floor = t.as_microsecond();
        Micros(if t.subsec_nanosecond() % 1000 > 0 { floor.saturating_add(1) } else { floor })
    }

    /// `self + d`, saturating.
    pub(crate) fn plus(self, d: Duration) -> Micros {
        Micros(self.0.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
    }

    /// The timestamp (clamped to jiff's range).
    pub(crate) fn ts(self) -> Timestamp {
        Timestamp::from_microsecond(self.0).unwrap_or(if self.0 < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
    }

    /// How long from `now` until `self` (zero when past).
    pub(crate) fn since(self, now: Micros) -> Duration {
        Duration::from_micros(u64::try_from(self.0.saturating_sub(now.0)).unwrap_or(0))
    }
}

impl ToSql for Micros {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let pg = match self.0 {
            i64::MIN | i64::MAX => self.0,
            us => us.saturating_sub(PG_EPOCH_OFFSET_US),
        };
        out.put_i64(pg);
        Ok(IsNull::No)
    }

    accepts!(TIMESTAMPTZ);
    to_sql_checked!();
}

impl<'a> FromSql<'a> for Micros {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let pg = i64::from_be_bytes(raw.try_into()?);
        Ok(Micros(match pg {
            i64::MIN | i64::MAX => pg,
            pg => pg.saturating_add(PG_EPOCH_OFFSET_US),
        }))
    }

    accepts!(TIMESTAMPTZ);
}

// The encodings both stores share (status numbers, JSON text of payloads, failures, events).
pub(crate) use durable_store::codec::{
    corrupt, failure, failure_text, from_json, payload, payload_text, status_code, status_from, to_json,
};

/// The error of every operation after `close()`.
pub(crate) fn closed() -> Error {
    Error::Unavailable("the PostgreSQL store is closed".into())
}

/// SQLSTATE the SQL functions raise for a history append at a taken position.
const CONFLICT_SQLSTATE: &str = "DU409";

/// Maps a driver error to a store error.
pub(crate) fn pg(e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        if db.code().code() == CONFLICT_SQLSTATE {
            return Error::Conflict(db.message().to_owned());
        }
        // disk_full (53100): nothing was written; writes work again once space is freed.
        if *db.code() == tokio_postgres::error::SqlState::DISK_FULL {
            return Error::StorageFull(format!("the PostgreSQL server's disk is full: {}", db.message()));
        }
        return Error::backend(e);
    }
    if e.is_closed() {
        return Error::Unavailable(format!("the connection to PostgreSQL was lost: {e}"));
    }
    Error::backend(e)
}

/// True for errors after which the whole call can simply run again: it was rolled back, and
/// running it again is likely to succeed (deadlock victim, serialization failure).
pub(crate) fn retryable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code()
        .is_some_and(|c| *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_round_up() {
        let t: Timestamp = "2026-01-01T00:00:00.000001001Z".parse().unwrap();
        assert_eq!(Micros::ceil(t).0, Micros::of(t).0 + 1);
        let exact = Micros::of(t).ts();
        assert_eq!(Micros::ceil(exact), Micros::of(exact));
    }

    #[test]
    fn timestamps_use_the_postgres_epoch_in_binary() {
        let mut buf = BytesMut::new();
        let t: Timestamp = "2000-01-01T00:00:01Z".parse().unwrap();
        Micros::of(t).to_sql(&Type::TIMESTAMPTZ, &mut buf).unwrap();
        assert_eq!(&buf[..], &1_000_000i64.to_be_bytes());
        assert_eq!(Micros::from_sql(&Type::TIMESTAMPTZ, &buf).unwrap(), Micros::of(t));
        let inf = Micros::from_sql(&Type::TIMESTAMPTZ, &i64::MIN.to_be_bytes()).unwrap();
        assert_eq!(inf, Micros(i64::MIN));
    }
}
