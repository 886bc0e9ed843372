//! The writer thread: the only connection that writes.
//!
//! Callers send whole commands (create, send, commit a turn, complete an activity, purge, ...).
//! The thread takes everything queued (up to `max_batch`), runs the commands in one transaction,
//! each inside a SAVEPOINT so a failing command (e.g. `AlreadyExists`) is undone alone, and
//! COMMITs once: one fsync for the whole batch (group commit). Only then does it update the
//! in-memory index and answer the callers, so nothing is reported or dispatched before it is
//! durable. Because nobody else writes, SQLite's "database is locked" cannot reach a caller.

use crate::codec::Db;
use crate::ops::{ActivityRow, Ctx, Effects};
use crate::shared::Shared;
use durable_core::HistoryEvent;
use durable_store::{ActivityLease, ActivityOutcome, CreateInstance, Error, PurgeFilter, Result, TurnCommit};
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, oneshot};

type Reply<T> = oneshot::Sender<Result<T>>;

/// A write request.
pub(crate) enum Command {
    Create(Box<CreateInstance>, Reply<()>),
    Send(String, Box<HistoryEvent>, Reply<()>),
    Commit(Box<TurnCommit>, Reply<()>),
    Complete(ActivityLease, Box<ActivityOutcome>, Reply<()>),
    LeaseActivities(Vec<(i64, u64)>, Reply<Vec<ActivityRow>>),
    Purge(String, Reply<u64>),
    PurgeMatching(Box<PurgeFilter>, Reply<u64>),
}

/// A command's answer, held until the batch is durable.
enum Answer {
    Unit(Reply<()>, Result<()>),
    Count(Reply<u64>, Result<u64>),
    Rows(Reply<Vec<ActivityRow>>, Result<Vec<ActivityRow>>),
}

impl Answer {
    fn is_ok(&self) -> bool {
        match self {
            Answer::Unit(_, r) => r.is_ok(),
            Answer::Count(_, r) => r.is_ok(),
            Answer::Rows(_, r) => r.is_ok(),
        }
    }

    /// Replaces a success with `error` (the batch's COMMIT failed).
    fn fail(self, error: impl Fn() -> Error) -> Self {
        match self {
            Answer::Unit(tx, Ok(_)) => Answer::Unit(tx, Err(error())),
            Answer::Count(tx, Ok(_)) => Answer::Count(tx, Err(error())),
            Answer::Rows(tx, Ok(_)) => Answer::Rows(tx, Err(error())),
            failed => failed,
        }
    }

    fn send(self) {
        // A caller that stopped waiting (dropped its future) does not care about the answer.
        match self {
            Answer::Unit(tx, r) => drop(tx.send(r)),
            Answer::Count(tx, r) => drop(tx.send(r)),
            Answer::Rows(tx, r) => drop(tx.send(r)),
        }
    }
}

/// Runs `cmd` and returns its answer (not yet sent).
fn execute(ctx: &Ctx<'_>, cmd: Command, fx: &mut Effects) -> Answer {
    match cmd {
        Command::Create(req, tx) => {
            let r = ctx.create(fx, &req);
            if r.is_ok() {
                fx.client_writes += 1;
            }
            Answer::Unit(tx, r)
        }
        Command::Send(id, event, tx) => Answer::Unit(tx, ctx.send(fx, &id, &event)),
        Command::Commit(c, tx) => Answer::Unit(tx, ctx.commit(fx, &c)),
        Command::Complete(lease, outcome, tx) => Answer::Unit(tx, ctx.complete(fx, &lease, &outcome)),
        Command::LeaseActivities(leased, tx) => Answer::Rows(tx, ctx.lease_activities(fx, &leased)),
        Command::Purge(id, tx) => Answer::Count(tx, ctx.purge(fx, &id)),
        Command::PurgeMatching(filter, tx) => Answer::Count(tx, ctx.purge_matching(fx, &filter)),
    }
}

/// The writer thread's loop; returns when every sender is gone and the queue is drained.
pub(crate) fn run(
    conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        run_batch(&conn, &shared, &mut batch);
    }
    // Fold the WAL into the database so the file is complete on its own after a clean stop.
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "WAL checkpoint at close failed; the next open replays the WAL");
    }
}

