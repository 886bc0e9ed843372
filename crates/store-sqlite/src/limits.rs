//! Rate limits (see `durable_store::limits`): one `limits` row per key, written by the writer
//! thread inside the batch transaction, so a start's charges and its instance are committed by
//! the same fsync (no extra commit), and read by the read pool for references.
//!
//! A batch's charges are gathered in [`BatchLimits`] and each key it charged is written once,
//! just before the batch commits: a busy batch holds dozens of starts that all charge the
//! global SMS budget, which would otherwise be read and rewritten once per start.

use crate::codec::Db;
use crate::ops::{Ctx, Effects};
use durable_store::limits::{self, LIMIT_RETENTION, LimitRefund};
use durable_store::{CreateInstance, Error, LimitCharge, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often expired limit rows are swept (a scan of the limits table).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The limit rows a batch has charged, not written yet: key → (TAT, reference to store).
/// Only successful commands add to it, and a batch run again with savepoints starts from an
/// empty one, so it holds exactly what the transaction must write when it commits. (foldhash:
/// the keys are keyed hashes nobody can aim at one bucket, and SipHash was a tenth of the
/// limits' cost.)
#[derive(Default)]
pub(crate) struct BatchLimits(RefCell<foldhash::HashMap<String, (i64, Option<String>)>>);

impl BatchLimits {
    /// Forgets everything (the transaction it was gathered for was rolled back).
    pub(crate) fn clear(&self) {
        self.0.borrow_mut().clear();
    }

    /// Writes every charged row: one cached upsert per key. A `NULL` reference keeps the stored
    /// one.
    pub(crate) fn write(&self, conn: &Connection) -> Result<()> {
        let rows = self.0.borrow();
        if rows.is_empty() {
            return Ok(());
        }
        let mut write = conn
            .prepare_cached(
                "INSERT INTO limits (key, tat, reference) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE \
                 SET tat = excluded.tat, reference = COALESCE(excluded.reference, limits.reference)",
            )
            .db()?;
        for (key, (tat, reference)) in rows.iter() {
            write.execute(params![key, tat, reference]).db()?;
        }
        Ok(())
    }
}

impl Ctx<'_> {
    /// Checks every charge, then creates the instance, then records the charges in the batch's
    /// [`BatchLimits`]: both checks (limits, then the create's own) run before the first write,
    /// as every command must. A key the batch has not charged yet costs one cached point lookup
    /// (an `IN (…)` list made SQLite build a temporary index: measured with callgrind, about
    /// twice the instructions for the three or four keys a start has).
    pub(crate) fn create_limited(
        &self,
        fx: &mut Effects,
        req: &CreateInstance,
        charges: &[LimitCharge],
    ) -> Result<()> {
        let updates = {
            let batch = self.limits.0.borrow();
            let mut stored: Vec<(&str, i64)> = Vec::with_capacity(charges.len());
            let mut read = self.conn.prepare_cached("SELECT tat FROM limits WHERE key = ?1").db()?;
            for charge in charges {
                let key = charge.key.as_str();
                if stored.iter().any(|(k, _)| *k == key) {
                    continue;
                }
                let tat = match batch.get(key) {
                    Some((tat, _)) => Some(*tat),
                    None => read.query_row([key], |r| r.get::<_, i64>(0)).optional().db()?,
                };
                if let Some(tat) = tat {
                    stored.push((key, tat));
                }
            }
            let lookup = |key: &str| stored.iter().find(|(k, _)| *k == key).map(|(_, t)| *t);
            limits::charge(charges, lookup, self.now).map_err(Error::RateLimited)?
        };
        self.create(fx, req)?;
        let mut batch = self.limits.0.borrow_mut();
        for (key, tat, reference) in updates {
            let row = batch.entry(key).or_insert((tat, None));
            row.0 = tat;
            if reference.is_some() {
                row.1 = reference;
            }
        }
        Ok(())
    }

    /// Applies refunds (to the batch's pending rows, else to existing rows), then, at most once
    /// per [`SWEEP_EVERY`], drops the rows at full budget for the retention time.
    pub(crate) fn refund_limits(&self, refunds: &[LimitRefund]) -> Result<()> {
        // `limits::refund` in SQL: back by `units` emission intervals, never before now, and
        // only for a key that used more than half its budget (a row it leaves alone stays clean:
        // no page to write).
        let mut write = self
            .conn
            .prepare_cached("UPDATE limits SET tat = max(tat - ?2, ?3) WHERE key = ?1 AND tat - ?3 > ?4")
            .db()?;
        let mut pending = Vec::new();
        for r in refunds {
            if self.limits.0.borrow().contains_key(&r.key) {
                pending.push(r);
                continue;
            }
            let amount = r.rate.emission_us().saturating_mul(i64::from(r.units));
            write.execute(params![r.key, amount, self.now, limits::refund_threshold_us(r.rate)]).db()?;
        }
        let swept = self.shared.limits_swept_at.load(Ordering::Relaxed);
        if self.now.saturating_sub(swept) >= limits::micros(SWEEP_EVERY) {
            let horizon = self.now.saturating_sub(limits::micros(LIMIT_RETENTION));
            self.conn.prepare_cached("DELETE FROM limits WHERE tat < ?1").db()?.execute([horizon]).db()?;
            // Only this (the writer) thread sweeps; a sweep rolled back with its batch just runs
            // again a minute later.
            self.shared.limits_swept_at.store(self.now, Ordering::Relaxed);
        }
        // Last, when nothing can fail any more: a command that fails changes nothing.
        let mut batch = self.limits.0.borrow_mut();
        for r in pending {
            if let Some((tat, _)) = batch.get_mut(&r.key) {
                *tat = limits::refund(*tat, self.now, r.rate, r.units);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;
    use crate::shared::Shared;
    use durable_store::conformance::create_request;
    use durable_store::{Rate, SystemClock};
    use std::sync::Arc;

    const HOUR: Duration = Duration::from_secs(3600);

    fn charge(key: &str, cost: u32, reference: Option<&str>) -> LimitCharge {
        LimitCharge {
            key: key.into(),
            limit: format!("{key} limit"),
            rate: Rate::new(4, HOUR),
            cost,
            reference: reference.map(str::to_owned),
        }
    }

    fn rows(conn: &Connection) -> Vec<(String, i64, Option<String>)> {
        let mut stmt = conn.prepare("SELECT key, tat, reference FROM limits ORDER BY key").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
    }

    /// The commands of one batch see each other's charges and refunds before anything is
    /// written, refused commands leave nothing behind, and each key is written once.
    #[test]
    fn a_batch_writes_each_key_once_with_all_its_charges_and_refunds() {
        let dir = tempfile::tempdir().unwrap();
        let conn = schema::open_writer(&dir.path().join("t.db"), crate::Synchronous::Full).unwrap();
        let shared = Shared::new(Arc::new(SystemClock));
        let now = 1_000_000_000;
        let ctx = Ctx { conn: &conn, shared: &shared, now, limits: BatchLimits::default() };
        let em = Rate::new(4, HOUR).emission_us();
        let create = |id: &str, charges: &[LimitCharge]| {
            ctx.create_limited(&mut Effects::default(), &create_request(id, "V"), charges)
        };
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        create("a", &[charge("k", 1, Some("a")), charge("g", 1, None)]).unwrap();
        create("b", &[charge("k", 2, None)]).unwrap();
        assert!(rows(&conn).is_empty(), "nothing is written before the batch ends");
        ctx.refund_limits(&[LimitRefund { key: "k".into(), rate: Rate::new(4, HOUR), units: 1 }]).unwrap();
        create("c", &[charge("k", 2, None)]).unwrap();
        assert!(matches!(create("d", &[charge("k", 1, Some("d"))]), Err(Error::RateLimited(_))));
        assert!(matches!(create("a", &[charge("k2", 1, Some("x"))]), Err(Error::AlreadyExists { .. })));
        ctx.limits.write(&conn).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(
            rows(&conn),
            vec![
                ("g".into(), now + em, None),
                // 1 + 2 - 1 + 2 units; the reference of the last charge that gave one.
                ("k".into(), now + 4 * em, Some("a".into())),
            ]
        );
        let ids: i64 = conn.query_row("SELECT count(*) FROM instances", [], |r| r.get(0)).unwrap();
        assert_eq!(ids, 3, "a, b and c; not the refused d");
    }
}
