//! The SQL of each write command. Runs on the writer thread, inside the batch transaction;
//! records in [`Effects`] what the in-memory index must learn once the transaction is durable
//! (the index never runs ahead of the database).
//!
//! Rule for every command: each check that can refuse it (lease, existence, status, history
//! position) runs before its first write, so a refused command has written nothing and the
//! batch needs no savepoint to undo it (see `writer.rs`).

use crate::codec::{self, Db};
use crate::shared::Shared;
use durable_core::{HistoryEvent, RuntimeStatus};
use durable_store::{
    ActivityLease, ActivityOutcome, CreateInstance, Error, NewMessage, PurgeFilter, Result, RewindCommit,
    TurnCommit,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;

/// What a successful command changes in memory.
#[derive(Default)]
pub(crate) struct Effects {
    /// Instances that got an immediately visible message.
    pub ready: Vec<String>,
    /// (due, message id) of new timers.
    pub timers: Vec<(i64, i64)>,
    /// (due, message id) of deleted timers (applied after `timers`).
    pub removed_timers: Vec<(i64, i64)>,
    /// New activity work items.
    pub activities: Vec<i64>,
    /// Deleted activity work items (their leases are revoked).
    pub removed_activities: Vec<i64>,
    /// Purged instances (their leases are revoked).
    pub forgotten: Vec<String>,
    /// Instances that finished (completion listeners are woken).
    pub finished: Vec<String>,
    /// The orchestration lease a commit releases: (instance, token, still has visible messages).
    pub release: Option<(String, u64, bool)>,
    /// A lease pinned for this command, to unpin if it fails.
    pub pinned_orchestration: Option<(String, u64)>,
    pub pinned_activity: Option<(i64, u64)>,
    pub turns: u64,
    pub activity_completions: u64,
    pub client_writes: u64,
    /// How the command changed the number of instances of each status (by status code): the
    /// writer adds the batch's sum to `instance_counts` once, before it commits.
    pub status_counts: StatusDeltas,
}

/// Changes of `instance_counts`, by status code (see `codec::status_code`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatusDeltas(pub [i64; 7]);

impl StatusDeltas {
    pub(crate) fn add(&mut self, status: RuntimeStatus, n: i64) {
        self.0[usize::try_from(codec::status_code(status)).expect("status codes are 0..7")] += n;
    }

    /// An instance moved from `from` to `to`.
    pub(crate) fn moved(&mut self, from: RuntimeStatus, to: RuntimeStatus) {
        if from != to {
            self.add(from, -1);
            self.add(to, 1);
        }
    }

    pub(crate) fn merge(&mut self, other: &StatusDeltas) {
        for (sum, n) in self.0.iter_mut().zip(other.0) {
            *sum += n;
        }
    }
}

/// An activity row leased by a fetch.
pub(crate) struct ActivityRow {
    pub id: i64,
    pub instance_id: String,
    pub execution_id: String,
    pub task_id: u32,
    pub name: String,
    pub input: Option<String>,
    pub attempt: u32,
}

/// The fields of an instance row the write paths need.
struct Head {
    execution_id: String,
    status: RuntimeStatus,
    history_len: i64,
}

/// The writer's view for one command.
pub(crate) struct Ctx<'a> {
    pub conn: &'a Connection,
    pub shared: &'a Shared,
    /// The batch's clock reading (unix µs).
    pub now: i64,
    /// The limit rows the batch's commands charged, written just before it commits.
    pub limits: crate::limits::BatchLimits,
}

