//! The orchestration dispatcher: fetches instances with new messages, runs their turns
//! concurrently (one at a time per instance, guaranteed by the store's lease) and commits each
//! turn atomically.

use crate::Shared;
use crate::dispatch::Dispatcher;
use durable_core::{Action, Execution, HistoryEvent, TurnResult};
use durable_store::{
    CreateInstance, Error as StoreError, InstanceState, Message, NewActivity, NewExecution, NewMessage,
    NewTimer, OrchestrationLease, OrchestrationWorkItem, TurnCommit,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracing::{debug, debug_span, warn};

/// Orchestration turns.
pub(crate) struct Orchestrations;

impl Dispatcher for Orchestrations {
    type Item = OrchestrationWorkItem;
    const KIND: &'static str = "orchestration work";

    fn concurrency(shared: &Shared) -> usize {
        shared.options.max_concurrent_turns
    }

    async fn fetch(shared: &Shared, max: usize) -> Result<Vec<OrchestrationWorkItem>, StoreError> {
        shared.store.fetch_orchestration_work(max, shared.options.orchestration_lease).await
    }

    async fn wait(shared: &Shared) {
        shared.store.wait_for_orchestration_work(shared.options.idle_check).await
    }

    fn span(item: &OrchestrationWorkItem) -> tracing::Span {
        debug_span!("turn", instance_id = %item.instance.instance_id)
    }

    async fn process(shared: Arc<Shared>, item: OrchestrationWorkItem) {
        process(&shared, item).await
    }
}

async fn process(shared: &Arc<Shared>, item: OrchestrationWorkItem) {
    process_with(shared, item, Vec::new()).await;
}

/// Runs and commits the turn of `item`, delivering `inline` events after its messages (events
/// a client hands over directly, which never went through the inbox). Returns whether the turn
/// was committed; on failure the work is left for redelivery and `inline` was not recorded.
pub(crate) async fn process_with(
    shared: &Arc<Shared>,
    item: OrchestrationWorkItem,
    inline: Vec<HistoryEvent>,
) -> bool {
    let lease = item.lease.clone();
    let instance_id = item.instance.instance_id.clone();
    match run_turn(shared, item, inline).await {
        Ok(()) => true,
        Err(StoreError::LeaseLost) | Err(StoreError::Conflict(_)) | Err(StoreError::NotFound { .. }) => {
            // Someone else owns the instance now (or it was purged): our result is void.
            shared.metrics.turns_discarded.fetch_add(1, Ordering::Relaxed);
            shared.cache.remove(&instance_id);
            debug!("turn result discarded: the instance changed underneath");
            false
        }
        Err(e) => {
            shared.cache.remove(&instance_id);
            warn!(error = %e, "turn failed; the messages will be redelivered");
            if let Err(e) = shared.store.abandon_orchestration_work(&lease, Duration::from_secs(1)).await {
                debug!(error = %e, "could not abandon the work item; its lease will expire");
            }
            false
        }
    }
}

async fn run_turn(
    shared: &Arc<Shared>,
    item: OrchestrationWorkItem,
    inline: Vec<HistoryEvent>,
) -> Result<(), StoreError> {
    let OrchestrationWorkItem { lease, instance, messages } = item;
    let now = shared.clock.now();
    let consumed = messages.iter().map(|m| m.id).collect();
    let mut events = current_execution_events(&instance, messages);
    events.extend(inline);

    if instance.status.is_terminal() {
        // Late messages for a finished instance are consumed and dropped.
        let commit = unchanged_commit(lease, &instance, consumed, now);
        return shared.store.commit_turn(commit).await;
    }

    let mut execution = match shared.cache.take(&instance.instance_id) {
        Some(e)
            if e.execution_id() == instance.execution_id
                && e.history_len() as u64 == instance.history_len =>
        {
            e
        }
        _ => {
            let history = if instance.history_len == 0 {
                Vec::new()
            } else {
                shared.store.read_history(&instance.instance_id).await?
            };
            if history.len() as u64 != instance.history_len {
                return Err(StoreError::Conflict("the history changed while it was read".into()));
            }
            shared.metrics.replays.fetch_add(1, Ordering::Relaxed);
            Execution::from_history(
                &instance.instance_id,
                &instance.execution_id,
                &history,
                &*shared.registry,
            )
        }
    };
    let result = execution.run_turn(now, events, &*shared.registry);
    for event in &result.discarded {
        debug!(event = event.kind.type_name(), "dropped a duplicate or unexpected message");
    }
    let commit = build_commit(lease, &instance, consumed, result, now);
    // Back into the cache before committing: the commit releases the lease, and the next turn
    // (e.g. for an event that arrived meanwhile) may start at once and should find it. If the
    // commit fails, `process` removes it; and a cached execution is only ever used when its
    // history length matches the store's.
    if !execution.is_finished() {
        shared.cache.put(execution);
    }
    let finished = finished_instance(shared, &instance, &commit);
    shared.store.commit_turn(commit).await?;
    shared.metrics.turns.fetch_add(1, Ordering::Relaxed);
    if let Some((hook, finished)) = finished {
        hook(&crate::Client::new(shared.clone()), finished);
    }
    Ok(())
}

/// The finished hook to run after `commit`, when it ends the instance and one is registered.
fn finished_instance(
    shared: &Shared,
    instance: &InstanceState,
    commit: &TurnCommit,
) -> Option<(crate::FinishedHook, crate::FinishedInstance)> {
    if !commit.status.is_terminal() {
        return None;
    }
    let hook = shared.registry.finished_hook(&instance.name)?;
    Some((
        hook,
        crate::FinishedInstance {
            instance_id: instance.instance_id.clone(),
            name: instance.name.clone(),
            input: instance.input.clone(),
            status: commit.status,
            output: commit.output.clone(),
            custom_status: commit.custom_status.clone(),
        },
    ))
}

/// The events of the messages addressed to the instance's current execution; messages for an
/// older execution (e.g. a late timer of a continued-as-new execution) are dropped.
fn current_execution_events(instance: &InstanceState, messages: Vec<Message>) -> Vec<HistoryEvent> {
    messages
        .into_iter()
        .filter(|m| m.execution_id.as_ref().is_none_or(|e| *e == instance.execution_id))
        .map(|m| m.event)
        .collect()
}

fn unchanged_commit(
    lease: OrchestrationLease,
    instance: &InstanceState,
    consumed: Vec<i64>,
    now: jiff::Timestamp,
) -> TurnCommit {
    TurnCommit {
        lease,
        execution_id: instance.execution_id.clone(),
        expected_history_len: instance.history_len,
        consumed,
        history: Vec::new(),
        status: instance.status,
        output: instance.output.clone(),
        failure: instance.failure.clone(),
        custom_status: instance.custom_status.clone(),
        now,
        activities: Vec::new(),
        timers: Vec::new(),
        cancelled_timers: Vec::new(),
        new_instances: Vec::new(),
        messages: Vec::new(),
        continue_as_new: None,
    }
}

/// Turns the engine's result into the store's atomic commit.
pub(crate) fn build_commit(
    lease: OrchestrationLease,
    instance: &InstanceState,
    consumed: Vec<i64>,
    result: TurnResult,
    now: jiff::Timestamp,
) -> TurnCommit {
    let mut commit = unchanged_commit(lease, instance, consumed, now);
    commit.history = result.history;
    commit.status = result.status;
    commit.output = result.output;
    commit.failure = result.failure;
    commit.custom_status = result.custom_status;
    for action in result.actions {
        match action {
            Action::ScheduleActivity { id, name, input } => {
                commit.activities.push(NewActivity { task_id: id, name, input })
            }
            Action::CreateTimer { id, fire_at } => commit.timers.push(NewTimer { timer_id: id, fire_at }),
            Action::CancelTimer { id } => commit.cancelled_timers.push(id),
            Action::StartSubOrchestration { id, name, instance_id, input } => {
                commit.new_instances.push(CreateInstance {
                    instance_id,
                    name,
                    execution_id: new_execution_id(),
                    input,
                    parent: Some(durable_core::ParentInstance {
                        instance_id: instance.instance_id.clone(),
                        execution_id: instance.execution_id.clone(),
                        task_id: id,
                    }),
                    created_at: now,
                })
            }
            Action::SendEvent { instance_id, name, input, .. } => commit.messages.push(NewMessage {
                instance_id,
                execution_id: None,
                event: HistoryEvent::new(now, durable_core::EventKind::EventRaised { name, input }),
            }),
            Action::TerminateChild { instance_id, reason } => commit.messages.push(NewMessage {
                instance_id,
                execution_id: None,
                event: HistoryEvent::new(now, durable_core::EventKind::ExecutionTerminated { reason }),
            }),
        }
    }
    if let Some((parent, kind)) = result.notify_parent {
        commit.messages.push(NewMessage {
            instance_id: parent.instance_id,
            execution_id: Some(parent.execution_id),
            event: HistoryEvent::new(now, kind),
        });
    }
    if let Some(next) = result.continue_as_new {
        commit.continue_as_new = Some(NewExecution {
            execution_id: new_execution_id(),
            input: next.input,
            carried_events: next.carried_events,
        });
    }
    commit
}

/// A fresh execution id: 16 hex digits from 64 random bits. It only has to differ from the
/// instance's other executions (and keep default sub-orchestration ids `"{execution}:{n}"`
/// apart), and it is stored in every history and timer row of the execution, so it is short.
pub(crate) fn new_execution_id() -> String {
    format!("{:016x}", uuid::Uuid::new_v4().as_u128() as u64)
}
