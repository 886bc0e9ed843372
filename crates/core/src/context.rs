//! [`OrchestrationContext`]: everything orchestrator code may use to interact with the world.
//!
//! Every method is deterministic under replay. Scheduling methods (`call_activity`,
//! `create_timer`, `call_sub_orchestrator`, `send_event`) take the next sequence number and
//! record the action *when they are called*, not when the returned future is first polled, so the
//! order of actions is the order of calls in the code.

use crate::action::Action;
use crate::error::{Error, codes};
use crate::history::{EventKind, HistoryEvent, ParentInstance, TaskId};
use crate::payload::Payload;
use crate::retry::RetryPolicy;
use crate::tasks::{ActivityCall, ContinueAsNewPending, ExternalEvent, SubOrchestrationCall, Timer};
use crate::{Either, select};
use jiff::Timestamp;
use parking_lot::{Mutex, MutexGuard};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::Waker;
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

/// What kind of action a sequence number belongs to.
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

impl ActionKind {
    /// The kind recorded by a history event, if it is a scheduling event.
    pub(crate) fn of_event(kind: &EventKind) -> Option<(TaskId, ActionKind)> {
        match kind {
            EventKind::TaskScheduled { id, name, .. } => {
                Some((*id, ActionKind::Activity { name: name.clone() }))
            }
            EventKind::TimerCreated { id, .. } => Some((*id, ActionKind::Timer)),
            EventKind::SubOrchestrationCreated { id, name, instance_id, .. } => Some((
                *id,
                ActionKind::SubOrchestration { name: name.clone(), instance_id: instance_id.clone() },
            )),
            EventKind::EventSent { id, name, instance_id, .. } => {
                Some((*id, ActionKind::SendEvent { name: name.clone(), instance_id: instance_id.clone() }))
            }
            _ => None,
        }
    }
}

/// The outcome of a scheduled task, waiting to be taken by its future.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Completed(Option<Payload>),
    Failed(crate::history::FailureDetails),
}

/// A raised event waiting in the buffer.
#[derive(Clone, Debug)]
pub(crate) struct BufferedEvent {
    pub(crate) seq: u64,
    pub(crate) name: String,
    pub(crate) input: Option<Payload>,
    pub(crate) id: Option<String>,
}

/// A `continue_as_new` request.
#[derive(Clone, Debug)]
pub(crate) struct ContinueAsNewRequest {
    pub(crate) input: Option<Payload>,
    pub(crate) preserve_unprocessed_events: bool,
}

/// Mutable replay state shared by the context, the durable futures and the engine.
pub(crate) struct State {
    pub(crate) now: Timestamp,
    pub(crate) replaying: bool,
    pub(crate) next_id: TaskId,
    guid_counter: u64,
    /// Scheduling actions recorded in the episode being replayed, not yet re-issued by the code.
    pub(crate) recorded: HashMap<TaskId, ActionKind>,
    /// Scheduled tasks that have not completed yet.
    pub(crate) open: HashMap<TaskId, ActionKind>,
    /// Outcomes of completed activities and sub-orchestrations, until their futures take them.
    pub(crate) outcomes: HashMap<TaskId, Outcome>,
    pub(crate) fired_timers: HashSet<TaskId>,
    pub(crate) cancelled_timers: HashSet<TaskId>,
    /// Raised events nobody has taken yet, FIFO per name (names compare case-insensitively).
    pub(crate) events: HashMap<String, VecDeque<BufferedEvent>>,
    /// Ids of the raised events this execution received (copies with a known id are dropped).
    pub(crate) raised_ids: HashSet<String>,
    pub(crate) wakers: Vec<Waker>,
    /// Actions and history events issued by the code in the current (live) episode.
    pub(crate) new_actions: Vec<Action>,
    pub(crate) new_events: Vec<HistoryEvent>,
    pub(crate) custom_status: Option<Payload>,
    pub(crate) continue_as_new: Option<ContinueAsNewRequest>,
    pub(crate) nondeterminism: Option<String>,
    /// A failure raised by the context itself (e.g. an unserializable `continue_as_new` input).
    pub(crate) fatal: Option<crate::history::FailureDetails>,
    /// Arrival counter of raised events, so carried-over events keep their order.
    pub(crate) event_seq: u64,
    /// Durable futures that returned `Pending` during the current poll.
    pub(crate) pending_polls: u32,
    /// Event names (lower-cased) a wait was pending on in the last poll.
    pub(crate) waiting_events: HashSet<String>,
}

