//! Rate limits (see `durable_store::limits`): one `limits` row per key, written by the writer
//! thread inside the batch transaction, so a start's charges and its instance are committed by
//! the same fsync (no extra commit), and read by the read pool for references.

use crate::codec::Db;
use crate::ops::{Ctx, Effects};
use durable_store::limits::{self, LIMIT_RETENTION, LimitRefund};
use durable_store::{CreateInstance, Error, LimitCharge, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often expired limit rows are swept (a scan of the limits table).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Ctx<'_> {
    /// Checks every charge, then creates the instance, then writes the charges: both checks
    /// (limits, then the create's own) run before the first write, as every command must.
    /// One cached point lookup and one single-row upsert per key: measured with callgrind, an
    /// `IN (…)` list (SQLite builds a temporary index for it) and a multi-row upsert (a
    /// statement that may fail halfway keeps a statement journal, a copy of every page it
    /// touches) cost about twice as many instructions for the three or four keys a start has.
    pub(crate) fn create_limited(
        &self,
        fx: &mut Effects,
        req: &CreateInstance,
        charges: &[LimitCharge],
    ) -> Result<()> {
        let mut stored: Vec<(&str, i64)> = Vec::with_capacity(charges.len());
        {
            let mut read = self.conn.prepare_cached("SELECT tat FROM limits WHERE key = ?1").db()?;
            for charge in charges {
                let key = charge.key.as_str();
                if stored.iter().any(|(k, _)| *k == key) {
                    continue;
                }
                if let Some(tat) = read.query_row([key], |r| r.get::<_, i64>(0)).optional().db()? {
                    stored.push((key, tat));
                }
            }
        }
        let lookup = |key: &str| stored.iter().find(|(k, _)| *k == key).map(|(_, t)| *t);
        let updates = limits::charge(charges, lookup, self.now).map_err(Error::RateLimited)?;
        self.create(fx, req)?;
        // A NULL reference keeps the stored one.
        let mut write = self
            .conn
            .prepare_cached(
                "INSERT INTO limits (key, tat, reference) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE \
                 SET tat = excluded.tat, reference = COALESCE(excluded.reference, limits.reference)",
            )
            .db()?;
        for (key, tat, reference) in &updates {
            write.execute(params![key, tat, reference]).db()?;
        }
        Ok(())
    }

    /// Applies refunds to existing rows, then, at most once per [`SWEEP_EVERY`], drops the rows
    /// at full budget for the retention time.
    pub(crate) fn refund_limits(&self, refunds: &[LimitRefund]) -> Result<()> {
        // `limits::refund` in SQL: back by `units` emission intervals, never before now.
        let mut write =
            self.conn.prepare_cached("UPDATE limits SET tat = max(tat - ?2, ?3) WHERE key = ?1").db()?;
        for r in refunds {
            write
                .execute(params![r.key, r.rate.emission_us().saturating_mul(i64::from(r.units)), self.now])
                .db()?;
        }
        let swept = self.shared.limits_swept_at.load(Ordering::Relaxed);
        if self.now.saturating_sub(swept) >= limits::micros(SWEEP_EVERY) {
            let horizon = self.now.saturating_sub(limits::micros(LIMIT_RETENTION));
            self.conn.prepare_cached("DELETE FROM limits WHERE tat < ?1").db()?.execute([horizon]).db()?;
            // Only this (the writer) thread sweeps; a sweep rolled back with its batch just runs
            // again a minute later.
            self.shared.limits_swept_at.store(self.now, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// The reference stored with `key`.
pub(crate) fn reference(conn: &Connection, key: &str) -> Result<Option<String>> {
    let row: Option<Option<String>> = conn
        .prepare_cached("SELECT reference FROM limits WHERE key = ?1")
        .db()?
        .query_row([key], |r| r.get(0))
        .optional()
        .db()?;
    Ok(row.flatten())
}
