//! The event-sourced history of an orchestration execution.
//!
//! A history is a flat list of [`HistoryEvent`]s grouped into *turns*. Every
//! turn starts with [`EventKind::OrchestratorStarted`] (whose timestamp is the turn's
//! `current_utc_datetime`), continues with the inbound events the turn consumed (completions,
//! raised events, lifecycle messages), then the actions the orchestrator issued in that turn
//! (`TaskScheduled`, `TimerCreated`, ...) and, when the execution ended, one `ExecutionCompleted`
//! or `ExecutionTerminated`. Replay feeds the turns back to the orchestrator in the same
//! grouping, which is what makes `select` winners and timestamps identical on replay.

use crate::payload::Payload;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Sequence number of a scheduled action (activity, timer, sub-orchestration, sent event)
/// within one execution, in the order the orchestrator code issued them, starting at 0.
pub type TaskId = u32;

/// One entry of an execution's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// When the event was recorded (inbound events: when the message was created).
    #[serde(rename = "ts", with = "micros")]
    pub timestamp: Timestamp,
    /// What happened.
    #[serde(rename = "e")]
    pub kind: EventKind,
}

impl HistoryEvent {
    /// An event of `kind` recorded at `timestamp`.
    pub fn new(timestamp: Timestamp, kind: EventKind) -> Self {
        HistoryEvent { timestamp, kind }
    }
}