impl State {
    pub(crate) fn new(now: Timestamp) -> Self {
        State {
            now,
            replaying: false,
            next_id: 0,
            guid_counter: 0,
            recorded: HashMap::new(),
            open: HashMap::new(),
            outcomes: HashMap::new(),
            fired_timers: HashSet::new(),
            cancelled_timers: HashSet::new(),
            events: HashMap::new(),
            raised_ids: HashSet::new(),
            wakers: Vec::new(),
            new_actions: Vec::new(),
            new_events: Vec::new(),
            custom_status: None,
            continue_as_new: None,
            nondeterminism: None,
            fatal: None,
            event_seq: 0,
            pending_polls: 0,
            waiting_events: HashSet::new(),
        }
    }

    /// Records that a durable future is waiting, so the engine knows the code can resume.
    pub(crate) fn park(&mut self, waker: &Waker) {
        self.pending_polls += 1;
        if !self.wakers.iter().any(|w| w.will_wake(waker)) {
            self.wakers.push(waker.clone());
        }
    }

    pub(crate) fn wake_all(&mut self) {
        for w in self.wakers.drain(..) {
            w.wake();
        }
    }

    fn flag_nondeterminism(&mut self, message: String) {
        if self.nondeterminism.is_none() {
            self.nondeterminism = Some(message);
        }
    }

    /// Takes the next sequence number for `kind`, matching it against history when replaying.
    /// Returns the id and whether the action is new (must be carried out).
    fn schedule(&mut self, kind: ActionKind) -> (TaskId, bool) {
        let id = self.next_id;
        self.next_id += 1;
        let is_new = match self.recorded.remove(&id) {
            Some(recorded) => {
                if recorded != kind {
                    self.flag_nondeterminism(format!(
                        "[{}] nondeterminism: expected {recorded} at position {id}, got {kind}",
                        codes::NONDETERMINISM
                    ));
                }
                false
            }
            None if self.replaying => {
                self.flag_nondeterminism(format!(
                    "[{}] nondeterminism: the code issued {kind} at position {id}, \
                     but the recorded history has no action there",
                    codes::NONDETERMINISM
                ));
                false
            }
            None => true,
        };
        self.open.insert(id, kind);
        (id, is_new)
    }
}

/// Options for [`OrchestrationContext::continue_as_new_with_options`].
#[derive(Clone, Debug, Default)]
pub struct ContinueAsNewOptions {
    /// Re-deliver raised events nobody consumed to the new execution (default: false, as the
    /// Durable Functions in-process SDK).
    pub preserve_unprocessed_events: bool,
}

