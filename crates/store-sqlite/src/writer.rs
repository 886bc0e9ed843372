//! The writer thread: the only connection that writes.
//!
//! Callers send whole commands (create, send, commit a turn, complete an activity, purge, ...).
//! The thread takes everything queued (up to `max_batch`), runs the commands in one transaction
//! and COMMITs once: one fsync for the whole batch (group commit). Only then does it update the
//! in-memory index and answer the callers, so nothing is reported or dispatched before it is
//! durable. Because nobody else writes, SQLite's "database is locked" cannot reach a caller.
//!
//! Commands refuse (lease lost, already exists, ...) before writing anything (see `ops.rs`), so
//! the batch runs without savepoints: inside a savepoint SQLite copies every page it changes to
//! a statement journal, which cost a fifth of all CPU. Only when a command fails *after*
//! writing (an I/O or constraint error; `total_changes` tells) is the batch rolled back and run
//! again with a savepoint per command, so that command is undone alone.
//!
//! Before the COMMIT, the writer adds what the batch's successful commands changed to the
//! status counts and writes the limit rows they charged (`limits::BatchLimits`): once per
//! batch, not once per command.

use crate::codec::Db;
use crate::ops::{ActivityRow, Ctx, Effects, StatusDeltas};
use crate::shared::Shared;
use durable_core::HistoryEvent;
use durable_store::{
    ActivityLease, ActivityOutcome, CreateInstance, Error, LimitCharge, LimitRefund, PurgeFilter, Result,
    RewindCommit, TurnCommit,
};
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, oneshot};

type Reply<T> = oneshot::Sender<Result<T>>;

/// A write request.
pub(crate) enum Command {
    Create(Box<CreateInstance>, Reply<()>),
    CreateLimited(Box<CreateInstance>, Vec<LimitCharge>, Reply<()>),
    RefundLimits(Vec<LimitRefund>, Reply<()>),
    Send(String, Box<HistoryEvent>, Reply<()>),
    Commit(Box<TurnCommit>, Reply<()>),
    Complete(ActivityLease, Box<ActivityOutcome>, Reply<()>),
    LeaseActivities(Vec<(i64, u64)>, Reply<Vec<ActivityRow>>),
    Purge(String, Reply<u64>),
    PurgeMatching(Box<PurgeFilter>, Reply<u64>),
    SetStall(String, Option<String>, Reply<()>),
    Rewind(Box<RewindCommit>, Reply<()>),
}

/// What a command asks for, without its reply channel, so a batch can be run twice.
enum Request {
    Create(Box<CreateInstance>),
    CreateLimited(Box<CreateInstance>, Vec<LimitCharge>),
    RefundLimits(Vec<LimitRefund>),
    Send(String, Box<HistoryEvent>),
    Commit(Box<TurnCommit>),
    Complete(ActivityLease, Box<ActivityOutcome>),
    LeaseActivities(Vec<(i64, u64)>),
    Purge(String),
    PurgeMatching(Box<PurgeFilter>),
    SetStall(String, Option<String>),
    Rewind(Box<RewindCommit>),
}

/// Where a command's answer goes.
enum ReplyTo {
    Unit(Reply<()>),
    Count(Reply<u64>),
    Rows(Reply<Vec<ActivityRow>>),
}

/// A command's answer, held until the batch is durable.
enum Outcome {
    Unit(Result<()>),
    Count(Result<u64>),
    Rows(Result<Vec<ActivityRow>>),
}

impl Command {
    fn split(self) -> (Request, ReplyTo) {
        match self {
            Command::Create(r, tx) => (Request::Create(r), ReplyTo::Unit(tx)),
            Command::CreateLimited(r, c, tx) => (Request::CreateLimited(r, c), ReplyTo::Unit(tx)),
            Command::RefundLimits(r, tx) => (Request::RefundLimits(r), ReplyTo::Unit(tx)),
            Command::Send(id, e, tx) => (Request::Send(id, e), ReplyTo::Unit(tx)),
            Command::Commit(c, tx) => (Request::Commit(c), ReplyTo::Unit(tx)),
            Command::Complete(l, o, tx) => (Request::Complete(l, o), ReplyTo::Unit(tx)),
            Command::LeaseActivities(l, tx) => (Request::LeaseActivities(l), ReplyTo::Rows(tx)),
            Command::Purge(id, tx) => (Request::Purge(id), ReplyTo::Count(tx)),
            Command::PurgeMatching(f, tx) => (Request::PurgeMatching(f), ReplyTo::Count(tx)),
            Command::SetStall(id, reason, tx) => (Request::SetStall(id, reason), ReplyTo::Unit(tx)),
            Command::Rewind(r, tx) => (Request::Rewind(r), ReplyTo::Unit(tx)),
        }
    }
}