/// The kinds of history events. Names follow the Durable Task Framework.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EventKind {
    /// Start of a turn; its timestamp is the orchestrator's current time.
    OrchestratorStarted,
    /// The execution was started with this orchestrator and input.
    ExecutionStarted {
        /// Orchestrator name.
        name: String,
        /// Input of the execution.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<Payload>,
        /// The orchestration that started this one as a sub-orchestration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<ParentInstance>,
        /// The distributed trace the execution belongs to, when tracing was on where it
        /// started. Kept in history so its span keeps its identity across restarts and nodes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace: Option<TraceContext>,
    },
    /// The execution ended (Completed, Failed or ContinuedAsNew).
    ExecutionCompleted {
        /// Completed, Failed or ContinuedAsNew.
        status: RuntimeStatus,
        /// Output (Completed) or new input (ContinuedAsNew).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Payload>,
        /// Why it failed (Failed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<FailureDetails>,
    },
    /// The execution was terminated from outside.
    ExecutionTerminated {
        /// The reason given by whoever terminated it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The execution was suspended: later events are recorded but not delivered until resumed.
    ExecutionSuspended {
        /// Reason given by the caller.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The execution was resumed.
    ExecutionResumed {
        /// Reason given by the caller.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The failed execution was rewound: its failed tasks run again (see [`crate::plan_rewind`]).
    /// Recorded in the first turn after the rewind.
    ExecutionRewound {
        /// Reason given by the caller.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The orchestrator scheduled an activity.
    TaskScheduled {
        /// Sequence number of the action.
        id: TaskId,
        /// Activity name.
        name: String,
        /// Activity input.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<Payload>,
    },
    /// An activity returned.
    TaskCompleted {
        /// The `TaskScheduled` this completes.
        task_id: TaskId,
        /// The activity's output.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Payload>,
    },
    /// An activity failed.
    TaskFailed {
        /// The `TaskScheduled` this completes.
        task_id: TaskId,
        /// Why it failed.
        failure: FailureDetails,
    },
    /// The orchestrator started a sub-orchestration.
    SubOrchestrationCreated {
        /// Sequence number of the action.
        id: TaskId,
        /// Orchestrator name of the child.
        name: String,
        /// Instance id of the child.
        instance_id: String,
        /// Input of the child.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<Payload>,
    },
    /// A sub-orchestration completed.
    SubOrchestrationCompleted {
        /// The `SubOrchestrationCreated` this completes.
        task_id: TaskId,
        /// The child's output.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Payload>,
    },
    /// A sub-orchestration failed or was terminated.
    SubOrchestrationFailed {
        /// The `SubOrchestrationCreated` this completes.
        task_id: TaskId,
        /// Why it failed.
        failure: FailureDetails,
    },
    /// The orchestrator created a durable timer.
    TimerCreated {
        /// Sequence number of the action.
        id: TaskId,
        /// When it fires.
        #[serde(with = "micros")]
        fire_at: Timestamp,
    },
    /// A durable timer fired.
    TimerFired {
        /// The `TimerCreated` this completes.
        timer_id: TaskId,
        /// When it was due.
        #[serde(with = "micros")]
        fire_at: Timestamp,
    },
    /// An external event was delivered to the instance.
    EventRaised {
        /// Event name.
        name: String,
        /// Event data.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<Payload>,
        /// Identity of this raise, when it may be delivered more than once (a direct delivery
        /// whose commit may have landed is also queued): an execution records each id once and
        /// drops later copies.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// The orchestrator sent an event to another instance.
    EventSent {
        /// Sequence number of the action.
        id: TaskId,
        /// Target instance.
        instance_id: String,
        /// Event name.
        name: String,
        /// Event data.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<Payload>,
    },
}

/// The form in which external event names are compared. Names are case-insensitive, as in
/// Durable Functions; every place that compares them (waits, the event buffer, event hooks) uses
/// this one function, so two names either match everywhere or nowhere.
pub fn event_key(name: &str) -> String {
    name.to_lowercase()
}

impl EventKind {
    /// The Durable Task Framework name of this event type (`"TaskScheduled"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::OrchestratorStarted => "OrchestratorStarted",
            EventKind::ExecutionStarted { .. } => "ExecutionStarted",
            EventKind::ExecutionCompleted { .. } => "ExecutionCompleted",
            EventKind::ExecutionTerminated { .. } => "ExecutionTerminated",
            EventKind::ExecutionSuspended { .. } => "ExecutionSuspended",
            EventKind::ExecutionResumed { .. } => "ExecutionResumed",
            EventKind::ExecutionRewound { .. } => "ExecutionRewound",
            EventKind::TaskScheduled { .. } => "TaskScheduled",
            EventKind::TaskCompleted { .. } => "TaskCompleted",
            EventKind::TaskFailed { .. } => "TaskFailed",
            EventKind::SubOrchestrationCreated { .. } => "SubOrchestrationInstanceCreated",
            EventKind::SubOrchestrationCompleted { .. } => "SubOrchestrationInstanceCompleted",
            EventKind::SubOrchestrationFailed { .. } => "SubOrchestrationInstanceFailed",
            EventKind::TimerCreated { .. } => "TimerCreated",
            EventKind::TimerFired { .. } => "TimerFired",
            EventKind::EventRaised { .. } => "EventRaised",
            EventKind::EventSent { .. } => "EventSent",
        }
    }
}

/// The orchestration that started a sub-orchestration, and where to report back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentInstance {
    /// Parent instance id.
    pub instance_id: String,
    /// Parent execution id (completions go to this execution only).
    pub execution_id: String,
    /// The parent's `SubOrchestrationCreated` sequence number.
    pub task_id: TaskId,
}

/// The W3C trace context of an execution (distributed tracing). The engine only stores it; the
/// runtime gives it meaning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// W3C `traceparent` naming the execution's own span: `00-{trace id}-{span id}-{flags}`.
    pub traceparent: String,
    /// The id of the span it is a child of (the caller's, or the parent orchestration's), as 16
    /// hex digits; `None` for the root of a trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// W3C `tracestate` handed on from the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// Why an activity, sub-orchestration or orchestration failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureDetails {
    /// A short classification, e.g. `"ActivityError"`, `"Panic"`, `"Nondeterminism"`.
    pub error_type: String,
    /// The human-readable message.
    pub message: String,
    /// Optional extra detail (a cause chain, a stack, an upstream error body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// When true, retry policies do not retry this failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_retriable: bool,
}

impl FailureDetails {
    /// A failure of `error_type` with `message`.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        FailureDetails {
            error_type: error_type.into(),
            message: message.into(),
            details: None,
            non_retriable: false,
        }
    }

    /// Marks the failure as not worth retrying.
    pub fn non_retriable(mut self) -> Self {
        self.non_retriable = true;
        self
    }

    /// Adds detail text.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }
}

