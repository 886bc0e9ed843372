//! The replay engine: runs one orchestration execution turn by turn.
//!
//! An [`Execution`] owns the orchestrator's future and its replay state. A runtime keeps it in
//! memory between turns (so a turn costs one poll, not a replay) and rebuilds it from history with
//! [`Execution::from_history`] when it is not cached. Both paths go through the same turn
//! logic, which is what guarantees that the cached and the replayed execution agree.

use crate::action::Action;
use crate::context::OrchestrationContext;
use crate::error::{Error, codes};
use crate::history::{EventKind, FailureDetails, HistoryEvent, ParentInstance, RuntimeStatus};
use crate::payload::Payload;
use crate::primitives::{self, sub_orchestration};
use crate::state::{State, TurnOutput};
use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// What an orchestrator's future yields: its output, or why it failed.
pub type OrchestratorOutput = Result<Payload, FailureDetails>;

/// A boxed, running orchestrator.
pub type OrchestratorFuture = Pin<Box<dyn Future<Output = OrchestratorOutput> + Send>>;

/// A registered orchestrator: builds the future from a context and the raw input.
pub type OrchestratorFn =
    Arc<dyn Fn(OrchestrationContext, Option<Payload>) -> OrchestratorFuture + Send + Sync>;

/// Looks up orchestrators by name.
pub trait OrchestratorResolver {
    /// The orchestrator registered as `name`.
    fn resolve(&self, name: &str) -> Option<OrchestratorFn>;
}

impl<F: Fn(&str) -> Option<OrchestratorFn>> OrchestratorResolver for F {
    fn resolve(&self, name: &str) -> Option<OrchestratorFn> {
        self(name)
    }
}

/// Wraps a typed `async fn(OrchestrationContext, I) -> Result<O, E>` as an [`OrchestratorFn`].
/// The input is decoded from JSON (a missing input decodes from `null`); a decoding failure ends
/// the instance Failed with a `[DT0004]` message.
pub fn orchestrator_fn<F, Fut, I, O, E>(name: &str, f: F) -> OrchestratorFn
where
    F: Fn(OrchestrationContext, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    I: DeserializeOwned,
    O: Serialize,
    E: Into<Error>,
{
    let name = name.to_owned();
    Arc::new(move |ctx, input| {
        let text = input.as_ref().map_or("null", Payload::as_str);
        match serde_json::from_str::<I>(text) {
            Ok(input) => {
                let fut = f(ctx, input);
                Box::pin(async move {
                    match fut.await {
                        Ok(output) => Payload::from_value(&output).map_err(|e| {
                            FailureDetails::new("OutputError", format!("cannot serialize the output: {e}"))
                        }),
                        Err(e) => Err(e.into().into()),
                    }
                })
            }
            Err(e) => {
                let failure = FailureDetails::new(
                    "InputError",
                    codes::coded(
                        codes::BAD_INPUT,
                        format_args!(
                            "the input of orchestrator '{name}' cannot be decoded as {}: {e}",
                            std::any::type_name::<I>()
                        ),
                    ),
                )
                .non_retriable();
                Box::pin(std::future::ready(Err(failure)))
            }
        }
    })
}

/// Size limits of one execution, checked every turn. Exceeding one fails the instance with a
/// coded message instead of letting history or payloads grow without bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most history events of one execution (`continue_as_new` starts a fresh history).
    pub max_history_events: usize,
    /// Largest payload (action input, output, custom status) in bytes of JSON.
    pub max_payload_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_history_events: 100_000, max_payload_bytes: 16 * 1024 * 1024 }
    }
}

impl Limits {
    /// The failure for a payload of `len` bytes in `what`, if it is too large.
    pub fn check_payload(&self, what: &str, len: usize) -> Result<(), FailureDetails> {
        if len > self.max_payload_bytes {
            return Err(FailureDetails::new(
                "PayloadTooLarge",
                codes::coded(
                    codes::PAYLOAD_TOO_LARGE,
                    format_args!(
                        "{what} is {len} bytes, more than the limit of {} bytes; pass a reference \
                     (e.g. a blob URL) instead of the data",
                        self.max_payload_bytes
                    ),
                ),
            )
            .non_retriable());
        }
        Ok(())
    }
}

