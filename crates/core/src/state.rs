//! [`State`]: the replay state one execution's context, durable futures and engine share.
//!
//! It is made of one part per concern: the turn's clock, the scheduled tasks (sequence numbers
//! and their replay matching, common to every primitive), the state each primitive keeps
//! (timers, the event inbox), and what the turn produced so far ([`TurnOutput`]).

use crate::action::Action;
use crate::error::codes;
use crate::history::{FailureDetails, HistoryEvent, TaskId};
use crate::payload::Payload;
use crate::primitives::{ActionKind, external_event, timer};
use jiff::Timestamp;
use std::collections::HashMap;
use std::task::Waker;

/// Mutable replay state, behind the context's mutex.
pub(crate) struct State {
    /// The turn's time: `current_utc_datetime`.
    pub(crate) now: Timestamp,
    /// True while the code re-executes recorded turns.
    pub(crate) replaying: bool,
    pub(crate) guid_counter: u64,
    pub(crate) tasks: Tasks,
    pub(crate) timers: timer::Timers,
    pub(crate) inbox: external_event::Inbox,
    pub(crate) output: TurnOutput,
    /// The custom status the code set last (kept across turns).
    pub(crate) custom_status: Option<Payload>,
    /// Wakers of the durable futures that returned `Pending`.
    wakers: Vec<Waker>,
    /// Durable futures that returned `Pending` during the current poll: none means the code
    /// awaits something that is not durable and could never resume.
    pub(crate) pending_polls: u32,
}

/// The outcome of a completed activity or sub-orchestration, until its future takes it.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Completed(Option<Payload>),
    Failed(FailureDetails),
}

/// The tasks the code scheduled: every scheduling call takes the next sequence number when it
/// is called, and while replaying it must match the action recorded at that number.
#[derive(Default)]
pub(crate) struct Tasks {
    pub(crate) next_id: TaskId,
    /// Actions recorded in the turn being replayed, not yet re-issued by the code.
    pub(crate) recorded: HashMap<TaskId, ActionKind>,
    /// Scheduled tasks that have not completed yet.
    pub(crate) open: HashMap<TaskId, ActionKind>,
    /// Outcomes of completed activities and sub-orchestrations, until their futures take them.
    pub(crate) outcomes: HashMap<TaskId, Outcome>,
}

/// What the code issued in the current (live) turn.
#[derive(Default)]
pub(crate) struct TurnOutput {
    /// Side effects to carry out.
    pub(crate) actions: Vec<Action>,
    /// The history events that record them.
    pub(crate) events: Vec<HistoryEvent>,
    pub(crate) continue_as_new: Option<ContinueAsNewRequest>,
    /// The first mismatch between the code and the recorded history.
    pub(crate) nondeterminism: Option<String>,
    /// A failure raised by the context itself (e.g. an unserializable `continue_as_new` input).
    pub(crate) fatal: Option<FailureDetails>,
}

/// A `continue_as_new` request.
#[derive(Clone, Debug)]
pub(crate) struct ContinueAsNewRequest {
    pub(crate) input: Option<Payload>,
    pub(crate) preserve_unprocessed_events: bool,
}

impl State {
    pub(crate) fn new(now: Timestamp) -> Self {
        State {
            now,
            replaying: false,
            guid_counter: 0,
            tasks: Tasks::default(),
            timers: timer::Timers::default(),
            inbox: external_event::Inbox::default(),
            output: TurnOutput::default(),
            custom_status: None,
            wakers: Vec::new(),
            pending_polls: 0,
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

    pub(crate) fn flag_nondeterminism(&mut self, message: String) {
        if self.output.nondeterminism.is_none() {
            self.output.nondeterminism = Some(message);
        }
    }

    /// Takes the next sequence number for `kind`, matching it against history when replaying,
    /// and records the new action (its history `event` and its `action`) when it is live.
    /// Returns the id and whether the action is new.
    pub(crate) fn schedule(
        &mut self,
        kind: ActionKind,
        make: impl FnOnce(TaskId, Timestamp) -> (HistoryEvent, Action),
    ) -> (TaskId, bool) {
        let id = self.tasks.next_id;
        self.tasks.next_id += 1;
        let is_new = match self.tasks.recorded.remove(&id) {
            Some(recorded) => {
                if recorded != kind {
                    self.flag_nondeterminism(codes::coded(
                        codes::NONDETERMINISM,
                        format_args!("nondeterminism: expected {recorded} at position {id}, got {kind}"),
                    ));
                }
                false
            }
            None if self.replaying => {
                self.flag_nondeterminism(codes::coded(
                    codes::NONDETERMINISM,
                    format_args!(
                        "nondeterminism: the code issued {kind} at position {id}, \
                     but the recorded history has no action there"
                    ),
                ));
                false
            }
            None => true,
        };
        self.tasks.open.insert(id, kind);
        if is_new {
            let (event, action) = make(id, self.now);
            self.output.events.push(event);
            self.output.actions.push(action);
        }
        (id, is_new)
    }

    /// A unique sequence for `new_guid`.
    pub(crate) fn next_guid(&mut self) -> u64 {
        let n = self.guid_counter;
        self.guid_counter += 1;
        n
    }
}
