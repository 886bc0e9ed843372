//! Sub-orchestrations: `call_sub_orchestrator[_with_id|_with_retry]`, recorded as
//! `SubOrchestrationInstanceCreated`, completed by `SubOrchestrationInstanceCompleted` /
//! `…Failed`; the runtime creates the child instance with the turn's commit.

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

/// A started sub-orchestration; resolves to its decoded output or its failure.
#[must_use = "a sub-orchestration result must be awaited"]
pub struct SubOrchestrationCall<T>(TaskCall<T>);

impl<T: DeserializeOwned> Future for SubOrchestrationCall<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.poll_task(cx)
    }
}

impl OrchestrationContext {
    /// Starts the orchestrator `name` as a child with a generated instance id
    /// (`"{execution_id}:{sequence}"`) and waits for its output.
    pub fn call_sub_orchestrator<T: DeserializeOwned, I: Serialize + ?Sized>(
        &self,
        name: &str,
        input: &I,
    ) -> SubOrchestrationCall<T> {
        self.call_sub_orchestrator_inner(name, None, input)
    }

    /// Starts the orchestrator `name` as a child with the given instance id.
    pub fn call_sub_orchestrator_with_id<T: DeserializeOwned, I: Serialize + ?Sized>(
        &self,
        name: &str,
        instance_id: &str,
        input: &I,
    ) -> SubOrchestrationCall<T> {
        self.call_sub_orchestrator_inner(name, Some(instance_id), input)
    }

    fn call_sub_orchestrator_inner<T: DeserializeOwned, I: Serialize + ?Sized>(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: &I,
    ) -> SubOrchestrationCall<T> {
        match encode_input(input, &format!("sub-orchestration '{name}'")) {
            Ok(payload) => self.schedule_sub_orchestration(name, instance_id, payload),
            Err(e) => SubOrchestrationCall(TaskCall::failed(self.clone(), e)),
        }
    }

    /// Like [`call_sub_orchestrator`](Self::call_sub_orchestrator) (or `_with_id` when
    /// `instance_id` is given), retrying failures per `policy`.
    pub fn call_sub_orchestrator_with_retry<T: DeserializeOwned + Send + 'static, I: Serialize + ?Sized>(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: &I,
        policy: RetryPolicy,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'static {
        let ctx = self.clone();
        let name = name.to_owned();
        let instance_id = instance_id.map(str::to_owned);
        let first = encode_input(input, &format!("sub-orchestration '{name}'")).and_then(|payload| {
            policy.validate().map_err(Error::msg)?;
            let first = self.schedule_sub_orchestration::<T>(&name, instance_id.as_deref(), payload.clone());
            Ok((first, move || {
                ctx.schedule_sub_orchestration::<T>(&name, instance_id.as_deref(), payload.clone())
            }))
        });
        super::retrying::retrying(self.clone(), policy, first)
    }

    fn schedule_sub_orchestration<T: DeserializeOwned>(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: Option<Payload>,
    ) -> SubOrchestrationCall<T> {
        let mut st = self.state();
        let child_id = match instance_id {
            Some(id) => id.to_owned(),
            None => format!("{}:{}", self.execution_id(), st.tasks.next_id),
        };
        let kind = ActionKind::SubOrchestration { name: name.to_owned(), instance_id: child_id.clone() };
        let (id, _) = st.schedule(kind, |id, now| {
            (
                HistoryEvent::new(
                    now,
                    EventKind::SubOrchestrationCreated {
                        id,
                        name: name.to_owned(),
                        instance_id: child_id.clone(),
                        input: input.clone(),
                    },
                ),
                Action::StartSubOrchestration { id, name: name.to_owned(), instance_id: child_id, input },
            )
        });
        drop(st);
        SubOrchestrationCall(TaskCall::new(self.clone(), id, format!("output of sub-orchestration '{name}'")))
    }
}

/// The instance ids of the children the execution still waits for (terminated with it).
pub(crate) fn open_children(st: &State) -> Vec<String> {
    st.tasks
        .open
        .values()
        .filter_map(|k| match k {
            ActionKind::SubOrchestration { instance_id, .. } => Some(instance_id.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn recorded(kind: &EventKind) -> Option<(TaskId, ActionKind)> {
    match kind {
        EventKind::SubOrchestrationCreated { id, name, instance_id, .. } => {
            Some((*id, ActionKind::SubOrchestration { name: name.clone(), instance_id: instance_id.clone() }))
        }
        _ => None,
    }
}

pub(super) fn accepts(st: &State, kind: &EventKind) -> Option<bool> {
    match kind {
        EventKind::SubOrchestrationCompleted { task_id, .. }
        | EventKind::SubOrchestrationFailed { task_id, .. } => {
            Some(matches!(st.tasks.open.get(task_id), Some(ActionKind::SubOrchestration { .. })))
        }
        _ => None,
    }
}

pub(super) fn deliver(st: &mut State, kind: &EventKind) -> bool {
    let (task_id, outcome) = match kind {
        EventKind::SubOrchestrationCompleted { task_id, result } => {
            (task_id, Outcome::Completed(result.clone()))
        }
        EventKind::SubOrchestrationFailed { task_id, failure } => (task_id, Outcome::Failed(failure.clone())),
        _ => return false,
    };
    st.tasks.open.remove(task_id);
    st.tasks.outcomes.insert(*task_id, outcome);
    true
}

pub(super) fn payload(kind: &EventKind) -> Option<(String, Option<&Payload>)> {
    match kind {
        EventKind::SubOrchestrationCreated { name, input, .. } => {
            Some((format!("the input of sub-orchestration '{name}'"), input.as_ref()))
        }
        _ => None,
    }
}