/// The next execution requested by `continue_as_new`.
#[derive(Clone, Debug, PartialEq)]
pub struct NextExecution {
    /// Input of the new execution.
    pub input: Option<Payload>,
    /// The `ExecutionStarted` that starts it (same orchestrator and parent, the new input).
    pub start: HistoryEvent,
    /// Raised events nobody consumed, to deliver to the new execution (in arrival order).
    pub carried_events: Vec<HistoryEvent>,
}

/// Everything one turn produced, to be committed atomically.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnResult {
    /// History events to append: the whole turn, starting with `OrchestratorStarted`.
    pub history: Vec<HistoryEvent>,
    /// Side effects to carry out.
    pub actions: Vec<Action>,
    /// Status of the instance after the turn.
    pub status: RuntimeStatus,
    /// Output (Completed) or reason as a JSON string (Terminated).
    pub output: Option<Payload>,
    /// Why it failed (Failed).
    pub failure: Option<FailureDetails>,
    /// Custom status after the turn.
    pub custom_status: Option<Payload>,
    /// Set when the execution continued as new.
    pub continue_as_new: Option<NextExecution>,
    /// Completion to report to the parent orchestration.
    pub notify_parent: Option<(ParentInstance, EventKind)>,
    /// Inbound events that were dropped (duplicates, unknown targets): for logging only.
    pub discarded: Vec<HistoryEvent>,
}

/// One orchestration execution, in memory.
pub struct Execution {
    instance_id: String,
    execution_id: String,
    ctx: Option<OrchestrationContext>,
    future: Option<OrchestratorFuture>,
    parent: Option<ParentInstance>,
    suspended: bool,
    deferred: Vec<HistoryEvent>,
    terminated: Option<Option<String>>,
    failure: Option<FailureDetails>,
    finished: bool,
    history_len: usize,
    last_ts: Option<Timestamp>,
    replaying: bool,
    limits: Limits,
}

/// How the orchestrator's last poll ended.
enum PollEnd {
    NotPolled,
    Pending,
    Ready(OrchestratorOutput),
}

impl Execution {
    /// A fresh execution with no history; its first turn must deliver `ExecutionStarted`.
    pub fn new(instance_id: impl Into<String>, execution_id: impl Into<String>) -> Self {
        Execution {
            instance_id: instance_id.into(),
            execution_id: execution_id.into(),
            ctx: None,
            future: None,
            parent: None,
            suspended: false,
            deferred: Vec::new(),
            terminated: None,
            failure: None,
            finished: false,
            history_len: 0,
            last_ts: None,
            replaying: false,
            limits: Limits::default(),
        }
    }

    /// Sets the size limits checked on every turn.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Rebuilds an execution by replaying its recorded `history`, turn by turn. A
    /// mismatch between the code and the history is kept and fails the instance on its next turn.
    pub fn from_history(
        instance_id: impl Into<String>,
        execution_id: impl Into<String>,
        history: &[HistoryEvent],
        resolver: &dyn OrchestratorResolver,
    ) -> Self {
        let mut exec = Execution::new(instance_id, execution_id);
        for turn in split_turns(history) {
            exec.replay_turn(turn, resolver);
            if exec.failure.is_some() || exec.finished {
                break;
            }
        }
        exec.history_len = history.len();
        exec
    }

    /// Number of history events this execution has seen (to check a cached copy is current).
    pub fn history_len(&self) -> usize {
        self.history_len
    }

    /// The execution id.
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// The instance id.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// True when the orchestrator, as of its last turn, waits for an event called `name`
    /// (case-insensitive): delivering one will let it make progress.
    pub fn waits_for_event(&self, name: &str) -> bool {
        !self.finished
            && !self.suspended
            && self.ctx.as_ref().is_some_and(|ctx| ctx.state().inbox.waits_for(name))
    }

    /// True once the execution ended; it accepts no more turns.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Why replaying the history failed (nondeterminism, unknown orchestrator, ...), if it did.
    pub(crate) fn replay_failure(&self) -> Option<&FailureDetails> {
        self.failure.as_ref()
    }

