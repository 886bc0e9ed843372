//! Rate limits (see `durable_store::limits`), shared by every node: a start's charges are
//! checked and written in the transaction that creates its instance, with the limit rows locked
//! in key order, so two nodes can never both spend the last unit of a budget.
//!
//! Limited creates are group-committed like plain ones: concurrent starts share one
//! transaction, which locks every key of the batch once, evaluates the starts in arrival order
//! against the running budgets, creates the admitted instances with one `create_instances`
//! call and writes each key once. A start whose id is taken (an instance to replace or refuse)
//! leaves the batch and runs alone.

use crate::codec::{Micros, pg};
use crate::schema::quote_ident;
use crate::{PostgresStore, ops, unavailable};
use durable_store::limits::{self, LIMIT_RETENTION, LimitRefund};
use durable_store::{CreateInstance, Error, LimitCharge, Result};
use std::collections::HashMap;

/// Locks the limit rows of `keys` (sorted, distinct) in schema `s` for the transaction and
/// returns their `tat`. Missing keys get a row at full budget first (rolled back with the
/// transaction if the start is refused), so that every key can be locked; inserting and locking
/// in key order keeps transactions that share keys free of deadlocks.
async fn lock_limits(
    tx: &tokio_postgres::Transaction<'_>,
    s: &str,
    keys: &[&str],
) -> Result<Vec<(String, i64)>> {
    tx.execute(
        &format!(
            "INSERT INTO {s}.limits (key, tat) SELECT k, 0 FROM unnest($1::text[]) AS k \
             ORDER BY k ON CONFLICT (key) DO NOTHING"
        ),
        &[&keys],
    )
    .await
    .map_err(pg)?;
    let rows = tx
        .query(
            &format!("SELECT key, tat FROM {s}.limits WHERE key = ANY($1) ORDER BY key FOR UPDATE"),
            &[&keys],
        )
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

impl PostgresStore {
    /// `create_instance_limited`: one transaction, one commit.
    pub(crate) async fn create_limited(
        &self,
        request: &CreateInstance,
        charges: &[LimitCharge],
    ) -> Result<()> {
        self.check_open()?;
        let s = quote_ident(&self.inner.schema);
        let mut keys: Vec<&str> = charges.iter().map(|c| c.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let now = self.now();
        let p = ops::CreateParams::new(request)?;
        let mut client = self.inner.pool.get().await.map_err(unavailable)?;
        let tx = client.transaction().await.map_err(pg)?;
        let stored = lock_limits(&tx, &s, &keys).await?;
        let lookup = |key: &str| stored.iter().find(|(k, _)| k == key).map(|(_, t)| *t);
        let updates = match limits::charge(charges, lookup, now.0) {
            Ok(updates) => updates,
            Err(refusal) => {
                tx.rollback().await.map_err(pg)?;
                return Err(Error::RateLimited(refusal));
            }
        };
        let row = tx
            .query_one(
                &self.inner.sql.create_instance,
                &[
                    &p.id,
                    &p.name,
                    &p.execution,
                    &p.input,
                    &p.parent_id,
                    &p.parent_execution,
                    &p.parent_task,
                    &p.created,
                    &p.start_event,
                    &now,
                ],
            )
            .await
            .map_err(pg)?;
        if let Some(status) = row.get::<_, Option<i16>>(0) {
            tx.rollback().await.map_err(pg)?;
            return Err(Error::AlreadyExists {
                instance_id: request.instance_id.clone(),
                status: crate::codec::status_from(i64::from(status))?,
            });
        }
        let keys: Vec<&str> = updates.iter().map(|(k, _, _)| k.as_str()).collect();
        let tats: Vec<i64> = updates.iter().map(|(_, t, _)| *t).collect();
        let references: Vec<Option<&str>> = updates.iter().map(|(_, _, r)| r.as_deref()).collect();
        tx.execute(
            &format!(
                "UPDATE {s}.limits l SET tat = u.tat, reference = COALESCE(u.reference, l.reference) \
                 FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(key, tat, reference) WHERE l.key = u.key"
            ),
            &[&keys, &tats, &references],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        self.count(&self.inner.metrics.transactions);
        self.count(&self.inner.metrics.client_writes);
        self.inner.signals.orchestration_work();
        Ok(())
    }

    /// A batch of limited creates in one transaction; one result per item, in order.
    pub(crate) async fn create_limited_batch(
        &self,
        items: Vec<(CreateInstance, Vec<LimitCharge>)>,
    ) -> Vec<Result<()>> {
        let n = items.len();
        let mut results: Vec<Option<Result<()>>> = (0..n).map(|_| None).collect();
        let mut alone = Vec::new();
        match self.try_create_limited_batch(&items, &mut results, &mut alone).await {
            Ok(()) => {}
            Err(e) => {
                // The transaction was rolled back: nothing of the batch happened.
                for r in results.iter_mut() {
                    *r = Some(Err(crate::group::copy_error(&e)));
                }
                alone.clear();
            }
        }
        for i in alone {
            results[i] = Some(self.create_limited(&items[i].0, &items[i].1).await);
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Error::Unavailable("internal error: a batched call got no answer".into()))
                })
            })
            .collect()
    }

    async fn try_create_limited_batch(
        &self,
        items: &[(CreateInstance, Vec<LimitCharge>)],
        results: &mut [Option<Result<()>>],
        alone: &mut Vec<usize>,
    ) -> Result<()> {
        self.check_open()?;
        let s = quote_ident(&self.inner.schema);
        let mut keys: Vec<&str> = items.iter().flat_map(|(_, c)| c.iter().map(|c| c.key.as_str())).collect();
        keys.sort_unstable();
        keys.dedup();
        let now = self.now();
        let mut client = self.inner.pool.get().await.map_err(unavailable)?;
        let tx = client.transaction().await.map_err(pg)?;
        let stored: HashMap<String, i64> = lock_limits(&tx, &s, &keys).await?.into_iter().collect();

        // In arrival order against the running budgets: which starts the limits admit.
        let mut running: HashMap<String, i64> = HashMap::new();
        let mut admitted = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for (i, (request, charges)) in items.iter().enumerate() {
            let lookup = |k: &str| running.get(k).or_else(|| stored.get(k)).copied();
            match limits::charge(charges, lookup, now.0) {
                Err(refusal) => results[i] = Some(Err(Error::RateLimited(refusal))),
                // A taken id (or one twice in the batch) needs the single path's semantics.
                Ok(_) if !ids.insert(request.instance_id.as_str()) => alone.push(i),
                Ok(updates) => {
                    for (k, tat, _) in updates {
                        running.insert(k, tat);
                    }
                    admitted.push(i);
                }
            }
        }
        let created = if admitted.is_empty() {
            Vec::new()
        } else {
            let (mut id, mut name, mut execution, mut input, mut at, mut start) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for &i in &admitted {
                let r = &items[i].0;
                id.push(r.instance_id.as_str());
                name.push(r.name.as_str());
                execution.push(r.execution_id.as_str());
                input.push(crate::codec::payload_text(&r.input));
                at.push(Micros::of(r.created_at));
                start.push(crate::codec::to_json(&r.start_event())?);
            }
            let rows = tx
                .query(&self.inner.sql.create_instances, &[&id, &name, &execution, &input, &at, &start])
                .await
                .map_err(pg)?;
            rows.iter().map(|r| r.get::<_, bool>(0)).collect::<Vec<bool>>()
        };
        // Charges of the starts actually created, in order (dropping some only lowers the
        // budgets used, so every one of them still fits).
        let mut finals: HashMap<String, (i64, Option<String>)> = HashMap::new();
        for (&i, created) in admitted.iter().zip(created.iter().copied().chain(std::iter::repeat(false))) {
            if !created {
                alone.push(i);
                continue;
            }
            let lookup = |k: &str| finals.get(k).map(|(t, _)| *t).or_else(|| stored.get(k).copied());
            let updates = limits::charge(&items[i].1, lookup, now.0).map_err(Error::RateLimited)?;
            for (k, tat, reference) in updates {
                let entry = finals.entry(k).or_insert((tat, None));
                entry.0 = tat;
                if reference.is_some() {
                    entry.1 = reference;
                }
            }
            results[i] = Some(Ok(()));
        }
        if !finals.is_empty() {
            let keys: Vec<&str> = finals.keys().map(String::as_str).collect();
            let tats: Vec<i64> = keys.iter().map(|k| finals[*k].0).collect();
            let references: Vec<Option<&str>> = keys.iter().map(|k| finals[*k].1.as_deref()).collect();
            tx.execute(
                &format!(
                    "UPDATE {s}.limits l SET tat = u.tat, reference = COALESCE(u.reference, l.reference) \
                     FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(key, tat, reference) WHERE l.key = u.key"
                ),
                &[&keys, &tats, &references],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        let created_count = created.iter().filter(|c| **c).count();
        if created_count > 0 {
            self.count(&self.inner.metrics.transactions);
            for _ in 0..created_count {
                self.count(&self.inner.metrics.client_writes);
            }
            self.inner.signals.orchestration_work();
        }
        Ok(())
    }

    /// `refund_limits`: the refunds and the sweep of expired rows in one statement.
    pub(crate) async fn refund(&self, refunds: Vec<LimitRefund>) -> Result<()> {
        let s = quote_ident(&self.inner.schema);
        let refunds = limits::merge_refunds(refunds);
        let keys: Vec<&str> = refunds.iter().map(|r| r.key.as_str()).collect();
        let amounts: Vec<i64> =
            refunds.iter().map(|r| r.rate.emission_us().saturating_mul(i64::from(r.units))).collect();
        let thresholds: Vec<i64> = refunds.iter().map(|r| limits::refund_threshold_us(r.rate)).collect();
        let now = self.now().0;
        let horizon = now.saturating_sub(limits::micros(LIMIT_RETENTION));
        self.query(
            &format!(
                "WITH refunded AS ( \
                   UPDATE {s}.limits l SET tat = GREATEST(l.tat - r.amount, $3) \
                   FROM unnest($1::text[], $2::bigint[], $5::bigint[]) AS r(key, amount, threshold) \
                   WHERE l.key = r.key AND l.tat - $3 > r.threshold RETURNING 1 \
                 ), swept AS ( \
                   DELETE FROM {s}.limits WHERE key IN (SELECT key FROM {s}.limits WHERE tat < $4 LIMIT 1000) \
                   RETURNING 1 \
                 ) SELECT (SELECT count(*) FROM refunded), (SELECT count(*) FROM swept)"
            ),
            &[&keys, &amounts, &now, &horizon, &thresholds],
        )
        .await?;
        self.count(&self.inner.metrics.transactions);
        Ok(())
    }

    /// `limit_reference`.
    pub(crate) async fn reference(&self, key: &str) -> Result<Option<String>> {
        let s = quote_ident(&self.inner.schema);
        let rows = self.query(&format!("SELECT reference FROM {s}.limits WHERE key = $1"), &[&key]).await?;
        Ok(rows.first().and_then(|r| r.get::<_, Option<String>>(0)))
    }

    /// `ready_backlog`: ready instances, counted through the ready index up to `at_most`.
    pub(crate) async fn backlog(&self, at_most: u64) -> Result<Option<u64>> {
        let s = quote_ident(&self.inner.schema);
        let limit = i64::try_from(at_most).unwrap_or(i64::MAX);
        let now: Micros = self.now();
        let row = self
            .query_one(
                &format!(
                    "SELECT count(*) FROM (SELECT 1 FROM {s}.instances WHERE next_visible_at IS NOT NULL \
                     AND GREATEST(next_visible_at, locked_until) <= $1 LIMIT $2) ready"
                ),
                &[&now, &limit],
            )
            .await?;
        Ok(Some(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)))
    }
}
