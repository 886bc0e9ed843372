//! Activities: `call_activity[_with_retry]`, recorded as `TaskScheduled`, completed by
//! `TaskCompleted` / `TaskFailed`, carried out by the runtime's activity dispatcher.

use super::{ActionKind, TaskCall};
use crate::action::Action;
use crate::context::{OrchestrationContext, encode_input};
use crate::error::Error;
use crate::history::{EventKind, HistoryEvent, TaskId};
use crate::payload::Payload;
use crate::retry::RetryPolicy;
use crate::state::{Outcome, State};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A scheduled activity; resolves to its decoded output or its failure.
#[must_use = "an activity result must be awaited (or the call is fire-and-forget by intent)"]
pub struct ActivityCall<T>(TaskCall<T>);

impl<T> ActivityCall<T> {
    /// The action's sequence number (`None` if the input could not be serialized).
    pub fn id(&self) -> Option<TaskId> {
        self.0.id
    }
}

impl<T: DeserializeOwned> Future for ActivityCall<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.poll_task(cx)
    }
}

impl OrchestrationContext {
    /// Schedules the activity `name` with `input`. Await the result; an activity error comes back
    /// as [`Error::Failed`].
    pub fn call_activity<T: DeserializeOwned, I: Serialize + ?Sized>(
        &self,
        name: &str,
        input: &I,
    ) -> ActivityCall<T> {
        match encode_input(input, &format!("activity '{name}'")) {
            Ok(payload) => self.schedule_activity(name, payload),
            Err(e) => ActivityCall(TaskCall::failed(self.clone(), e)),
        }
    }

    /// Like [`call_activity`](Self::call_activity), retrying failures per `policy` with durable
    /// timers between attempts. The first attempt is scheduled at once.
    pub fn call_activity_with_retry<T: DeserializeOwned + Send + 'static, I: Serialize + ?Sized>(
        &self,
        name: &str,
        input: &I,
        policy: RetryPolicy,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'static {
        let ctx = self.clone();
        let name = name.to_owned();
        let first = encode_input(input, &format!("activity '{name}'")).and_then(|payload| {
            policy.validate().map_err(Error::msg)?;
            let first = self.schedule_activity::<T>(&name, payload.clone());
            Ok((first, move || ctx.schedule_activity::<T>(&name, payload.clone())))
        });
        super::retrying::retrying(self.clone(), policy, first)
    }

    fn schedule_activity<T: DeserializeOwned>(&self, name: &str, input: Option<Payload>) -> ActivityCall<T> {
        let (id, _) = self.state().schedule(ActionKind::Activity { name: name.to_owned() }, |id, now| {
            (
                HistoryEvent::new(
                    now,
                    EventKind::TaskScheduled { id, name: name.to_owned(), input: input.clone() },
                ),
                Action::ScheduleActivity { id, name: name.to_owned(), input },
            )
        });
        ActivityCall(TaskCall::new(self.clone(), id, format!("result of activity '{name}'")))
    }
}

pub(super) fn recorded(kind: &EventKind) -> Option<(TaskId, ActionKind)> {
    match kind {
        EventKind::TaskScheduled { id, name, .. } => Some((*id, ActionKind::Activity { name: name.clone() })),
        _ => None,
    }
}

pub(super) fn accepts(st: &State, kind: &EventKind) -> Option<bool> {
    match kind {
        EventKind::TaskCompleted { task_id, .. } | EventKind::TaskFailed { task_id, .. } => {
            Some(matches!(st.tasks.open.get(task_id), Some(ActionKind::Activity { .. })))
        }
        _ => None,
    }
}

pub(super) fn deliver(st: &mut State, kind: &EventKind) -> bool {
    let (task_id, outcome) = match kind {
        EventKind::TaskCompleted { task_id, result } => (task_id, Outcome::Completed(result.clone())),
        EventKind::TaskFailed { task_id, failure } => (task_id, Outcome::Failed(failure.clone())),
        _ => return false,
    };
    st.tasks.open.remove(task_id);
    st.tasks.outcomes.insert(*task_id, outcome);
    true
}

pub(super) fn payload(kind: &EventKind) -> Option<(String, Option<&Payload>)> {
    match kind {
        EventKind::TaskScheduled { name, input, .. } => {
            Some((format!("the input of activity '{name}'"), input.as_ref()))
        }
        _ => None,
    }
}