    /// The tasks (activities, timers, sub-orchestrations) the orchestrator still waits for.
    pub(crate) fn open_tasks(&self) -> std::collections::HashSet<crate::TaskId> {
        self.ctx.as_ref().map(|ctx| ctx.state().tasks.open.keys().copied().collect()).unwrap_or_default()
    }

    fn replay_turn(&mut self, turn: &[HistoryEvent], resolver: &dyn OrchestratorResolver) {
        let ts = turn[0].timestamp;
        self.begin_turn(ts, true);
        let mut recorded = Vec::new();
        for event in &turn[1..] {
            if let Some((id, kind)) = primitives::recorded(&event.kind) {
                recorded.push((id, kind));
            } else if matches!(event.kind, EventKind::ExecutionCompleted { .. }) {
                self.finished = true;
            } else {
                self.apply(event, resolver);
            }
        }
        // A failure found while replaying (e.g. the orchestrator is not registered here) is not
        // an end recorded in history: the next live turn reports it and fails the instance.
        if self.failure.is_some() {
            return;
        }
        if self.finished || self.terminated.is_some() {
            self.finished = true;
            return;
        }
        if let Some(ctx) = &self.ctx {
            ctx.state().tasks.recorded.extend(recorded.iter().cloned());
        }
        let end = self.poll();
        let Some(ctx) = &self.ctx else {
            return;
        };
        let mut st = ctx.state();
        let mismatch = if let Some(message) = st.output.nondeterminism.take() {
            Some(message)
        } else if let Some((id, kind)) = st.tasks.recorded.iter().min_by_key(|(id, _)| **id) {
            Some(codes::coded(
                codes::NONDETERMINISM,
                format_args!(
                    "nondeterminism: the recorded history has {kind} at position {id}, \
                 but the code did not issue it"
                ),
            ))
        } else if matches!(end, PollEnd::Ready(_)) {
            Some(codes::coded(
                codes::NONDETERMINISM,
                format_args!(
                    "nondeterminism: the code finished while replaying a turn after which the \
                 recorded execution kept running"
                ),
            ))
        } else {
            None
        };
        st.tasks.recorded.clear();
        drop(st);
        if let Some(message) = mismatch {
            self.failure = Some(FailureDetails::new("Nondeterminism", message).non_retriable());
        }
    }

    fn begin_turn(&mut self, ts: Timestamp, replaying: bool) {
        self.last_ts = Some(ts);
        self.replaying = replaying;
        if let Some(ctx) = &self.ctx {
            let mut st = ctx.state();
            st.now = ts;
            st.replaying = replaying;
            st.output.actions.clear();
            st.output.events.clear();
        }
    }

