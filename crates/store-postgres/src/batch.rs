//! The batch side of the four grouped writes (see `group.rs`): building the array parameters
//! of `commit_turns`, `create_instances`, `send_messages` and `complete_activities`, and
//! turning their rows back into one result per call.
//!
//! Calls a batch function does not cover go through the single-call function instead: turns
//! with sub-orchestrations, messages to other instances or continue-as-new; creates of ids
//! that are taken (replace a finished instance, or report the unfinished one); a second call
//! for an instance already in the batch. When a batch fails with a conflict (a history append
//! at a taken position), its calls run one by one so that only the culprit fails.

use crate::codec::{self, Micros};
use crate::group::copy_error;
use crate::{PostgresStore, ops};
use durable_core::HistoryEvent;
use durable_store::{CreateInstance, Error, Result, TurnCommit};
use std::collections::HashSet;

/// A completion ready for `complete_activities`: activity id, lease token, event JSON.
pub(crate) struct Completion {
    pub activity_id: i64,
    pub token: i64,
    pub event: String,
}

/// What a completion did: `Ok(true)` when the instance got the message.
pub(crate) type Completed = Result<bool>;

/// True when `commit_turns` can commit this turn.
pub(crate) fn batchable(c: &TurnCommit) -> bool {
    c.new_instances.is_empty() && c.messages.is_empty() && c.continue_as_new.is_none()
}

/// Splits `items` into the first call per key (batched) and the rest (sent one by one), with
/// the positions of each in `items`.
fn first_per_key<'a, T>(items: &'a [T], key: impl Fn(&T) -> &str) -> (Vec<usize>, Vec<usize>) {
    let mut seen: HashSet<&'a str> = HashSet::new();
    let (mut first, mut rest) = (Vec::new(), Vec::new());
    for (i, item) in items.iter().enumerate() {
        if seen.insert(key(item)) { first.push(i) } else { rest.push(i) }
    }
    (first, rest)
}

/// The results of a batch, every call answered (a gap would be a bug here: it is reported as
/// an internal error rather than as something the caller could act on).
fn answered<T>(results: Vec<Option<Result<T>>>) -> Vec<Result<T>> {
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(Error::Unavailable("internal error: a batched call got no answer".into()))
            })
        })
        .collect()
}

/// The same error for every call of a failed batch.
fn all_failed<T>(n: usize, e: &Error) -> Vec<Result<T>> {
    (0..n).map(|_| Err(copy_error(e))).collect()
}

/// The flat array parameters of `commit_turns`.
#[derive(Default)]
struct TurnArrays<'a> {
    instance: Vec<&'a str>,
    token: Vec<i64>,
    execution: Vec<&'a str>,
    expected_len: Vec<i64>,
    history: Vec<Option<String>>,
    history_count: Vec<i64>,
    status: Vec<i16>,
    output: Vec<Option<&'a str>>,
    failure: Vec<Option<String>>,
    custom_status: Vec<Option<&'a str>>,
    commit_time: Vec<Micros>,
    consumed_turn: Vec<i32>,
    consumed: Vec<i64>,
    act_turn: Vec<i32>,
    act_task: Vec<i64>,
    act_name: Vec<&'a str>,
    act_input: Vec<Option<&'a str>>,
    timer_turn: Vec<i32>,
    timer_id: Vec<i64>,
    timer_at: Vec<Micros>,
    timer_event: Vec<String>,
    cancel_turn: Vec<i32>,
    cancel: Vec<i64>,
}

impl<'a> TurnArrays<'a> {
    fn new(commits: impl Iterator<Item = &'a TurnCommit>) -> Result<Self> {
        let mut a = TurnArrays::default();
        for (i, c) in commits.enumerate() {
            // SQL arrays are 1-based.
            let k = i32::try_from(i + 1).unwrap_or(i32::MAX);
            a.instance.push(&c.lease.instance_id);
            a.token.push(ops::token_param(c.lease.token));
            a.execution.push(&c.execution_id);
            a.expected_len.push(i64::try_from(c.expected_history_len).unwrap_or(i64::MAX));
            a.history.push(if c.history.is_empty() { None } else { Some(codec::to_json(&c.history)?) });
            a.history_count.push(i64::try_from(c.history.len()).unwrap_or(i64::MAX));
            a.status.push(codec::status_code(c.status));
            a.output.push(codec::payload_text(&c.output));
            a.failure.push(codec::failure_text(&c.failure)?);
            a.custom_status.push(codec::payload_text(&c.custom_status));
            a.commit_time.push(Micros::of(c.now));
            for &id in &c.consumed {
                a.consumed_turn.push(k);
                a.consumed.push(id);
            }
            for act in &c.activities {
                a.act_turn.push(k);
                a.act_task.push(i64::from(act.task_id));
                a.act_name.push(&act.name);
                a.act_input.push(codec::payload_text(&act.input));
            }
            for t in &c.timers {
                a.timer_turn.push(k);
                a.timer_id.push(i64::from(t.timer_id));
                a.timer_at.push(Micros::ceil(t.fire_at));
                a.timer_event.push(codec::to_json(&t.fired_event())?);
            }
            for &t in &c.cancelled_timers {
                a.cancel_turn.push(k);
                a.cancel.push(i64::from(t));
            }
        }
        Ok(a)
    }
}

