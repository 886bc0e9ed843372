//! [`OrchestrationContext`]: everything orchestrator code may use to interact with the world.
//!
//! Every method is deterministic under replay. This module holds what belongs to the execution
//! as a whole (identity, the turn's clock, GUIDs, custom status, logging, `continue_as_new`);
//! each durable primitive adds its own methods in its module under `primitives/` (activities,
//! timers, sub-orchestrations, external events, sent events). Scheduling methods take the next
//! sequence number and record the action *when they are called*, not when the returned future
//! is first polled, so the order of actions is the order of calls in the code.

use crate::error::Error;
use crate::history::ParentInstance;
use crate::payload::Payload;
use crate::state::{ContinueAsNewRequest, State};
use jiff::Timestamp;
use parking_lot::{Mutex, MutexGuard};
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Namespace of the name-based UUIDs returned by [`OrchestrationContext::new_guid`].
const GUID_NAMESPACE: uuid::Uuid = uuid::uuid!("9e952959-5e33-4daf-827f-2fa12937b875");

/// The handle orchestrator code receives. Cheap to clone.
#[derive(Clone)]
pub struct OrchestrationContext {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) instance_id: String,
    pub(crate) execution_id: String,
    pub(crate) name: String,
    pub(crate) parent: Option<ParentInstance>,
    pub(crate) state: Mutex<State>,
}

/// Options for [`OrchestrationContext::continue_as_new_with_options`].
#[derive(Clone, Debug, Default)]
pub struct ContinueAsNewOptions {
    /// Re-deliver raised events nobody consumed to the new execution (default: false, as the
    /// Durable Functions in-process SDK).
    pub preserve_unprocessed_events: bool,
}

/// Serializes the input of a scheduling call; the error names the call.
pub(crate) fn encode_input<I: Serialize + ?Sized>(input: &I, what: &str) -> Result<Option<Payload>, Error> {
    Payload::from_value(input)
        .map(Some)
        .map_err(|e| Error::Decode { what: format!("input of {what}"), message: e.to_string() })
}

impl OrchestrationContext {
    pub(crate) fn new(
        instance_id: String,
        execution_id: String,
        name: String,
        parent: Option<ParentInstance>,
        state: State,
    ) -> Self {
        OrchestrationContext {
            shared: Arc::new(Shared { instance_id, execution_id, name, parent, state: Mutex::new(state) }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock()
    }

    /// The instance id.
    pub fn instance_id(&self) -> &str {
        &self.shared.instance_id
    }

    /// The id of this execution (a new one after every `continue_as_new`).
    pub fn execution_id(&self) -> &str {
        &self.shared.execution_id
    }

    /// The orchestrator name this instance runs.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The parent orchestration, when this one runs as a sub-orchestration.
    pub fn parent(&self) -> Option<&ParentInstance> {
        self.shared.parent.as_ref()
    }

    /// The current time of the turn: the same value on every replay.
    pub fn current_utc_datetime(&self) -> Timestamp {
        self.state().now
    }

    /// True while the code re-executes recorded history (use it to avoid duplicate logs).
    pub fn is_replaying(&self) -> bool {
        self.state().replaying
    }

    /// A name-based (v5) UUID that is the same on every replay.
    pub fn new_guid(&self) -> uuid::Uuid {
        let mut st = self.state();
        let n = st.next_guid();
        let name = format!("{}_{}_{n}", self.shared.instance_id, st.now);
        uuid::Uuid::new_v5(&GUID_NAMESPACE, name.as_bytes())
    }

    /// Sets the custom status shown by status queries (any JSON value).
    pub fn set_custom_status<T: Serialize + ?Sized>(&self, status: &T) -> Result<(), Error> {
        let payload = Payload::from_value(status)?;
        self.state().custom_status = Some(payload);
        Ok(())
    }

    /// Clears the custom status.
    pub fn clear_custom_status(&self) {
        self.state().custom_status = None;
    }

    /// Ends this execution and starts a new one of the same instance with `input` (history is
    /// reset). Use it as the last expression: `ctx.continue_as_new(n + 1).await`.
    pub fn continue_as_new<I: Serialize + ?Sized, T>(&self, input: &I) -> ContinueAsNewPending<T> {
        self.continue_as_new_with_options(input, ContinueAsNewOptions::default())
    }

    /// [`continue_as_new`](Self::continue_as_new) with options.
    pub fn continue_as_new_with_options<I: Serialize + ?Sized, T>(
        &self,
        input: &I,
        options: ContinueAsNewOptions,
    ) -> ContinueAsNewPending<T> {
        let mut st = self.state();
        match encode_input(input, "continue_as_new") {
            Ok(input) => {
                st.output.continue_as_new = Some(ContinueAsNewRequest {
                    input,
                    preserve_unprocessed_events: options.preserve_unprocessed_events,
                });
            }
            Err(e) => st.output.fatal = Some(e.to_failure()),
        }
        ContinueAsNewPending { _output: PhantomData }
    }

    /// Logs at info level, except while replaying.
    pub fn log_info(&self, message: impl fmt::Display) {
        if !self.is_replaying() {
            tracing::info!(target: "durable::orchestration", instance_id = %self.instance_id(), "{message}");
        }
    }

    /// Logs at warn level, except while replaying.
    pub fn log_warn(&self, message: impl fmt::Display) {
        if !self.is_replaying() {
            tracing::warn!(target: "durable::orchestration", instance_id = %self.instance_id(), "{message}");
        }
    }

    /// Logs at error level, except while replaying.
    pub fn log_error(&self, message: impl fmt::Display) {
        if !self.is_replaying() {
            tracing::error!(target: "durable::orchestration", instance_id = %self.instance_id(), "{message}");
        }
    }

    /// Logs at debug level, except while replaying.
    pub fn log_debug(&self, message: impl fmt::Display) {
        if !self.is_replaying() {
            tracing::debug!(target: "durable::orchestration", instance_id = %self.instance_id(), "{message}");
        }
    }

    /// The turn time minus `start`, never negative.
    pub(crate) fn elapsed_since(&self, start: Timestamp) -> Duration {
        let now = self.current_utc_datetime();
        Duration::try_from(now.duration_since(start)).unwrap_or(Duration::ZERO)
    }
}

impl fmt::Debug for OrchestrationContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrchestrationContext")
            .field("instance_id", &self.shared.instance_id)
            .field("execution_id", &self.shared.execution_id)
            .field("name", &self.shared.name)
            .finish()
    }
}

/// Returned by `continue_as_new`: never completes; the engine ends the execution instead.
#[must_use = "await continue_as_new as the last expression of the orchestrator"]
pub struct ContinueAsNewPending<T> {
    _output: PhantomData<fn() -> T>,
}

impl<T> Future for ContinueAsNewPending<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        Poll::Pending
    }
}
