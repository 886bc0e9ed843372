//! [`Action`]: the side effects a turn asks the runtime to carry out.

use crate::history::TaskId;
use crate::payload::Payload;
use jiff::Timestamp;

/// A side effect requested by orchestrator code in one turn. Each scheduling action is also
/// recorded in history (`TaskScheduled`, `TimerCreated`, ...) so replay can match it.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Run an activity and report back `TaskCompleted`/`TaskFailed` with this id.
    ScheduleActivity {
        /// Sequence number.
        id: TaskId,
        /// Activity name.
        name: String,
        /// Input.
        input: Option<Payload>,
    },
    /// Deliver `TimerFired` with this id at `fire_at`.
    CreateTimer {
        /// Sequence number.
        id: TaskId,
        /// Due time.
        fire_at: Timestamp,
    },
    /// Forget a timer created in an earlier turn; it must never fire.
    CancelTimer {
        /// The timer's sequence number.
        id: TaskId,
    },
    /// Start a child orchestration that reports back with this id.
    StartSubOrchestration {
        /// Sequence number.
        id: TaskId,
        /// Orchestrator name.
        name: String,
        /// Child instance id.
        instance_id: String,
        /// Input.
        input: Option<Payload>,
    },
    /// Raise an event on another instance (fire and forget).
    SendEvent {
        /// Sequence number.
        id: TaskId,
        /// Target instance.
        instance_id: String,
        /// Event name.
        name: String,
        /// Event data.
        input: Option<Payload>,
    },
    /// Terminate a running child (the parent was terminated).
    TerminateChild {
        /// Child instance id.
        instance_id: String,
        /// Reason passed on.
        reason: Option<String>,
    },
}