fn run_batch(conn: &Connection, shared: &Shared, batch: &mut Vec<Command>) {
    let ctx = Ctx { conn, shared, now: shared.now() };
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE").db() {
        let msg = e.to_string();
        for cmd in batch.drain(..) {
            reject(cmd, &msg);
        }
        return;
    }
    // Set when a savepoint cannot be opened or closed: the transaction's state is then unknown,
    // so the whole batch is rolled back rather than committing a half-undone command.
    let mut poisoned: Option<String> = None;
    let mut done: Vec<(Answer, Effects)> = Vec::with_capacity(batch.len());
    for cmd in batch.drain(..) {
        if let Some(msg) = &poisoned {
            reject(cmd, msg);
            continue;
        }
        if let Err(e) = savepoint(conn, "SAVEPOINT cmd") {
            let msg = e.to_string();
            reject(cmd, &msg);
            poisoned = Some(msg);
            continue;
        }
        let mut fx = Effects::default();
        let answer = execute(&ctx, cmd, &mut fx);
        let end = if answer.is_ok() {
            savepoint(conn, "RELEASE cmd")
        } else {
            savepoint(conn, "ROLLBACK TO cmd").and_then(|()| savepoint(conn, "RELEASE cmd"))
        };
        if let Err(e) = end {
            poisoned = Some(e.to_string());
        }
        done.push((answer, fx));
    }
    let committed = match poisoned {
        None => conn.execute_batch("COMMIT").db(),
        Some(msg) => Err(Error::Backend(msg.into())),
    };
    match committed {
        Ok(()) => {
            shared.metrics.transactions.fetch_add(1, Ordering::Relaxed);
            apply(shared, ctx.now, &mut done);
            for (answer, _) in done {
                answer.send();
            }
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            let msg = e.to_string();
            tracing::error!(error = %msg, "a write transaction failed; its commands are reported as failed");
            unpin_all(shared, done.iter().map(|(_, fx)| fx));
            for (answer, _) in done {
                answer.fail(|| Error::Backend(msg.clone().into())).send();
            }
        }
    }
}

fn savepoint(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql).db()?.execute([]).db().map(drop)
}

/// Answers a command that could not run.
fn reject(cmd: Command, msg: &str) {
    let err = || Error::Backend(msg.to_owned().into());
    match cmd {
        Command::Create(_, tx)
        | Command::Send(_, _, tx)
        | Command::Commit(_, tx)
        | Command::Complete(_, _, tx) => Answer::Unit(tx, Err(err())),
        Command::LeaseActivities(_, tx) => Answer::Rows(tx, Err(err())),
        Command::Purge(_, tx) | Command::PurgeMatching(_, tx) => Answer::Count(tx, Err(err())),
    }
    .send();
}

fn unpin_all<'a>(shared: &Shared, effects: impl Iterator<Item = &'a Effects>) {
    let mut d = shared.dispatch.lock();
    for fx in effects {
        if let Some((id, token)) = &fx.pinned_orchestration {
            d.orch.unpin(id, *token);
        }
        if let Some((id, token)) = fx.pinned_activity {
            d.act.unpin(id, token);
        }
    }
}

/// Teaches the in-memory index what the committed batch changed, in command order, then wakes
/// whoever waits for it.
fn apply(shared: &Shared, now: i64, done: &mut [(Answer, Effects)]) {
    let (mut orch_woken, mut act_woken) = (false, false);
    let mut finished = Vec::new();
    let m = &shared.metrics;
    {
        let mut d = shared.dispatch.lock();
        for (answer, fx) in done.iter_mut() {
            if !answer.is_ok() {
                if let Some((id, token)) = &fx.pinned_orchestration {
                    d.orch.unpin(id, *token);
                }
                if let Some((id, token)) = fx.pinned_activity {
                    d.act.unpin(id, token);
                }
                continue;
            }
            for id in &fx.forgotten {
                d.orch.forget(id);
            }
            for id in &fx.removed_activities {
                d.act.forget(*id);
            }
            for id in &fx.ready {
                orch_woken |= d.orch.mark_visible(id, now);
            }
            for &(at, message) in &fx.timers {
                orch_woken |= d.orch.add_timer(at, message);
            }
            for &(at, message) in &fx.removed_timers {
                d.orch.remove_timer(at, message);
            }
            if let Some((id, token, has_work)) = &fx.release {
                orch_woken |= d.orch.release(id, *token, *has_work, 0, now);
            }
            for id in &fx.activities {
                d.act.add(*id);
                act_woken = true;
            }
            finished.append(&mut fx.finished);
            m.turns.fetch_add(fx.turns, Ordering::Relaxed);
            m.activity_completions.fetch_add(fx.activity_completions, Ordering::Relaxed);
            m.client_writes.fetch_add(fx.client_writes, Ordering::Relaxed);
        }
    }
    if orch_woken {
        shared.orchestration_work.notify_waiters();
    }
    if act_woken {
        shared.activity_work.notify_waiters();
    }
    for id in finished {
        shared.waiters.notify(&id);
    }
}
