//! Rate limits (see `durable_store::limits`), shared by every node: a start's charges are
//! checked and written in the transaction that creates its instance, with the limit rows locked
//! in key order, so two nodes can never both spend the last unit of a budget.

use crate::codec::{Micros, pg};
use crate::schema::quote_ident;
use crate::{PostgresStore, ops, unavailable};
use durable_store::limits::{self, LIMIT_RETENTION, LimitRefund};
use durable_store::{CreateInstance, Error, LimitCharge, Result};

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
        // Missing keys get a row at full budget (rolled back if the start is refused), so that
        // every key can be locked; inserting and locking in key order keeps starts that share
        // keys free of deadlocks.
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
        let stored: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
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

    /// `refund_limits`: the refunds and the sweep of expired rows in one statement.
    pub(crate) async fn refund(&self, refunds: Vec<LimitRefund>) -> Result<()> {
        let s = quote_ident(&self.inner.schema);
        let refunds = limits::merge_refunds(refunds);
        let keys: Vec<&str> = refunds.iter().map(|r| r.key.as_str()).collect();
        let amounts: Vec<i64> =
            refunds.iter().map(|r| r.rate.emission_us().saturating_mul(i64::from(r.units))).collect();
        let now = self.now().0;
        let horizon = now.saturating_sub(limits::micros(LIMIT_RETENTION));
        self.query(
            &format!(
                "WITH refunded AS ( \
                   UPDATE {s}.limits l SET tat = GREATEST(l.tat - r.amount, $3) \
                   FROM unnest($1::text[], $2::bigint[]) AS r(key, amount) WHERE l.key = r.key RETURNING 1 \
                 ), swept AS ( \
                   DELETE FROM {s}.limits WHERE key IN (SELECT key FROM {s}.limits WHERE tat < $4 LIMIT 1000) \
                   RETURNING 1 \
                 ) SELECT (SELECT count(*) FROM refunded), (SELECT count(*) FROM swept)"
            ),
            &[&keys, &amounts, &now, &horizon],
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