impl Outcome {
    fn is_ok(&self) -> bool {
        match self {
            Outcome::Unit(r) => r.is_ok(),
            Outcome::Count(r) => r.is_ok(),
            Outcome::Rows(r) => r.is_ok(),
        }
    }

    /// Replaces a success with `error` (the batch's COMMIT failed).
    fn fail(self, error: impl Fn() -> Error) -> Self {
        match self {
            Outcome::Unit(Ok(_)) => Outcome::Unit(Err(error())),
            Outcome::Count(Ok(_)) => Outcome::Count(Err(error())),
            Outcome::Rows(Ok(_)) => Outcome::Rows(Err(error())),
            failed => failed,
        }
    }
}

impl ReplyTo {
    /// Sends `outcome`; a caller that stopped waiting (dropped its future) does not care.
    fn send(self, outcome: Outcome) {
        match (self, outcome) {
            (ReplyTo::Unit(tx), Outcome::Unit(r)) => drop(tx.send(r)),
            (ReplyTo::Count(tx), Outcome::Count(r)) => drop(tx.send(r)),
            (ReplyTo::Rows(tx), Outcome::Rows(r)) => drop(tx.send(r)),
            (reply, _) => reply.send_error(Error::Backend("internal error: mismatched reply".into())),
        }
    }

    fn send_error(self, e: Error) {
        match self {
            ReplyTo::Unit(tx) => drop(tx.send(Err(e))),
            ReplyTo::Count(tx) => drop(tx.send(Err(e))),
            ReplyTo::Rows(tx) => drop(tx.send(Err(e))),
        }
    }
}

/// Runs `request`; the outcome is not sent yet.
fn execute(ctx: &Ctx<'_>, request: &Request, fx: &mut Effects) -> Outcome {
    match request {
        Request::Create(req) => {
            let r = ctx.create(fx, req);
            if r.is_ok() {
                fx.client_writes += 1;
            }
            Outcome::Unit(r)
        }
        Request::CreateLimited(req, charges) => {
            let r = ctx.create_limited(fx, req, charges);
            if r.is_ok() {
                fx.client_writes += 1;
            }
            Outcome::Unit(r)
        }
        Request::RefundLimits(refunds) => Outcome::Unit(ctx.refund_limits(refunds)),
        Request::Send(id, event) => Outcome::Unit(ctx.send(fx, id, event)),
        Request::Commit(c) => Outcome::Unit(ctx.commit(fx, c)),
        Request::Complete(lease, outcome) => Outcome::Unit(ctx.complete(fx, lease, outcome)),
        Request::LeaseActivities(leased) => Outcome::Rows(ctx.lease_activities(fx, leased)),
        Request::Purge(id) => Outcome::Count(ctx.purge(fx, id)),
        Request::PurgeMatching(filter) => Outcome::Count(ctx.purge_matching(fx, filter)),
        Request::SetStall(id, reason) => Outcome::Unit(ctx.set_stall(id, reason.as_deref())),
        Request::Rewind(r) => Outcome::Unit(ctx.rewind(fx, r)),
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
    let meters = durable_store::meters::CommitMeters::new("sqlite");
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        let (operations, started) = (batch.len(), std::time::Instant::now());
        if run_batch(&conn, &shared, &mut batch) {
            meters.committed(operations, started.elapsed());
        }
    }
    // Fold the WAL into the database so the file is complete on its own after a clean stop.
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "WAL checkpoint at close failed; the next open replays the WAL");
    }
}

/// Runs a cached statement without parameters (transaction control).
fn exec(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql).db()?.execute([]).db().map(drop)
}

