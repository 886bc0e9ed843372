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
    /// (limits, then the create's own) run before the first write, as every command must. One
    /// statement reads all the keys and one writes them (statements, not rows, are what the
    /// limits cost on this path).
    pub(crate) fn create_limited(
        &self,
        fx: &mut Effects,
        req: &CreateInstance,
        charges: &[LimitCharge],
    ) -> Result<()> {
        let mut keys: Vec<&str> = charges.iter().map(|c| c.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut stored: Vec<(String, i64)> = Vec::with_capacity(keys.len());
        {
            let mut read = self.conn.prepare_cached(&select_tats(keys.len())).db()?;
            let mut rows = read.query(rusqlite::params_from_iter(&keys)).db()?;
            while let Some(row) = rows.next().db()? {
                stored.push((row.get(0).db()?, row.get(1).db()?));
            }
        }
        let lookup = |key: &str| stored.iter().find(|(k, _)| k == key).map(|(_, t)| *t);
        let updates = limits::charge(charges, lookup, self.now).map_err(Error::RateLimited)?;
        self.create(fx, req)?;
        let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(updates.len() * 3);
        for (key, tat, reference) in updates.iter() {
            values.push(key.clone().into());
            values.push((*tat).into());
            values.push(reference.clone().map_or(rusqlite::types::Value::Null, Into::into));
        }
        self.conn
            .prepare_cached(&upsert_tats(updates.len()))
            .db()?
            .execute(rusqlite::params_from_iter(values))
            .db()?;
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

/// `SELECT key, tat FROM limits WHERE key IN (?1, …, ?n)`.
fn select_tats(n: usize) -> String {
    let params: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
    format!("SELECT key, tat FROM limits WHERE key IN ({})", params.join(", "))
}

/// An upsert of `n` (key, tat, reference) rows; a NULL reference keeps the stored one.
fn upsert_tats(n: usize) -> String {
    let rows: Vec<String> =
        (0..n).map(|i| format!("(?{}, ?{}, ?{})", 3 * i + 1, 3 * i + 2, 3 * i + 3)).collect();
    format!(
        "INSERT INTO limits (key, tat, reference) VALUES {} ON CONFLICT (key) DO UPDATE SET tat = excluded.tat, \
         reference = COALESCE(excluded.reference, limits.reference)",
        rows.join(", ")
    )
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
