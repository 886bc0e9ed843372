//! Rewind: running a failed execution again from where it failed, keeping what succeeded.
//!
//! [`plan_rewind`] turns the history of a `Failed` execution into a [`Rewind`]: the history to
//! keep, the work to queue again, and the tasks to run again. Durable Functions' rule holds:
//! failed activities and failed sub-orchestrations run again, everything that succeeded is
//! kept. Precisely:
//!
//! - The turn that failed (the last turn, which ends with `ExecutionCompleted(Failed)`) is
//!   cut; the events it had received are queued again, so the orchestrator meets them live (a
//!   fixed bug no longer fails there; an unchanged one fails again with its real message).
//! - Task failures the code did not react to are removed: those delivered after the last turn
//!   that issued an action. A failure the code reacted to (it scheduled something after it,
//!   e.g. a retry timer) is part of what succeeded and stays.
//! - The kept history is replayed with the current code: it must replay cleanly, or the rewind
//!   is refused (the code changed in a way the kept history no longer fits).
//! - Every task the replayed orchestrator still waits for runs again: activities are scheduled
//!   again, timers created again (with their recorded due time), and sub-orchestrations are
//!   handed to the caller, who decides per child (rewind it, deliver its output, start it again).
//!
//! The first turn after the rewind records an `ExecutionRewound` event.

use crate::execution::{Execution, OrchestratorResolver};
use crate::history::{EventKind, HistoryEvent, TaskId};
use crate::payload::Payload;
use jiff::Timestamp;
use std::collections::HashSet;

/// What rewinding a failed execution does; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct Rewind {
    /// The execution's new history (replaces the recorded one).
    pub history: Vec<HistoryEvent>,
    /// Events to queue for the execution, in order: `ExecutionRewound`, then the events the
    /// failed turn had received.
    pub messages: Vec<HistoryEvent>,
    /// Activities to run again.
    pub activities: Vec<RewoundTask>,
    /// Timers to create again: (timer id, due time).
    pub timers: Vec<(TaskId, Timestamp)>,
    /// Sub-orchestrations the execution still waits for.
    pub sub_orchestrations: Vec<RewoundChild>,
}

/// An activity to run again.
#[derive(Clone, Debug, PartialEq)]
pub struct RewoundTask {
    /// Its `TaskScheduled` sequence number.
    pub task_id: TaskId,
    /// The activity name.
    pub name: String,
    /// Its input.
    pub input: Option<Payload>,
}

/// A sub-orchestration the rewound execution waits for.
#[derive(Clone, Debug, PartialEq)]
pub struct RewoundChild {
    /// Its `SubOrchestrationCreated` sequence number.
    pub task_id: TaskId,
    /// The orchestrator name.
    pub name: String,
    /// The child's instance id.
    pub instance_id: String,
    /// Its input.
    pub input: Option<Payload>,
}

/// Plans the rewind of a failed execution; see the module docs. `Err` says why it cannot be
/// rewound (not failed, or the kept history no longer replays with the current code).
pub fn plan_rewind(
    instance_id: &str,
    execution_id: &str,
    history: &[HistoryEvent],
    resolver: &dyn OrchestratorResolver,
    now: Timestamp,
    reason: Option<String>,
) -> Result<Rewind, String> {
    let failed = matches!(
        history.last().map(|e| &e.kind),
        Some(EventKind::ExecutionCompleted { status: crate::RuntimeStatus::Failed, .. })
    );
    if !failed {
        return Err("its history does not end with a failure; only a Failed execution can be rewound".into());
    }
    let mut turns: Vec<Vec<HistoryEvent>> = Vec::new();
    for event in history {
        match (&event.kind, turns.last_mut()) {
            (EventKind::OrchestratorStarted, _) | (_, None) => turns.push(vec![event.clone()]),
            (_, Some(turn)) => turn.push(event.clone()),
        }
    }
    let failed_turn = turns.pop().unwrap_or_default();

    // The failed turn's inbound events are delivered again, except its task failures: those
    // tasks run again (they are open in the replayed execution below).
    let requeued: Vec<HistoryEvent> = failed_turn
        .into_iter()
        .filter(|event| {
            !matches!(
                event.kind,
                EventKind::TaskFailed { .. }
                    | EventKind::SubOrchestrationFailed { .. }
                    | EventKind::OrchestratorStarted
                    | EventKind::ExecutionCompleted { .. }
                    | EventKind::ExecutionRewound { .. }
            )
        })
        .collect();

    // Earlier failures the code did not react to: delivered after the last turn with an action.
    let last_action = turns
        .iter()
        .rposition(|turn| turn.iter().any(|e| crate::primitives::recorded(&e.kind).is_some()))
        .unwrap_or(0);
    for turn in turns.iter_mut().skip(last_action + 1) {
        turn.retain(|e| {
            !matches!(e.kind, EventKind::TaskFailed { .. } | EventKind::SubOrchestrationFailed { .. })
        });
    }
    // A turn left with nothing but its start delivered nothing and issued nothing.
    turns.retain(|turn| turn.len() > 1);
    let kept: Vec<HistoryEvent> = turns.into_iter().flatten().collect();

    let exec = Execution::from_history(instance_id, execution_id, &kept, resolver);
    if let Some(failure) = exec.replay_failure() {
        return Err(format!(
            "the history kept by the rewind does not replay with this code: {}",
            failure.message
        ));
    }
    let open = exec.open_tasks();

    // Completions the failed turn had received come back with the requeued events.
    let answered: HashSet<TaskId> = requeued
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TaskCompleted { task_id, .. }
            | EventKind::SubOrchestrationCompleted { task_id, .. } => Some(*task_id),
            EventKind::TimerFired { timer_id, .. } => Some(*timer_id),
            _ => None,
        })
        .collect();
    let mut plan = Rewind {
        history: Vec::new(),
        messages: vec![HistoryEvent::new(now, EventKind::ExecutionRewound { reason })],
        activities: Vec::new(),
        timers: Vec::new(),
        sub_orchestrations: Vec::new(),
    };
    for event in &kept {
        match &event.kind {
            EventKind::TaskScheduled { id, name, input } if open.contains(id) && !answered.contains(id) => {
                plan.activities.push(RewoundTask { task_id: *id, name: name.clone(), input: input.clone() });
            }
            EventKind::TimerCreated { id, fire_at } if open.contains(id) && !answered.contains(id) => {
                plan.timers.push((*id, *fire_at));
            }
            EventKind::SubOrchestrationCreated { id, name, instance_id, input }
                if open.contains(id) && !answered.contains(id) =>
            {
                plan.sub_orchestrations.push(RewoundChild {
                    task_id: *id,
                    name: name.clone(),
                    instance_id: instance_id.clone(),
                    input: input.clone(),
                });
            }
            _ => {}
        }
    }
    plan.history = kept;
    plan.messages.extend(requeued);
    Ok(plan)
}