/// Runs and commits one batch; true when it committed.
fn run_batch(conn: &Connection, shared: &Shared, batch: &mut Vec<Command>) -> bool {
    let ctx = Ctx { conn, shared, now: shared.now(), limits: Default::default() };
    let (requests, replies): (Vec<Request>, Vec<ReplyTo>) = batch.drain(..).map(Command::split).unzip();
    let result = exec(conn, "BEGIN IMMEDIATE").and_then(|()| match run_unguarded(&ctx, &requests) {
        Some(done) => Ok(done),
        None => {
            exec(conn, "ROLLBACK")?;
            ctx.limits.clear();
            exec(conn, "BEGIN IMMEDIATE")?;
            run_guarded(&ctx, &requests)
        }
    });
    let result =
        result.and_then(|done| match add_status_counts(conn, &done).and_then(|()| ctx.limits.write(conn)) {
            Ok(()) => Ok(done),
            Err(e) => {
                unpin_all(shared, done.iter().map(|(_, fx)| fx));
                Err(e)
            }
        });
    let mut done = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = exec(conn, "ROLLBACK");
            let msg = e.to_string();
            tracing::error!(error = %msg, "a write transaction failed; its commands are reported as failed");
            for reply in replies {
                reply.send_error(batch_error(&e, &msg));
            }
            return false;
        }
    };
    match exec(conn, "COMMIT") {
        Ok(()) => {
            shared.metrics.transactions.fetch_add(1, Ordering::Relaxed);
            apply(shared, ctx.now, &mut done);
            for (reply, (outcome, _)) in replies.into_iter().zip(done) {
                reply.send(outcome);
            }
            true
        }
        Err(e) => {
            let _ = exec(conn, "ROLLBACK");
            let msg = e.to_string();
            tracing::error!(error = %msg, "a write transaction failed; its commands are reported as failed");
            unpin_all(shared, done.iter().map(|(_, fx)| fx));
            for (reply, (outcome, _)) in replies.into_iter().zip(done) {
                reply.send(outcome.fail(|| batch_error(&e, &msg)));
            }
            false
        }
    }
}

/// Adds what the batch's commands changed to `instance_counts`: one `UPDATE` per status that
/// changed, per batch. (Triggers did it per statement until schema v6: they cost a trigger
/// program and a statement journal, a copy of every page the statement touched, on every
/// insert and status change.) Failed commands changed nothing (they were undone), so only the
/// successful ones count.
fn add_status_counts(conn: &Connection, done: &[(Outcome, Effects)]) -> Result<()> {
    let mut sum = StatusDeltas::default();
    for (_, fx) in done.iter().filter(|(outcome, _)| outcome.is_ok()) {
        sum.merge(&fx.status_counts);
    }
    let mut update = conn.prepare_cached("UPDATE instance_counts SET n = n + ?2 WHERE status = ?1").db()?;
    for (status, n) in sum.0.iter().enumerate().filter(|(_, n)| **n != 0) {
        update.execute(rusqlite::params![status as i64, n]).db()?;
    }
    Ok(())
}

/// The error every command of a failed batch gets: a full disk stays recognisable (the API
/// answers 507 with the cause), anything else is a backend error.
fn batch_error(e: &Error, msg: &str) -> Error {
    match e {
        Error::StorageFull(_) => Error::StorageFull(msg.to_owned()),
        _ => Error::Backend(msg.to_owned().into()),
    }
}

/// Runs the batch without savepoints. `None` when a command failed after writing: its writes
/// cannot be undone alone, so the caller rolls back and uses [`run_guarded`].
fn run_unguarded(ctx: &Ctx<'_>, requests: &[Request]) -> Option<Vec<(Outcome, Effects)>> {
    let mut done: Vec<(Outcome, Effects)> = Vec::with_capacity(requests.len());
    for request in requests {
        let before = ctx.conn.total_changes();
        let mut fx = Effects::default();
        let outcome = execute(ctx, request, &mut fx);
        if !outcome.is_ok() && ctx.conn.total_changes() != before {
            tracing::debug!("a command failed after writing; running its batch again with savepoints");
            unpin_all(ctx.shared, done.iter().map(|(_, fx)| fx).chain(std::iter::once(&fx)));
            return None;
        }
        done.push((outcome, fx));
    }
    Some(done)
}

/// Runs the batch with a savepoint per command, so a failing command is undone alone. An error
/// when a savepoint cannot be opened or closed leaves the transaction in an unknown state: the
/// whole batch then fails.
fn run_guarded(ctx: &Ctx<'_>, requests: &[Request]) -> Result<Vec<(Outcome, Effects)>> {
    let mut done: Vec<(Outcome, Effects)> = Vec::with_capacity(requests.len());
    let result = (|| {
        for request in requests {
            exec(ctx.conn, "SAVEPOINT cmd")?;
            let mut fx = Effects::default();
            let outcome = execute(ctx, request, &mut fx);
            if outcome.is_ok() {
                exec(ctx.conn, "RELEASE cmd")?;
            } else {
                exec(ctx.conn, "ROLLBACK TO cmd")?;
                exec(ctx.conn, "RELEASE cmd")?;
            }
            done.push((outcome, fx));
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(done),
        Err(e) => {
            unpin_all(ctx.shared, done.iter().map(|(_, fx)| fx));
            Err(e)
        }
    }
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
fn apply(shared: &Shared, now: i64, done: &mut [(Outcome, Effects)]) {
    let (mut orch_woken, mut act_woken) = (false, false);
    let mut finished = Vec::new();
    let m = &shared.metrics;
    {
        let mut d = shared.dispatch.lock();
        for (outcome, fx) in done.iter_mut() {
            if !outcome.is_ok() {
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
