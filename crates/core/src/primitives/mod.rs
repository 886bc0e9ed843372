//! The durable primitives, one module each: what orchestrator code can schedule or wait for.
//!
//! Each module owns everything about its primitive in the engine: the context methods that
//! schedule it (and so its [`ActionKind`], the history event that records it and the [`Action`]
//! the runtime carries out), the future the code awaits, and how the engine accepts and delivers
//! the events that complete it (live or replayed). The functions here route by event kind to
//! the module that owns it.
//!
//! Adding a primitive: a module here (its `ActionKind` variant, `recorded`, `accepts`,
//! `deliver`, `payload` and its context methods and future), its history events in
//! `history.rs`, its action in `action.rs`; outside core, what the runtime turns the action
//! into (`durable-runtime`'s `build_commit`) and, if it needs new durable state, the store
//! contract and the stores.
//!
//! [`Action`]: crate::Action

pub(crate) mod activity;
pub(crate) mod external_event;
pub(crate) mod retrying;
pub(crate) mod send_event;
pub(crate) mod sub_orchestration;
pub(crate) mod timer;

use crate::context::OrchestrationContext;
use crate::error::Error;
use crate::history::{EventKind, TaskId};
use crate::payload::Payload;
use crate::state::{Outcome, State};
use serde::de::DeserializeOwned;
use std::fmt;
use std::marker::PhantomData;
use std::task::{Context, Poll};

/// What kind of action a sequence number belongs to (what replay matches code against).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ActionKind {
    Activity { name: String },
    Timer,
    SubOrchestration { name: String, instance_id: String },
    SendEvent { name: String, instance_id: String },
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionKind::Activity { name } => write!(f, "ScheduleActivity(\"{name}\")"),
            ActionKind::Timer => f.write_str("CreateTimer"),
            ActionKind::SubOrchestration { name, instance_id } => {
                write!(f, "StartSubOrchestration(\"{name}\", id \"{instance_id}\")")
            }
            ActionKind::SendEvent { name, instance_id } => {
                write!(f, "SendEvent(\"{name}\" to \"{instance_id}\")")
            }
        }
    }
}

/// The action a history event records, when it records one (`TaskScheduled`, ...).
pub(crate) fn recorded(kind: &EventKind) -> Option<(TaskId, ActionKind)> {
    activity::recorded(kind)
        .or_else(|| timer::recorded(kind))
        .or_else(|| sub_orchestration::recorded(kind))
        .or_else(|| send_event::recorded(kind))
}

/// Whether a primitive's inbound event is valid now (a completion must match an open task of
/// its kind, an event copy must be new); `None` when no primitive owns the event.
pub(crate) fn accepts(st: &State, kind: &EventKind) -> Option<bool> {
    activity::accepts(st, kind)
        .or_else(|| timer::accepts(st, kind))
        .or_else(|| sub_orchestration::accepts(st, kind))
        .or_else(|| external_event::accepts(st, kind))
}

/// Hands an accepted inbound event to the primitive that owns it and wakes the code; false
/// when no primitive owns the event.
pub(crate) fn deliver(st: &mut State, kind: &EventKind) -> bool {
    let delivered = activity::deliver(st, kind)
        || timer::deliver(st, kind)
        || sub_orchestration::deliver(st, kind)
        || external_event::deliver(st, kind);
    if delivered {
        st.wake_all();
    }
    delivered
}

/// The payload an action's history event carries, with what it is, for the size limit.
pub(crate) fn payload(kind: &EventKind) -> Option<(String, Option<&Payload>)> {
    activity::payload(kind).or_else(|| sub_orchestration::payload(kind)).or_else(|| send_event::payload(kind))
}

/// Decodes a result or event payload (a missing one decodes from `null`).
pub(crate) fn decode<T: DeserializeOwned>(payload: Option<&Payload>, what: &str) -> Result<T, Error> {
    let text = payload.map_or("null", Payload::as_str);
    serde_json::from_str(text).map_err(|e| Error::Decode { what: what.to_owned(), message: e.to_string() })
}

/// A task that completes with an outcome (an activity or a sub-orchestration): the future
/// behind [`ActivityCall`](activity::ActivityCall) and
/// [`SubOrchestrationCall`](sub_orchestration::SubOrchestrationCall).
pub(crate) struct TaskCall<T> {
    ctx: OrchestrationContext,
    /// `None` when the call could not be scheduled (`error` says why).
    pub(crate) id: Option<TaskId>,
    error: Option<Error>,
    what: String,
    _output: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> TaskCall<T> {
    pub(crate) fn new(ctx: OrchestrationContext, id: TaskId, what: String) -> Self {
        TaskCall { ctx, id: Some(id), error: None, what, _output: PhantomData }
    }

    pub(crate) fn failed(ctx: OrchestrationContext, error: Error) -> Self {
        TaskCall { ctx, id: None, error: Some(error), what: String::new(), _output: PhantomData }
    }

    pub(crate) fn poll_task(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, Error>> {
        if let Some(e) = self.error.take() {
            return Poll::Ready(Err(e));
        }
        let Some(id) = self.id else { return Poll::Pending };
        let mut st = self.ctx.state();
        match st.tasks.outcomes.remove(&id) {
            Some(Outcome::Completed(payload)) => {
                drop(st);
                Poll::Ready(decode(payload.as_ref(), &self.what))
            }
            Some(Outcome::Failed(failure)) => Poll::Ready(Err(Error::Failed(failure))),
            None => {
                st.park(cx.waker());
                Poll::Pending
            }
        }
    }
}