    /// Runs one turn: delivers `new_events` (messages consumed from the instance's queue) at
    /// time `now`, polls the orchestrator and returns what to commit.
    pub fn run_turn(
        &mut self,
        now: Timestamp,
        mut new_events: Vec<HistoryEvent>,
        resolver: &dyn OrchestratorResolver,
    ) -> TurnResult {
        // History keeps microseconds: the live turn must not see more precision than a replay.
        let now = Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now);
        let ts = self.last_ts.map_or(now, |last| now.max(last));
        let mut result = TurnResult {
            history: vec![HistoryEvent::new(ts, EventKind::OrchestratorStarted)],
            actions: Vec::new(),
            status: RuntimeStatus::Running,
            output: None,
            failure: None,
            custom_status: None,
            continue_as_new: None,
            notify_parent: None,
            discarded: Vec::new(),
        };
        if self.finished {
            result.discarded = new_events;
            result.history.clear();
            return result;
        }
        // The execution must exist before anything is delivered to it, so its start goes first
        // (events raised to a continued-as-new instance can be queued before its new start).
        if let Some(pos) =
            new_events.iter().position(|e| matches!(e.kind, EventKind::ExecutionStarted { .. }))
        {
            let start = new_events.remove(pos);
            new_events.insert(0, start);
        }
        self.begin_turn(ts, false);
        for event in new_events {
            if self.accepts(&event) {
                self.apply(&event, resolver);
                result.history.push(event);
            } else {
                result.discarded.push(event);
            }
        }
        let end = if self.failure.is_some() || self.terminated.is_some() {
            PollEnd::NotPolled
        } else {
            self.poll()
        };
        self.finish_turn(end, &mut result);
        // A turn that accepted nothing and changed nothing (e.g. only duplicate completions)
        // leaves no turn behind.
        if result.history.len() == 1 && result.actions.is_empty() && !self.finished {
            result.history.clear();
        }
        self.history_len += result.history.len();
        result
    }

    /// Whether a live inbound event is valid now (completions must match an open task, ...).
    fn accepts(&self, event: &HistoryEvent) -> bool {
        let Some(ctx) = &self.ctx else {
            return matches!(event.kind, EventKind::ExecutionStarted { .. });
        };
        match &event.kind {
            // A marker: recorded, changes nothing.
            EventKind::ExecutionTerminated { .. } | EventKind::ExecutionRewound { .. } => true,
            EventKind::ExecutionSuspended { .. } => !self.suspended,
            EventKind::ExecutionResumed { .. } => self.suspended,
            // Completions and raised events; everything else (starts, recorded actions) is not
            // an inbound event of a running execution.
            kind => primitives::accepts(&ctx.state(), kind).unwrap_or(false),
        }
    }

    /// Applies an accepted inbound event to the replay state.
    fn apply(&mut self, event: &HistoryEvent, resolver: &dyn OrchestratorResolver) {
        match &event.kind {
            EventKind::ExecutionStarted { name, input, parent, .. } => {
                // The orchestrator's clock is the turn's time, not the time the start was
                // requested.
                let now = self.last_ts.unwrap_or(event.timestamp);
                self.start(name, input.clone(), parent.clone(), now, resolver);
            }
            EventKind::ExecutionTerminated { reason } => self.terminated = Some(reason.clone()),
            EventKind::ExecutionSuspended { .. } => self.suspended = true,
            EventKind::ExecutionResumed { .. } => {
                self.suspended = false;
                for deferred in std::mem::take(&mut self.deferred) {
                    self.deliver(&deferred);
                }
            }
            kind => {
                if let Some(ctx) = &self.ctx {
                    ctx.state().inbox.arrived(kind);
                }
                if self.suspended {
                    self.deferred.push(event.clone());
                } else {
                    self.deliver(event);
                }
            }
        }
    }

    /// Hands a completion or raised event to the primitive that owns it.
    fn deliver(&mut self, event: &HistoryEvent) {
        if let Some(ctx) = &self.ctx {
            primitives::deliver(&mut ctx.state(), &event.kind);
        }
    }

    fn start(
        &mut self,
        name: &str,
        input: Option<Payload>,
        parent: Option<ParentInstance>,
        ts: Timestamp,
        resolver: &dyn OrchestratorResolver,
    ) {
        let mut state = State::new(ts);
        state.replaying = self.replaying;
        let ctx = OrchestrationContext::new(
            self.instance_id.clone(),
            self.execution_id.clone(),
            name.to_owned(),
            parent.clone(),
            state,
        );
        self.parent = parent;
        match resolver.resolve(name) {
            Some(f) => self.future = Some(f(ctx.clone(), input)),
            None => {
                self.failure = Some(
                    FailureDetails::new(
                        "UnknownOrchestrator",
                        codes::coded(
                            codes::UNKNOWN_ORCHESTRATOR,
                            format_args!(
                                "no orchestrator named '{name}' is registered on this node; \
                             register it before starting instances of it"
                            ),
                        ),
                    )
                    .non_retriable(),
                );
            }
        }
        self.ctx = Some(ctx);
    }

    /// Polls the orchestrator once (when it runs), catching panics.
    fn poll(&mut self) -> PollEnd {
        if self.suspended {
            return PollEnd::NotPolled;
        }
        let (Some(ctx), Some(future)) = (&self.ctx, self.future.as_mut()) else {
            return PollEnd::NotPolled;
        };
        {
            let mut st = ctx.state();
            st.pending_polls = 0;
            st.inbox.waiting.clear();
        }
        let mut cx = Context::from_waker(Waker::noop());
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => PollEnd::Pending,
            Ok(Poll::Ready(output)) => {
                self.future = None;
                PollEnd::Ready(output)
            }
            Err(panic) => {
                self.future = None;
                let message = crate::error::panic_message(&*panic);
                PollEnd::Ready(Err(FailureDetails::new(
                    "Panic",
                    codes::coded(
                        codes::ORCHESTRATOR_PANIC,
                        format_args!("the orchestrator panicked: {message}"),
                    ),
                )
                .non_retriable()))
            }
        }
    }

    /// Decides the status after the live poll and fills `result`.
    fn finish_turn(&mut self, end: PollEnd, result: &mut TurnResult) {
        let ts = result.history[0].timestamp;
        let (output, pending_polls, open_children) = match &self.ctx {
            Some(ctx) => {
                let mut st = ctx.state();
                result.custom_status = st.custom_status.clone();
                (std::mem::take(&mut st.output), st.pending_polls, sub_orchestration::open_children(&st))
            }
            None => Default::default(),
        };
        let TurnOutput { mut actions, events: outbound, continue_as_new: can, nondeterminism, fatal } =
            output;

        if let Some(message) = nondeterminism {
            self.failure = Some(FailureDetails::new("Nondeterminism", message).non_retriable());
        } else if let Some(f) = fatal {
            self.failure = Some(f);
        } else if self.failure.is_none()
            && let Err(f) = self.check_limits(
                result.history.len() + outbound.len(),
                &outbound,
                &end,
                &result.custom_status,
            )
        {
            self.failure = Some(f);
        }

        let outcome: Option<Result<(RuntimeStatus, Option<Payload>), FailureDetails>> =
            if let Some(failure) = self.failure.clone() {
                Some(Err(failure))
            } else if let Some(reason) = self.terminated.clone() {
                let output = reason.as_ref().map(|r| Payload::from_value(r).expect("a string is JSON"));
                for child in open_children {
                    actions.push(Action::TerminateChild { instance_id: child, reason: reason.clone() });
                }
                Some(Ok((RuntimeStatus::Terminated, output)))
            } else {
                match (end, can) {
                    (PollEnd::Ready(Err(f)), _) => Some(Err(f)),
                    (PollEnd::Ready(Ok(_)) | PollEnd::Pending, Some(next)) => {
                        let carried = self.carried_events(ts, next.preserve_unprocessed_events);
                        let start = HistoryEvent::new(
                            ts,
                            EventKind::ExecutionStarted {
                                name: self.ctx.as_ref().map(|c| c.name().to_owned()).unwrap_or_default(),
                                input: next.input.clone(),
                                parent: self.parent.clone(),
                                // The runtime carries the trace on (it owns trace identity).
                                trace: None,
                            },
                        );
                        result.continue_as_new =
                            Some(NextExecution { input: next.input.clone(), start, carried_events: carried });
                        Some(Ok((RuntimeStatus::ContinuedAsNew, next.input)))
                    }
                    (PollEnd::Ready(Ok(output)), None) => Some(Ok((RuntimeStatus::Completed, Some(output)))),
                    (PollEnd::Pending, None) if pending_polls == 0 => Some(Err(FailureDetails::new(
                        "Stuck",
                        codes::coded(
                            codes::NON_DURABLE_AWAIT,
                            format_args!(
                                "the orchestrator is waiting on something that is not a durable task \
                             (e.g. tokio::time::sleep, a channel, or a cancelled timer) and could never \
                             resume; await only the futures of the OrchestrationContext"
                            ),
                        ),
                    )
                    .non_retriable())),
                    (PollEnd::Pending, None) => None,
                    (PollEnd::NotPolled, _) => None,
                }
            };

        match outcome {
            None => {
                result.status = if self.ctx.is_none() {
                    RuntimeStatus::Pending
                } else if self.suspended {
                    RuntimeStatus::Suspended
                } else {
                    RuntimeStatus::Running
                };
                result.history.extend(outbound);
                result.actions = actions;
            }
            Some(Err(failure)) => {
                // The code's actions in a failed turn are not carried out.
                self.end();
                result.status = RuntimeStatus::Failed;
                result.history.push(HistoryEvent::new(
                    ts,
                    EventKind::ExecutionCompleted {
                        status: RuntimeStatus::Failed,
                        result: None,
                        failure: Some(failure.clone()),
                    },
                ));
                result.notify_parent = self.parent.clone().map(|p| {
                    (
                        p.clone(),
                        EventKind::SubOrchestrationFailed { task_id: p.task_id, failure: failure.clone() },
                    )
                });
                result.failure = Some(failure);
            }
            Some(Ok((status, output))) => {
                self.end();
                result.status = status;
                result.output = output.clone();
                // Timers of an ended execution are pointless: never create them.
                actions.retain(|a| !matches!(a, Action::CreateTimer { .. } | Action::CancelTimer { .. }));
                result.actions = actions;
                if status != RuntimeStatus::Terminated {
                    result.history.extend(outbound);
                    result.history.push(HistoryEvent::new(
                        ts,
                        EventKind::ExecutionCompleted { status, result: output.clone(), failure: None },
                    ));
                }
                result.notify_parent = match status {
                    RuntimeStatus::Completed => self.parent.clone().map(|p| {
                        (
                            p.clone(),
                            EventKind::SubOrchestrationCompleted { task_id: p.task_id, result: output },
                        )
                    }),
                    RuntimeStatus::Terminated => self.parent.clone().map(|p| {
                        let reason = self.terminated.clone().flatten().unwrap_or_default();
                        let task_id = p.task_id;
                        (
                            p,
                            EventKind::SubOrchestrationFailed {
                                task_id,
                                failure: FailureDetails::new(
                                    "Terminated",
                                    format!("the sub-orchestration was terminated: {reason}"),
                                ),
                            },
                        )
                    }),
                    _ => None,
                };
            }
        }
    }

    /// Checks the turn's new events and payloads against the limits.
    fn check_limits(
        &self,
        new_events: usize,
        outbound: &[HistoryEvent],
        end: &PollEnd,
        custom_status: &Option<Payload>,
    ) -> Result<(), FailureDetails> {
        let total = self.history_len + new_events + 1;
        if total > self.limits.max_history_events {
            return Err(FailureDetails::new(
                "HistoryLimitExceeded",
                codes::coded(
                    codes::HISTORY_LIMIT,
                    format_args!(
                        "this execution's history would grow to {total} events, more than the limit of {}; \
                     use continue_as_new to carry on with a fresh history",
                        self.limits.max_history_events
                    ),
                ),
            )
            .non_retriable());
        }
        for (what, payload) in outbound.iter().filter_map(|event| primitives::payload(&event.kind)) {
            self.limits.check_payload(&what, payload.map_or(0, Payload::len))?;
        }
        if let PollEnd::Ready(Ok(output)) = end {
            self.limits.check_payload("the orchestrator's output", output.len())?;
        }
        self.limits.check_payload("the custom status", custom_status.as_ref().map_or(0, Payload::len))
    }

    /// Ends the execution: drops the future (and with it all durable futures).
    fn end(&mut self) {
        self.finished = true;
        self.future = None;
    }

    fn carried_events(&self, ts: Timestamp, preserve: bool) -> Vec<HistoryEvent> {
        let Some(ctx) = &self.ctx else {
            return Vec::new();
        };
        if !preserve {
            return Vec::new();
        }
        ctx.state().inbox.unconsumed(ts)
    }
}

/// Splits a history into turns, each starting with `OrchestratorStarted`.
fn split_turns(history: &[HistoryEvent]) -> impl Iterator<Item = &[HistoryEvent]> {
    let mut starts: Vec<usize> = history
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.kind, EventKind::OrchestratorStarted))
        .map(|(i, _)| i)
        .collect();
    starts.push(history.len());
    starts.windows(2).map(|w| &history[w[0]..w[1]]).collect::<Vec<_>>().into_iter()
}