impl Ctx<'_> {
    fn head(&self, instance_id: &str) -> Result<Option<Head>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT execution_id, status, history_len FROM instances WHERE instance_id = ?1")
            .db()?;
        let row = stmt
            .query_row([instance_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get(2)?)))
            .optional()
            .db()?;
        row.map(|(execution_id, status, history_len)| {
            Ok(Head { execution_id, status: codec::status_from(status)?, history_len })
        })
        .transpose()
    }

    /// Inserts a message; `visible_at` in the future makes it a timer.
    fn enqueue(
        &self,
        fx: &mut Effects,
        instance_id: &str,
        execution_id: Option<&str>,
        event: &HistoryEvent,
        visible_at: Option<i64>,
        timer_id: Option<u32>,
    ) -> Result<()> {
        let json = codec::encode_message(event, visible_at)?;
        self.conn
            .prepare_cached(
                "INSERT INTO messages (instance_id, execution_id, visible_at, timer_id, event) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .db()?
            .execute(params![instance_id, execution_id, visible_at, timer_id, json])
            .db()?;
        match visible_at {
            Some(at) if at > self.now => fx.timers.push((at, self.conn.last_insert_rowid())),
            _ => fx.ready.push(instance_id.to_owned()),
        }
        Ok(())
    }

    /// Deletes messages with `sql`, a `DELETE ... RETURNING id, visible_at`, and drops the
    /// timers among them from the in-memory index.
    fn delete_messages(&self, fx: &mut Effects, sql: &str, args: impl rusqlite::Params) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(sql).db()?;
        let mut rows = stmt.query(args).db()?;
        while let Some(row) = rows.next().db()? {
            if let Some(at) = row.get::<_, Option<i64>>(1).db()? {
                fx.removed_timers.push((at, row.get(0).db()?));
            }
        }
        Ok(())
    }

    /// Deletes every message of the instance.
    fn delete_all_messages(&self, fx: &mut Effects, instance_id: &str) -> Result<()> {
        let sql = "DELETE FROM messages WHERE instance_id = ?1 RETURNING id, visible_at";
        self.delete_messages(fx, sql, [instance_id])
    }

    /// Deletes the instance's activities, except those under a live lease when `keep_leased`
    /// (their workers finish them, and the completion then enqueues nothing).
    fn delete_activities(&self, fx: &mut Effects, instance_id: &str, keep_leased: bool) -> Result<()> {
        let ids: Vec<i64> = self
            .conn
            .prepare_cached("SELECT id FROM activities WHERE instance_id = ?1")
            .db()?
            .query_map([instance_id], |r| r.get(0))
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()?;
        if ids.is_empty() {
            return Ok(());
        }
        let doomed: Vec<i64> = if keep_leased {
            let d = self.shared.dispatch.lock();
            ids.into_iter().filter(|id| !d.act.is_leased(*id, self.now)).collect()
        } else {
            ids
        };
        let mut stmt = self.conn.prepare_cached("DELETE FROM activities WHERE id = ?1").db()?;
        for id in doomed {
            stmt.execute([id]).db()?;
            fx.removed_activities.push(id);
        }
        Ok(())
    }

    /// Creates an instance (or replaces a finished one) and enqueues its `ExecutionStarted`.
    pub(crate) fn create(&self, fx: &mut Effects, req: &CreateInstance) -> Result<()> {
        let replaced = self.head(&req.instance_id)?;
        if let Some(existing) = &replaced {
            if !existing.status.is_terminal() {
                return Err(Error::AlreadyExists {
                    instance_id: req.instance_id.clone(),
                    status: existing.status,
                });
            }
            let id = req.instance_id.as_str();
            self.conn
                .prepare_cached("DELETE FROM history WHERE instance_id = ?1")
                .db()?
                .execute([id])
                .db()?;
            self.delete_all_messages(fx, id)?;
            self.delete_activities(fx, id, true)?;
        }
        let created = codec::us(req.created_at);
        let parent = req.parent.as_ref();
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO instances (instance_id, name, execution_id, status, input, output, failure, \
                 custom_status, created_at, updated_at, completed_at, parent_instance_id, parent_execution_id, \
                 parent_task_id, history_len) \
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, NULL, ?6, ?6, NULL, ?7, ?8, ?9, 0)",
            )
            .db()?
            .execute(params![
                req.instance_id,
                req.name,
                req.execution_id,
                codec::status_code(RuntimeStatus::Pending),
                codec::payload_text(&req.input),
                created,
                parent.map(|p| p.instance_id.as_str()),
                parent.map(|p| p.execution_id.as_str()),
                parent.map(|p| p.task_id),
            ])
            .db()?;
        match replaced {
            Some(existing) => fx.status_counts.moved(existing.status, RuntimeStatus::Pending),
            None => fx.status_counts.add(RuntimeStatus::Pending, 1),
        }
        self.enqueue(fx, &req.instance_id, Some(&req.execution_id), &req.start_event(), None, None)
    }

    /// `send_message`: the existence check and the enqueue in one transaction.
    pub(crate) fn send(&self, fx: &mut Effects, instance_id: &str, event: &HistoryEvent) -> Result<()> {
        match self.head(instance_id)? {
            None => Err(Error::NotFound { instance_id: instance_id.to_owned() }),
            Some(h) if h.status.is_terminal() => {
                Err(Error::InstanceFinished { instance_id: instance_id.to_owned(), status: h.status })
            }
            Some(_) => {
                fx.client_writes += 1;
                self.enqueue(fx, instance_id, None, event, None, None)
            }
        }
    }

    /// A message from a turn to another instance; dropped when the target is missing, finished
    /// or runs another execution than the one addressed.
    fn deliver(&self, fx: &mut Effects, m: &NewMessage) -> Result<()> {
        match self.head(&m.instance_id)? {
            Some(h)
                if !h.status.is_terminal()
                    && m.execution_id.as_ref().is_none_or(|e| *e == h.execution_id) =>
            {
                self.enqueue(fx, &m.instance_id, m.execution_id.as_deref(), &m.event, None, None)
            }
            _ => {
                tracing::debug!(target_instance = %m.instance_id, "dropped a message to a missing or finished instance");
                Ok(())
            }
        }
    }

    /// `commit_turn`.
    pub(crate) fn commit(&self, fx: &mut Effects, c: &TurnCommit) -> Result<()> {
        let id = c.lease.instance_id.as_str();
        if !self.shared.dispatch.lock().orch.pin(id, c.lease.token, self.now) {
            return Err(Error::LeaseLost);
        }
        fx.pinned_orchestration = Some((id.to_owned(), c.lease.token));
        let Some(head) = self.head(id)? else {
            return Err(Error::Conflict(format!("instance '{id}' no longer exists")));
        };
        if head.execution_id != c.execution_id {
            return Err(Error::Conflict(format!(
                "instance '{id}' runs execution '{}', not '{}'",
                head.execution_id, c.execution_id
            )));
        }
        let expected = i64::try_from(c.expected_history_len).unwrap_or(i64::MAX);
        if head.history_len != expected {
            return Err(Error::Conflict(format!(
                "instance '{id}' has {} history events, the turn expected {expected}",
                head.history_len
            )));
        }
        if !c.history.is_empty() {
            let inserted = self
                .conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO history (instance_id, execution_id, first_event_index, events) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .db()?
                .execute(params![id, c.execution_id, expected, codec::encode_turn(&c.history)?])
                .db()?;
            if inserted == 0 {
                return Err(Error::Conflict(format!("history of '{id}' already has events at {expected}")));
            }
        }
        // Only now write anything else: every check that can refuse the commit ran before its
        // first write (the writer relies on that to skip savepoints).
        let ends = c.continue_as_new.is_none() && c.status.is_terminal();
        if !ends {
            // (A finished instance's whole inbox is deleted below, consumed messages included.)
            let mut del =
                self.conn.prepare_cached("DELETE FROM messages WHERE id = ?1 AND instance_id = ?2").db()?;
            for m in &c.consumed {
                del.execute(params![m, id]).db()?;
            }
        }
        let now = codec::us(c.now);
        let len = expected.saturating_add(i64::try_from(c.history.len()).unwrap_or(i64::MAX));
        // SQLite moves an index entry for every indexed column named in SET, even when its
        // value stays the same: a turn that keeps the status leaves `status` out, so it does
        // not delete and re-insert its `instances_by_status` entry.
        macro_rules! commit_update {
            ($status:literal) => {
                concat!(
                    "UPDATE instances SET ",
                    $status,
                    "output = ?3, failure = ?4, custom_status = ?5, updated_at = ?6, completed_at = ?7, \
                     history_len = ?8, stall_reason = iif(status = ?2 AND history_len = ?8, stall_reason, NULL), \
                     stall_since = iif(status = ?2 AND history_len = ?8, stall_since, NULL) WHERE instance_id = ?1"
                )
            };
        }
        let sql = if head.status == c.status { commit_update!("") } else { commit_update!("status = ?2, ") };
        self.conn
            .prepare_cached(sql)
            .db()?
            .execute(params![
                id,
                codec::status_code(c.status),
                codec::payload_text(&c.output),
                codec::failure_text(&c.failure)?,
                codec::payload_text(&c.custom_status),
                now,
                c.status.is_terminal().then_some(now),
                len,
            ])
            .db()?;
        fx.status_counts.moved(head.status, c.status);
        let mut ins = self
            .conn
            .prepare_cached(
                "INSERT INTO activities (instance_id, execution_id, task_id, name, input) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .db()?;
        for a in &c.activities {
            ins.execute(params![id, c.execution_id, a.task_id, a.name, codec::payload_text(&a.input)])
                .db()?;
            fx.activities.push(self.conn.last_insert_rowid());
        }
        for t in &c.timers {
            let due = codec::us_ceil(t.fire_at);
            self.enqueue(fx, id, Some(&c.execution_id), &t.fired_event(), Some(due), Some(t.timer_id))?;
        }
        for t in &c.cancelled_timers {
            let sql = "DELETE FROM messages WHERE instance_id = ?1 AND execution_id = ?2 AND timer_id = ?3 \
                       RETURNING id, visible_at";
            self.delete_messages(fx, sql, params![id, c.execution_id, t])?;
        }
        for child in &c.new_instances {
            match self.create(fx, child) {
                // The parent learns it through `SubOrchestrationFailed` instead of the whole turn
                // failing.
                Err(Error::AlreadyExists { .. }) => match child.collision_message(c.now) {
                    Some(m) => self.deliver(fx, &m)?,
                    None => {
                        tracing::warn!(child = %child.instance_id, "instance created by a turn without a parent already exists");
                    }
                },
                other => other?,
            }
        }
        for m in &c.messages {
            self.deliver(fx, m)?;
        }
        if let Some(next) = &c.continue_as_new {
            self.continue_as_new(fx, id, next)?;
        } else if c.status.is_terminal() {
            self.delete_all_messages(fx, id)?;
            self.delete_activities(fx, id, true)?;
            fx.finished.push(id.to_owned());
        }
        // A finished instance has no inbox left.
        let has_work: bool = !ends
            && self
                .conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM messages WHERE instance_id = ?1 \
                     AND (visible_at IS NULL OR visible_at <= ?2))",
                )
                .db()?
                .query_row(params![id, self.now], |r| r.get(0))
                .db()?;
        fx.release = Some((id.to_owned(), c.lease.token, has_work));
        fx.turns += 1;
        Ok(())
    }

    /// Switches the instance to its next execution; see `TurnCommit::continue_as_new`.
    fn continue_as_new(&self, fx: &mut Effects, id: &str, next: &durable_store::NewExecution) -> Result<()> {
        self.conn.prepare_cached("DELETE FROM history WHERE instance_id = ?1").db()?.execute([id]).db()?;
        // Everything addressed to an execution is the old one's (timers, completions).
        let sql = "DELETE FROM messages WHERE instance_id = ?1 AND execution_id IS NOT NULL RETURNING id, visible_at";
        self.delete_messages(fx, sql, [id])?;
        self.delete_activities(fx, id, true)?;
        self.conn
            .prepare_cached(
                "UPDATE instances SET execution_id = ?2, input = ?3, history_len = 0, \
                 stall_reason = iif(history_len = 0, stall_reason, NULL), \
                 stall_since = iif(history_len = 0, stall_since, NULL) WHERE instance_id = ?1",
            )
            .db()?
            .execute(params![id, next.execution_id, codec::payload_text(&next.input)])
            .db()?;
        let kept: Vec<i64> = self
            .conn
            .prepare_cached("SELECT id FROM messages WHERE instance_id = ?1 ORDER BY id")
            .db()?
            .query_map([id], |r| r.get(0))
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()?;
        self.enqueue(fx, id, Some(&next.execution_id), &next.start, None, None)?;
        for e in &next.carried_events {
            self.enqueue(fx, id, Some(&next.execution_id), e, None, None)?;
        }
        // Messages that arrived during the turn are newer than the carried events: move them
        // behind, so the new execution sees its start, the carried events, then these.
        let mut requeue = self
            .conn
            .prepare_cached(
                "INSERT INTO messages (instance_id, execution_id, visible_at, timer_id, event) \
                 SELECT instance_id, execution_id, visible_at, timer_id, event FROM messages WHERE id = ?1",
            )
            .db()?;
        let mut del = self.conn.prepare_cached("DELETE FROM messages WHERE id = ?1").db()?;
        for m in kept {
            requeue.execute([m]).db()?;
            del.execute([m]).db()?;
        }
        Ok(())
    }

    /// `rewind_instance`.
    pub(crate) fn rewind(&self, fx: &mut Effects, r: &RewindCommit) -> Result<()> {
        let id = r.instance_id.as_str();
        let Some(head) = self.head(id)? else {
            return Err(Error::NotFound { instance_id: id.to_owned() });
        };
        if head.status != RuntimeStatus::Failed {
            return Err(Error::Conflict(format!(
                "instance '{id}' is {}; only Failed instances can be rewound",
                head.status
            )));
        }
        let expected = i64::try_from(r.expected_history_len).unwrap_or(i64::MAX);
        if head.execution_id != r.execution_id || head.history_len != expected {
            return Err(Error::Conflict(format!("instance '{id}' changed while its rewind was planned")));
        }
        // Every check that can refuse the rewind ran: now write.
        self.conn.prepare_cached("DELETE FROM history WHERE instance_id = ?1").db()?.execute([id]).db()?;
        if !r.history.is_empty() {
            self.conn
                .prepare_cached(
                    "INSERT INTO history (instance_id, execution_id, first_event_index, events) VALUES (?1, ?2, 0, ?3)",
                )
                .db()?
                .execute(params![id, r.execution_id, codec::encode_turn(&r.history)?])
                .db()?;
        }
        let status = if r.history.is_empty() { RuntimeStatus::Pending } else { RuntimeStatus::Running };
        self.conn
            .prepare_cached(
                "UPDATE instances SET status = ?2, output = NULL, failure = NULL, completed_at = NULL, \
                 updated_at = ?3, history_len = ?4, stall_reason = NULL, stall_since = NULL WHERE instance_id = ?1",
            )
            .db()?
            .execute(params![id, codec::status_code(status), codec::us(r.now), r.history.len() as i64])
            .db()?;
        fx.status_counts.moved(head.status, status);
        for event in &r.messages {
            self.enqueue(fx, id, Some(&r.execution_id), event, None, None)?;
        }
        let mut ins = self
            .conn
            .prepare_cached(
                "INSERT INTO activities (instance_id, execution_id, task_id, name, input) \
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM activities \
                 WHERE instance_id = ?1 AND execution_id = ?2 AND task_id = ?3)",
            )
            .db()?;
        for a in &r.activities {
            if ins
                .execute(params![id, r.execution_id, a.task_id, a.name, codec::payload_text(&a.input)])
                .db()?
                > 0
            {
                fx.activities.push(self.conn.last_insert_rowid());
            }
        }
        for t in &r.timers {
            let due = codec::us_ceil(t.fire_at);
            self.enqueue(fx, id, Some(&r.execution_id), &t.fired_event(), Some(due), Some(t.timer_id))?;
        }
        for child in &r.new_instances {
            match self.create(fx, child) {
                Err(Error::AlreadyExists { .. }) => match child.collision_message(r.now) {
                    Some(m) => self.deliver(fx, &m)?,
                    None => {
                        tracing::warn!(child = %child.instance_id, "a rewound child without a parent already exists");
                    }
                },
                other => other?,
            }
        }
        Ok(())
    }

    /// `set_stall`: the reason (keeping `stall_since` when it is the same one) or none.
    pub(crate) fn set_stall(&self, instance_id: &str, reason: Option<&str>) -> Result<()> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE instances SET stall_since = CASE WHEN ?2 IS NULL THEN NULL \
                 WHEN stall_reason IS ?2 THEN stall_since ELSE ?3 END, stall_reason = ?2 WHERE instance_id = ?1",
            )
            .db()?
            .execute(params![instance_id, reason, self.now])
            .db()?;
        if changed == 0 {
            return Err(Error::NotFound { instance_id: instance_id.to_owned() });
        }
        Ok(())
    }

    /// `complete_activity`.
    pub(crate) fn complete(
        &self,
        fx: &mut Effects,
        lease: &ActivityLease,
        outcome: &ActivityOutcome,
    ) -> Result<()> {
        if !self.shared.dispatch.lock().act.pin(lease.activity_id, lease.token, self.now) {
            return Err(Error::LeaseLost);
        }
        fx.pinned_activity = Some((lease.activity_id, lease.token));
        let row: Option<(String, String, u32)> = self
            .conn
            .prepare_cached(
                "DELETE FROM activities WHERE id = ?1 RETURNING instance_id, execution_id, task_id",
            )
            .db()?
            .query_row([lease.activity_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .db()?;
        let Some((instance_id, execution_id, task_id)) = row else { return Err(Error::LeaseLost) };
        fx.removed_activities.push(lease.activity_id);
        fx.activity_completions += 1;
        let event = outcome.clone().into_event(task_id, codec::ts(self.now));
        self.deliver(fx, &NewMessage { instance_id, execution_id: Some(execution_id), event })
    }

    /// Counts a fetch in each leased activity's attempts and reads it; activities deleted since
    /// they were queued are left out (and forgotten).
    pub(crate) fn lease_activities(
        &self,
        fx: &mut Effects,
        leased: &[(i64, u64)],
    ) -> Result<Vec<ActivityRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "UPDATE activities SET attempts = attempts + 1 WHERE id = ?1 \
                 RETURNING instance_id, execution_id, task_id, name, input, attempts",
            )
            .db()?;
        let mut rows = Vec::with_capacity(leased.len());
        for &(id, _) in leased {
            let row = stmt
                .query_row([id], |r| {
                    Ok(ActivityRow {
                        id,
                        instance_id: r.get(0)?,
                        execution_id: r.get(1)?,
                        task_id: r.get(2)?,
                        name: r.get(3)?,
                        input: r.get(4)?,
                        attempt: r.get(5)?,
                    })
                })
                .optional()
                .db()?;
            match row {
                Some(row) => rows.push(row),
                None => fx.removed_activities.push(id),
            }
        }
        Ok(rows)
    }

    /// Deletes one instance's rows. Returns whether it existed.
    fn delete_instance(&self, fx: &mut Effects, id: &str) -> Result<bool> {
        let deleted: Option<i64> = self
            .conn
            .prepare_cached("DELETE FROM instances WHERE instance_id = ?1 RETURNING status")
            .db()?
            .query_row([id], |r| r.get(0))
            .optional()
            .db()?;
        if let Some(status) = deleted {
            fx.status_counts.add(codec::status_from(status)?, -1);
        }
        self.conn.prepare_cached("DELETE FROM history WHERE instance_id = ?1").db()?.execute([id]).db()?;
        self.delete_all_messages(fx, id)?;
        self.delete_activities(fx, id, false)?;
        fx.forgotten.push(id.to_owned());
        Ok(deleted.is_some())
    }

    /// `purge_instance`: the instance and, recursively, its sub-orchestrations.
    pub(crate) fn purge(&self, fx: &mut Effects, root: &str) -> Result<u64> {
        let mut children = self
            .conn
            .prepare_cached("SELECT instance_id FROM instances WHERE parent_instance_id = ?1")
            .db()?;
        let mut seen = HashSet::new();
        let mut todo = vec![root.to_owned()];
        let mut count = 0;
        while let Some(id) = todo.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let kids: Vec<String> =
                children.query_map([&id], |r| r.get(0)).db()?.collect::<rusqlite::Result<_>>().db()?;
            todo.extend(kids);
            count += u64::from(self.delete_instance(fx, &id)?);
        }
        Ok(count)
    }

    /// `purge_instances`.
    pub(crate) fn purge_matching(&self, fx: &mut Effects, filter: &PurgeFilter) -> Result<u64> {
        let statuses: Vec<String> =
            filter.effective_statuses().into_iter().map(|s| codec::status_code(s).to_string()).collect();
        let sql = format!(
            "SELECT instance_id FROM instances WHERE status IN ({}) AND created_at >= ?1 AND created_at <= ?2",
            statuses.join(",")
        );
        let from = filter.created_from.map_or(i64::MIN, codec::us);
        let to = filter.created_to.map_or(i64::MAX, codec::us);
        let ids: Vec<String> = self
            .conn
            .prepare_cached(&sql)
            .db()?
            .query_map(params![from, to], |r| r.get(0))
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()?;
        let mut count = 0;
        for id in ids {
            count += u64::from(self.delete_instance(fx, &id)?);
        }
        Ok(count)
    }
}