fn encode_input<I: Serialize + ?Sized>(input: &I, what: &str) -> Result<Option<Payload>, Error> {
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
        let n = st.guid_counter;
        st.guid_counter += 1;
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

    /// Schedules the activity `name` with `input`. Await the result; an activity error comes back
    /// as [`Error::Failed`].
    pub fn call_activity<T: DeserializeOwned, I: Serialize + ?Sized>(
        &self,
        name: &str,
        input: &I,
    ) -> ActivityCall<T> {
        match encode_input(input, &format!("activity '{name}'")) {
            Ok(payload) => self.schedule_activity(name, payload),
            Err(e) => ActivityCall::failed(self.clone(), e),
        }
    }

    fn schedule_activity<T: DeserializeOwned>(&self, name: &str, input: Option<Payload>) -> ActivityCall<T> {
        let mut st = self.state();
        let (id, is_new) = st.schedule(ActionKind::Activity { name: name.to_owned() });
        if is_new {
            let now = st.now;
            st.new_events.push(HistoryEvent::new(
                now,
                EventKind::TaskScheduled { id, name: name.to_owned(), input: input.clone() },
            ));
            st.new_actions.push(Action::ScheduleActivity { id, name: name.to_owned(), input });
        }
        drop(st);
        ActivityCall::new(self.clone(), id, format!("result of activity '{name}'"))
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
        let encoded = encode_input(input, &format!("activity '{name}'"));
        let first = match (&encoded, policy.validate()) {
            (Ok(payload), Ok(())) => Some(self.schedule_activity::<T>(&name, payload.clone())),
            _ => None,
        };
        async move {
            let payload = encoded?;
            policy.validate().map_err(Error::msg)?;
            let Some(first) = first else { unreachable!("scheduled above when valid") };
            let started = ctx.current_utc_datetime();
            let mut attempt = 1;
            let mut result = first.await;
            loop {
                let err = match result {
                    Ok(v) => return Ok(v),
                    Err(e) => e,
                };
                if err.failure().is_some_and(|f| f.non_retriable) {
                    return Err(err);
                }
                let elapsed = ctx.elapsed_since(started);
                let Some(delay) = policy.next_delay(attempt, elapsed) else {
                    return Err(err);
                };
                ctx.create_timer(ctx.current_utc_datetime() + delay).await;
                attempt += 1;
                result = ctx.schedule_activity::<T>(&name, payload.clone()).await;
            }
        }
    }

    fn elapsed_since(&self, start: Timestamp) -> Duration {
        let now = self.current_utc_datetime();
        Duration::try_from(now.duration_since(start)).unwrap_or(Duration::ZERO)
    }

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
            Err(e) => SubOrchestrationCall::failed(self.clone(), e),
        }
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
            None => format!("{}:{}", self.shared.execution_id, st.next_id),
        };
        let (id, is_new) = st
            .schedule(ActionKind::SubOrchestration { name: name.to_owned(), instance_id: child_id.clone() });
        if is_new {
            let now = st.now;
            st.new_events.push(HistoryEvent::new(
                now,
                EventKind::SubOrchestrationCreated {
                    id,
                    name: name.to_owned(),
                    instance_id: child_id.clone(),
                    input: input.clone(),
                },
            ));
            st.new_actions.push(Action::StartSubOrchestration {
                id,
                name: name.to_owned(),
                instance_id: child_id,
                input,
            });
        }
        drop(st);
        SubOrchestrationCall::new(self.clone(), id, format!("output of sub-orchestration '{name}'"))
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
        let encoded = encode_input(input, &format!("sub-orchestration '{name}'"));
        let first = match (&encoded, policy.validate()) {
            (Ok(payload), Ok(())) => {
                Some(self.schedule_sub_orchestration::<T>(&name, instance_id.as_deref(), payload.clone()))
            }
            _ => None,
        };
        async move {
            let payload = encoded?;
            policy.validate().map_err(Error::msg)?;
            let Some(first) = first else { unreachable!("scheduled above when valid") };
            let started = ctx.current_utc_datetime();
            let mut attempt = 1;
            let mut result = first.await;
            loop {
                let err = match result {
                    Ok(v) => return Ok(v),
                    Err(e) => e,
                };
                if err.failure().is_some_and(|f| f.non_retriable) {
                    return Err(err);
                }
                let Some(delay) = policy.next_delay(attempt, ctx.elapsed_since(started)) else {
                    return Err(err);
                };
                ctx.create_timer(ctx.current_utc_datetime() + delay).await;
                attempt += 1;
                result =
                    ctx.schedule_sub_orchestration::<T>(&name, instance_id.as_deref(), payload.clone()).await;
            }
        }
    }

    /// Creates a durable timer that fires at `fire_at`. Await it (by value or by reference), pass
    /// it to `select`, and [`Timer::cancel`] it when it is no longer needed.
    pub fn create_timer(&self, fire_at: Timestamp) -> Timer {
        let mut st = self.state();
        let (id, is_new) = st.schedule(ActionKind::Timer);
        if is_new {
            let now = st.now;
            st.new_events.push(HistoryEvent::new(now, EventKind::TimerCreated { id, fire_at }));
            st.new_actions.push(Action::CreateTimer { id, fire_at });
        }
        drop(st);
        Timer::new(self.clone(), id, fire_at)
    }

    /// A durable timer that fires `delay` after the current time.
    pub fn sleep(&self, delay: Duration) -> Timer {
        self.create_timer(self.current_utc_datetime() + delay)
    }

    /// Waits for the next external event called `name` (case-insensitive). Events raised before
    /// anyone waits are buffered first-in first-out per name and handed to later waits.
    pub fn wait_for_external_event<T: DeserializeOwned>(&self, name: &str) -> ExternalEvent<T> {
        ExternalEvent::new(self.clone(), name)
    }

    /// Waits for the event at most `timeout`; on expiry returns [`Error::Timeout`]. The timer is
    /// cancelled when the event wins.
    pub fn wait_for_external_event_with_timeout<T: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'static {
        let event = self.wait_for_external_event::<T>(name);
        let timer = self.sleep(timeout);
        let name = name.to_owned();
        async move {
            match select(event, &timer).await {
                Either::Left(result) => {
                    timer.cancel();
                    result
                }
                Either::Right(()) => Err(Error::Timeout { event: name }),
            }
        }
    }

    /// Waits for the event at most `timeout`; on expiry returns `default`.
    pub fn wait_for_external_event_or_default<T: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
        timeout: Duration,
        default: T,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'static {
        let wait = self.wait_for_external_event_with_timeout::<T>(name, timeout);
        async move {
            match wait.await {
                Err(Error::Timeout { .. }) => Ok(default),
                other => other,
            }
        }
    }

    /// Raises the event `name` on another instance (fire and forget; delivery is durable).
    pub fn send_event<I: Serialize + ?Sized>(
        &self,
        instance_id: &str,
        name: &str,
        data: &I,
    ) -> Result<(), Error> {
        let input = encode_input(data, &format!("event '{name}'"))?;
        let mut st = self.state();
        let (id, is_new) =
            st.schedule(ActionKind::SendEvent { name: name.to_owned(), instance_id: instance_id.to_owned() });
        // A sent event needs no completion.
        st.open.remove(&id);
        if is_new {
            let now = st.now;
            st.new_events.push(HistoryEvent::new(
                now,
                EventKind::EventSent {
                    id,
                    instance_id: instance_id.to_owned(),
                    name: name.to_owned(),
                    input: input.clone(),
                },
            ));
            st.new_actions.push(Action::SendEvent {
                id,
                instance_id: instance_id.to_owned(),
                name: name.to_owned(),
                input,
            });
        }
        Ok(())
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
                st.continue_as_new = Some(ContinueAsNewRequest {
                    input,
                    preserve_unprocessed_events: options.preserve_unprocessed_events,
                });
            }
            Err(e) => st.fatal = Some(e.to_failure()),
        }
        ContinueAsNewPending::new()
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

    /// Cancels timer `id` if it has not fired (used by [`Timer::cancel`]).
    pub(crate) fn cancel_timer(&self, id: TaskId) {
        let mut st = self.state();
        if st.fired_timers.contains(&id) || !st.cancelled_timers.insert(id) {
            return;
        }
        st.open.remove(&id);
        // A timer created in this live episode never reaches the store; drop its action. A
        // timer from an earlier turn must be deleted from the store. During replay the
        // cancellation was carried out when the episode first ran.
        if let Some(pos) =
            st.new_actions.iter().position(|a| matches!(a, Action::CreateTimer { id: t, .. } if *t == id))
        {
            st.new_actions.remove(pos);
        } else if !st.replaying {
            st.new_actions.push(Action::CancelTimer { id });
        }
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