impl PostgresStore {
    /// Commits a batch of turns (all [`batchable`]); one result per turn, in order.
    pub(crate) async fn commit_turn_batch(&self, commits: Vec<TurnCommit>) -> Vec<Result<()>> {
        let (first, rest) = first_per_key(&commits, |c| &c.lease.instance_id);
        let mut results: Vec<Option<Result<()>>> = commits.iter().map(|_| None).collect();
        match self.commit_turns(first.iter().map(|&i| &commits[i])).await {
            Ok(outcomes) => {
                for (&i, outcome) in first.iter().zip(outcomes) {
                    results[i] = Some(outcome);
                }
            }
            Err(Error::Conflict(_)) => {
                for &i in &first {
                    results[i] = Some(self.commit_turn_single(&commits[i]).await);
                }
            }
            Err(e) => {
                for (&i, r) in first.iter().zip(all_failed(first.len(), &e)) {
                    results[i] = Some(r);
                }
            }
        }
        for i in rest {
            results[i] = Some(self.commit_turn_single(&commits[i]).await);
        }
        answered(results)
    }

    /// One call of `commit_turns` (instances distinct); the per-turn outcomes, or the error of
    /// the whole call.
    async fn commit_turns<'a>(
        &self,
        commits: impl Iterator<Item = &'a TurnCommit> + Clone,
    ) -> Result<Vec<Result<()>>> {
        let a = TurnArrays::new(commits.clone())?;
        let now = self.now();
        let rows = self
            .query(
                &self.inner.sql.commit_turns,
                &[
                    &now,
                    &a.instance,
                    &a.token,
                    &a.execution,
                    &a.expected_len,
                    &a.history,
                    &a.history_count,
                    &a.status,
                    &a.output,
                    &a.failure,
                    &a.custom_status,
                    &a.commit_time,
                    &a.consumed_turn,
                    &a.consumed,
                    &a.act_turn,
                    &a.act_task,
                    &a.act_name,
                    &a.act_input,
                    &a.timer_turn,
                    &a.timer_id,
                    &a.timer_at,
                    &a.timer_event,
                    &a.cancel_turn,
                    &a.cancel,
                ],
            )
            .await?;
        if rows.len() != a.instance.len() {
            return Err(codec::corrupt(format!(
                "commit_turns answered {} rows for {} turns",
                rows.len(),
                a.instance.len()
            )));
        }
        self.count(&self.inner.metrics.transactions);
        let signals = &self.inner.signals;
        let (mut wake_orchestrations, mut wake_activities) = (false, false);
        let mut outcomes = Vec::with_capacity(rows.len());
        for (row, c) in rows.iter().zip(commits) {
            match row.get::<_, i32>(0) {
                0 => {
                    self.count(&self.inner.metrics.turns);
                    wake_activities |= !c.activities.is_empty();
                    wake_orchestrations |= !c.timers.is_empty() || row.get::<_, bool>(2);
                    if c.status.is_terminal() {
                        signals.finished(&c.lease.instance_id);
                    }
                    outcomes.push(Ok(()));
                }
                4 => outcomes.push(Err(Error::LeaseLost)),
                _ => outcomes.push(Err(Error::Conflict(row.get::<_, Option<String>>(1).unwrap_or_default()))),
            }
        }
        if wake_orchestrations {
            signals.orchestration_work();
        }
        if wake_activities {
            signals.activity_work();
        }
        Ok(outcomes)
    }

    /// Creates a batch of instances; one result per request, in order.
    pub(crate) async fn create_batch(&self, requests: Vec<CreateInstance>) -> Vec<Result<()>> {
        let (first, rest) = first_per_key(&requests, |r| &r.instance_id);
        let mut results: Vec<Option<Result<()>>> = requests.iter().map(|_| None).collect();
        let mut single = rest;
        match self.create_instances(first.iter().map(|&i| &requests[i])).await {
            Ok(created) => {
                for (&i, created) in first.iter().zip(created) {
                    if created { results[i] = Some(Ok(())) } else { single.push(i) }
                }
            }
            Err(e) => {
                for (&i, r) in first.iter().zip(all_failed(first.len(), &e)) {
                    results[i] = Some(r);
                }
            }
        }
        single.sort_unstable();
        for i in single {
            results[i] = Some(self.create_instance_single(&requests[i]).await);
        }
        answered(results)
    }

    /// One call of `create_instances` (ids distinct, no parents): whether each was created.
    async fn create_instances<'a>(
        &self,
        requests: impl Iterator<Item = &'a CreateInstance>,
    ) -> Result<Vec<bool>> {
        let (mut id, mut name, mut execution, mut input, mut created, mut start) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in requests {
            id.push(r.instance_id.as_str());
            name.push(r.name.as_str());
            execution.push(r.execution_id.as_str());
            input.push(codec::payload_text(&r.input));
            created.push(Micros::of(r.created_at));
            start.push(codec::to_json(&r.start_event())?);
        }
        let rows = self
            .query(&self.inner.sql.create_instances, &[&id, &name, &execution, &input, &created, &start])
            .await?;
        let created: Vec<bool> = rows.iter().map(|r| r.get(0)).collect();
        if created.len() != id.len() {
            return Err(codec::corrupt(format!(
                "create_instances answered {} rows for {} items",
                created.len(),
                id.len()
            )));
        }
        if created.iter().any(|&c| c) {
            self.count(&self.inner.metrics.transactions);
            for _ in created.iter().filter(|&&c| c) {
                self.count(&self.inner.metrics.client_writes);
            }
            self.inner.signals.orchestration_work();
        }
        Ok(created)
    }

    /// Enqueues a batch of client messages; one result per message, in order.
    pub(crate) async fn send_batch(&self, messages: Vec<(String, HistoryEvent)>) -> Vec<Result<()>> {
        let n = messages.len();
        let mut ids = Vec::with_capacity(n);
        let mut events = Vec::with_capacity(n);
        let mut results: Vec<Option<Result<()>>> = (0..n).map(|_| None).collect();
        let mut positions = Vec::with_capacity(n);
        for (i, (id, event)) in messages.iter().enumerate() {
            match codec::to_json(event) {
                Ok(json) => {
                    ids.push(id.as_str());
                    events.push(json);
                    positions.push(i);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        match self.query(&self.inner.sql.send_messages, &[&ids, &events]).await {
            Ok(rows) if rows.len() == positions.len() => {
                let mut any = false;
                for (row, &i) in rows.iter().zip(&positions) {
                    let instance_id = messages[i].0.clone();
                    results[i] = Some(match row.get::<_, Option<i16>>(0) {
                        None => {
                            any = true;
                            self.count(&self.inner.metrics.client_writes);
                            Ok(())
                        }
                        Some(-1) => Err(Error::NotFound { instance_id }),
                        Some(status) => codec::status_from(i64::from(status))
                            .and_then(|status| Err(Error::InstanceFinished { instance_id, status })),
                    });
                }
                if any {
                    self.count(&self.inner.metrics.transactions);
                    self.inner.signals.orchestration_work();
                }
            }
            Ok(rows) => {
                let e = codec::corrupt(format!(
                    "send_messages answered {} rows for {} items",
                    rows.len(),
                    positions.len()
                ));
                for &i in &positions {
                    results[i] = Some(Err(copy_error(&e)));
                }
            }
            Err(e) => {
                for &i in &positions {
                    results[i] = Some(Err(copy_error(&e)));
                }
            }
        }
        answered(results)
    }

    /// Completes a batch of activities; one result per completion, in order.
    pub(crate) async fn complete_batch(&self, completions: Vec<Completion>) -> Vec<Completed> {
        let ids: Vec<i64> = completions.iter().map(|c| c.activity_id).collect();
        let tokens: Vec<i64> = completions.iter().map(|c| c.token).collect();
        let events: Vec<&str> = completions.iter().map(|c| c.event.as_str()).collect();
        let now = self.now();
        let rows =
            match self.query(&self.inner.sql.complete_activities, &[&ids, &tokens, &now, &events]).await {
                Ok(rows) if rows.len() == ids.len() => rows,
                Ok(rows) => {
                    let e = codec::corrupt(format!(
                        "complete_activities answered {} rows for {} items",
                        rows.len(),
                        ids.len()
                    ));
                    return all_failed(ids.len(), &e);
                }
                Err(e) => return all_failed(ids.len(), &e),
            };
        let mut any = false;
        let mut enqueued = false;
        let results = rows
            .iter()
            .map(|row| {
                if row.get::<_, i32>(0) != 0 {
                    return Err(Error::LeaseLost);
                }
                any = true;
                self.count(&self.inner.metrics.activity_completions);
                let got = row.get::<_, bool>(1);
                enqueued |= got;
                Ok(got)
            })
            .collect();
        if any {
            self.count(&self.inner.metrics.transactions);
        }
        if enqueued {
            self.inner.signals.orchestration_work();
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_call_per_key_is_batched_the_rest_goes_alone() {
        let items = ["a", "b", "a", "c", "b", "a"];
        let (first, rest) = first_per_key(&items, |s| s);
        assert_eq!(first, [0, 1, 3]);
        assert_eq!(rest, [2, 4, 5]);
    }
}
