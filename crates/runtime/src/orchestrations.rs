//! The orchestration dispatcher: fetches instances with new messages, runs their turns
//! concurrently (one at a time per instance, guaranteed by the store's lease) and commits each
//! turn atomically.

use crate::UnknownFunctions;
use crate::dispatch::Dispatcher;
use crate::shared::Shared;
use crate::tracing_spans::ExecutionTrace;
use durable_core::{Action, EventKind, Execution, HistoryEvent, TurnResult, codes};
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
        shared.store.wait_for_orchestration_work(shared.options.idle_check).await;
    }

    fn span(item: &OrchestrationWorkItem) -> tracing::Span {
        debug_span!("turn", instance_id = %item.instance.instance_id)
    }

    async fn process(shared: Arc<Shared>, item: OrchestrationWorkItem) {
        process(&shared, item).await;
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
    if !item.instance.status.is_terminal()
        && !shared.registry.has_orchestrator(&item.instance.name)
        && shared.options.unknown_functions == UnknownFunctions::Wait
    {
        // Never consume what this node cannot process: the messages stay queued for a node
        // that has the orchestrator.
        let reason = codes::coded(
            codes::UNKNOWN_ORCHESTRATOR,
            format_args!(
                "no orchestrator named '{}' is registered on the node that tried to run it; the instance \
             waits for a node that has it",
                item.instance.name
            ),
        );
        let delay = crate::stalls::leave_to_another_node(shared, &instance_id, &reason).await;
        if let Err(e) = shared.store.abandon_orchestration_work(&lease, delay).await {
            debug!(error = %e, "could not release the work item; its lease will expire");
        }
        return false;
    }
    match run_turn(shared, item, inline).await {
        Ok(()) => true,
        Err(StoreError::LeaseLost) | Err(StoreError::Conflict(_)) | Err(StoreError::NotFound { .. }) => {
            // Someone else owns the instance now (or it was purged): our result is void.
            shared.metrics.turns_discarded.fetch_add(1, Ordering::Relaxed);
            shared.meters.turns_discarded.increment(1);
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

    let cached = shared.cache.take_traced(&instance.instance_id);
    let (mut execution, mut trace) = match cached {
        Some((e, trace))
            if e.execution_id() == instance.execution_id
                && e.history_len() as u64 == instance.history_len =>
        {
            shared.meters.cache_hits.increment(1);
            (e, trace)
        }
        _ => {
            let history = if instance.history_len == 0 {
                Vec::new()
            } else {
                shared.meters.cache_misses.increment(1);
                shared.meters.replays.increment(1);
                shared.store.read_history(&instance.instance_id).await?
            };
            if history.len() as u64 != instance.history_len {
                return Err(StoreError::Conflict("the history changed while it was read".into()));
            }
            shared.metrics.replays.fetch_add(1, Ordering::Relaxed);
            let trace = shared.spans.as_ref().and_then(|_| {
                ExecutionTrace::from_history(&instance.instance_id, &instance.execution_id, &history)
                    .map(Box::new)
            });
            let execution = Execution::from_history(
                &instance.instance_id,
                &instance.execution_id,
                &history,
                &*shared.registry,
            );
            (execution, trace)
        }
    };
    let observed = TurnObservations::of(&events, now);
    let mut spans = Vec::new();
    if shared.spans.is_some() {
        if trace.is_none()
            && let Some(started) = observed.started.and_then(|i| events.get(i))
        {
            trace =
                ExecutionTrace::start(&instance.instance_id, &instance.execution_id, started).map(Box::new);
        }
        if let Some(t) = trace.as_deref_mut() {
            t.inbound(&events, now, &mut spans);
        }
    }
    let result = execution.run_turn(now, events, &*shared.registry);
    for event in &result.discarded {
        debug!(event = event.kind.type_name(), "dropped a duplicate or unexpected message");
    }
    let status = result.status;
    if let Some(t) = trace.as_deref_mut() {
        let cancelled: Vec<_> = result
            .actions
            .iter()
            .filter_map(|a| if let Action::CancelTimer { id } = a { Some(*id) } else { None })
            .collect();
        t.outbound(&result.history, &cancelled, now, &mut spans);
        if status.is_terminal() || status == durable_core::RuntimeStatus::ContinuedAsNew {
            let error = result.failure.as_ref().map(|f| f.message.clone());
            t.finish(status.as_str(), error, now, &mut spans);
        }
    }
    let commit = build_commit(lease, &instance, consumed, result, now, trace.as_deref());
    // Back into the cache before committing: the commit releases the lease, and the next turn
    // (e.g. for an event that arrived meanwhile) may start at once and should find it. If the
    // commit fails, `process` removes it; and a cached execution is only ever used when its
    // history length matches the store's.
    if !execution.is_finished() {
        shared.cache.put_traced(execution, trace);
    }
    let finished = finished_instance(shared, &instance, &commit);
    shared.store.commit_turn(commit).await?;
    shared.metrics.turns.fetch_add(1, Ordering::Relaxed);
    shared.meters.turn_committed(&instance.name, observed.started.is_some(), instance.status, status);
    for lateness in observed.timer_lateness {
        shared.meters.timer_lateness.record(lateness);
    }
    if let Some(sink) = &shared.spans {
        for span in spans {
            sink.finished(span);
        }
    }
    if let Some((hook, finished)) = finished {
        hook(&crate::Client::new(shared.clone()), finished);
    }
    Ok(())
}

/// What the metrics take from a turn's inbound events, noted before the turn consumes them.
struct TurnObservations {
    /// Position of the `ExecutionStarted` the turn starts the execution with.
    started: Option<usize>,
    /// Seconds between each fired timer's due time and now.
    timer_lateness: Vec<f64>,
}

impl TurnObservations {
    fn of(events: &[HistoryEvent], now: jiff::Timestamp) -> Self {
        let mut observed = TurnObservations { started: None, timer_lateness: Vec::new() };
        for (i, event) in events.iter().enumerate() {
            match &event.kind {
                EventKind::ExecutionStarted { .. } => observed.started = Some(i),
                EventKind::TimerFired { fire_at, .. } => {
                    let late = now.duration_since(*fire_at).as_secs_f64().max(0.0);
                    observed.timer_lateness.push(late);
                }
                _ => {}
            }
        }
        observed
    }
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
    trace: Option<&ExecutionTrace>,
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
                commit.activities.push(NewActivity { task_id: id, name, input });
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
                    trace: trace.map(ExecutionTrace::child_context),
                });
            }
            Action::SendEvent { instance_id, name, input, .. } => commit.messages.push(NewMessage {
                instance_id,
                execution_id: None,
                event: HistoryEvent::new(now, EventKind::EventRaised { name, input, id: None }),
            }),
            Action::TerminateChild { instance_id, reason } => commit.messages.push(NewMessage {
                instance_id,
                execution_id: None,
                event: HistoryEvent::new(now, EventKind::ExecutionTerminated { reason }),
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
        let mut start = next.start;
        if let (Some(trace), EventKind::ExecutionStarted { trace: next_trace, .. }) = (trace, &mut start.kind)
        {
            *next_trace = Some(trace.next_execution_context());
        }
        commit.continue_as_new = Some(NewExecution {
            execution_id: new_execution_id(),
            input: next.input,
            start,
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
