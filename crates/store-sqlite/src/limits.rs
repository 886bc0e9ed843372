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
    pub fn create_limited(
        &self,
        fx: &mut Effects,
        req: &CreateInstance,
        charges: &[LimitCharge],
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached("SELECT tat FROM limits WHERE key = ?1").db()?;
        let mut stored = Vec::with_capacity(charges.len());
        for c in charges {
            let tat: Option<i64> = stmt.query_row([&c.key], |r| r.get(0)).optional().db()?;
            stored.push((c.key.as_str(), tat));
        }
        let lookup = |key: &str| stored.iter().find(|(k, _)| *k == key).and_then(|(_, t)| *t);
        let updates = limits::charge(charges, lookup, self.now).map_err(Error::RateLimited)?;
        self.create(fx, req)?;
        let mut upsert = self
            .conn
            .prepare_cached(
                "INSERT INTO limits (key, tat, reference) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (key) DO UPDATE SET tat = excluded.tat, \
                 reference = COALESCE(excluded.reference, limits.reference)",
            )
            .db()?;
        for (key, tat, reference) in updates {
            upsert.execute(params![key, tat, reference]).db()?;
        }
        Ok(())
    }

    /// Applies refunds to existing rows, then, at most once per [`SWEEP_EVERY`], drops the rows
    /// at full budget for the retention time.
    pub fn refund_limits(&self, refunds: &[LimitRefund]) -> Result<()> {
        let mut read = self.conn.prepare_cached("SELECT tat FROM limits WHERE key = ?1").db()?;
        let mut write = self.conn.prepare_cached("UPDATE limits SET tat = ?2 WHERE key = ?1").db()?;
        for r in refunds {
            let tat: Option<i64> = read.query_row([&r.key], |row| row.get(0)).optional().db()?;
            if let Some(tat) = tat {
                write.execute(params![r.key, limits::refund(tat, self.now, r.rate, r.units)]).db()?;
            }
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
