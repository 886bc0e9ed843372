//! Sending an event to another instance: `send_event`, recorded as `EventSent`. Fire and
//! forget: the message is delivered durably with the turn's commit, and nothing completes it.

use super::ActionKind;
use crate::action::Action;
use crate::context::{OrchestrationContext, encode_input};
use crate::error::Error;
use crate::history::{EventKind, HistoryEvent, TaskId};
use crate::payload::Payload;
use serde::Serialize;

impl OrchestrationContext {
    /// Raises the event `name` on another instance (fire and forget; delivery is durable).
    pub fn send_event<I: Serialize + ?Sized>(
        &self,
        instance_id: &str,
        name: &str,
        data: &I,
    ) -> Result<(), Error> {
        let input = encode_input(data, &format!("event '{name}'"))?;
        let kind = ActionKind::SendEvent { name: name.to_owned(), instance_id: instance_id.to_owned() };
        let mut st = self.state();
        let (id, _) = st.schedule(kind, |id, now| {
            let (instance_id, name) = (instance_id.to_owned(), name.to_owned());
            (
                HistoryEvent::new(
                    now,
                    EventKind::EventSent {
                        id,
                        instance_id: instance_id.clone(),
                        name: name.clone(),
                        input: input.clone(),
                    },
                ),
                Action::SendEvent { id, instance_id, name, input },
            )
        });
        // A sent event needs no completion.
        st.tasks.open.remove(&id);
        Ok(())
    }
}

pub(super) fn recorded(kind: &EventKind) -> Option<(TaskId, ActionKind)> {
    match kind {
        EventKind::EventSent { id, name, instance_id, .. } => {
            Some((*id, ActionKind::SendEvent { name: name.clone(), instance_id: instance_id.clone() }))
        }
        _ => None,
    }
}

pub(super) fn payload(kind: &EventKind) -> Option<(String, Option<&Payload>)> {
    match kind {
        EventKind::EventSent { name, input, .. } => {
            Some((format!("the data of event '{name}'"), input.as_ref()))
        }
        _ => None,
    }
}