impl fmt::Display for FailureDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The runtime status of an orchestration instance (Durable Functions names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuntimeStatus {
    /// Created; its first turn has not run yet.
    Pending,
    /// Started and not finished.
    Running,
    /// Returned an output.
    Completed,
    /// Ended with an error.
    Failed,
    /// Stopped from outside.
    Terminated,
    /// Paused from outside; events are kept until resumed.
    Suspended,
    /// Restarted itself with a new input; the next execution has not run yet.
    ContinuedAsNew,
}

impl RuntimeStatus {
    /// All statuses, in a stable order.
    pub const ALL: [RuntimeStatus; 7] = [
        RuntimeStatus::Pending,
        RuntimeStatus::Running,
        RuntimeStatus::Completed,
        RuntimeStatus::Failed,
        RuntimeStatus::Terminated,
        RuntimeStatus::Suspended,
        RuntimeStatus::ContinuedAsNew,
    ];

    /// True for Completed, Failed and Terminated: nothing will happen to the instance any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, RuntimeStatus::Completed | RuntimeStatus::Failed | RuntimeStatus::Terminated)
    }

    /// The Durable Functions name, e.g. `"Running"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeStatus::Pending => "Pending",
            RuntimeStatus::Running => "Running",
            RuntimeStatus::Completed => "Completed",
            RuntimeStatus::Failed => "Failed",
            RuntimeStatus::Terminated => "Terminated",
            RuntimeStatus::Suspended => "Suspended",
            RuntimeStatus::ContinuedAsNew => "ContinuedAsNew",
        }
    }

    /// Parses a Durable Functions status name (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        RuntimeStatus::ALL.into_iter().find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for RuntimeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Timestamps in stored histories and messages: integer microseconds since the Unix epoch
/// (compact, and far cheaper to write than RFC 3339 text). RFC 3339 strings are accepted too.
pub(crate) mod micros {
    use jiff::Timestamp;
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    /// Serializes `t` as microseconds.
    pub(crate) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.as_microsecond())
    }

    /// Deserializes microseconds (or an RFC 3339 string).
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        struct Micros;
        impl Visitor<'_> for Micros {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("microseconds since the Unix epoch or an RFC 3339 timestamp")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Timestamp::from_microsecond(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v).map_err(E::custom).and_then(|v| self.visit_i64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_and_classify() {
        for s in RuntimeStatus::ALL {
            assert_eq!(RuntimeStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(RuntimeStatus::parse("completed"), Some(RuntimeStatus::Completed));
        assert_eq!(RuntimeStatus::parse("Nope"), None);
        assert!(RuntimeStatus::Terminated.is_terminal());
        assert!(!RuntimeStatus::Suspended.is_terminal());
        assert!(!RuntimeStatus::ContinuedAsNew.is_terminal());
    }

    #[test]
    fn execution_started_without_a_trace_context_still_loads() {
        let old = r#"{"ts":1767323045000000,"e":{"ExecutionStarted":{"name":"A"}}}"#;
        let e: HistoryEvent = serde_json::from_str(old).unwrap();
        assert!(matches!(e.kind, EventKind::ExecutionStarted { trace: None, .. }));
        assert_eq!(serde_json::to_string(&e).unwrap(), old, "no trace, nothing written");
        let traced = EventKind::ExecutionStarted {
            name: "A".into(),
            input: None,
            parent: None,
            trace: Some(TraceContext {
                traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
                parent_span_id: Some("00f067aa0ba902b7".into()),
                tracestate: None,
            }),
        };
        let e = HistoryEvent::new(e.timestamp, traced);
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<HistoryEvent>(&s).unwrap(), e);
    }

    #[test]
    fn events_serialize_compactly() {
        let e = HistoryEvent::new(
            "2026-01-02T03:04:05Z".parse().unwrap(),
            EventKind::TaskScheduled { id: 0, name: "A".into(), input: None },
        );
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(s, r#"{"ts":1767323045000000,"e":{"TaskScheduled":{"id":0,"name":"A"}}}"#);
        assert_eq!(serde_json::from_str::<HistoryEvent>(&s).unwrap(), e);
        let o = HistoryEvent::new(e.timestamp, EventKind::OrchestratorStarted);
        let s = serde_json::to_string(&o).unwrap();
        assert_eq!(s, r#"{"ts":1767323045000000,"e":"OrchestratorStarted"}"#);
        // The text form is accepted too, and sub-microsecond digits are not kept.
        let text = r#"{"ts":"2026-01-02T03:04:05.123456789Z","e":"OrchestratorStarted"}"#;
        let parsed: HistoryEvent = serde_json::from_str(text).unwrap();
        assert_eq!(parsed.timestamp.as_microsecond(), 1767323045123456);
    }
}
