//! The values exchanged with a [`Store`](crate::Store).

use durable_core::{
    EventKind, FailureDetails, HistoryEvent, ParentInstance, Payload, RuntimeStatus, TaskId, Timestamp,
    TraceContext,
};
use serde::{Deserialize, Serialize};

/// Store-assigned id of a queued message; increases with enqueue order.
pub type MessageId = i64;

/// Request to create an instance (a start, a restart or a sub-orchestration).
#[derive(Clone, Debug, PartialEq)]
pub struct CreateInstance {
    /// Instance id (validated by the caller).
    pub instance_id: String,
    /// Orchestrator name.
    pub name: String,
    /// Id of the first execution.
    pub execution_id: String,
    /// Input.
    pub input: Option<Payload>,
    /// The parent, for a sub-orchestration. When a sub-orchestration cannot be created because
    /// an unfinished instance holds the id, the store enqueues `SubOrchestrationFailed` to the
    /// parent instead of failing the whole commit.
    pub parent: Option<ParentInstance>,
    /// Creation time; also the timestamp of the `ExecutionStarted` message.
    pub created_at: Timestamp,
    /// The trace context recorded in `ExecutionStarted` (distributed tracing), if any.
    pub trace: Option<TraceContext>,
}

impl CreateInstance {
    /// The `ExecutionStarted` event that starts this instance.
    pub fn start_event(&self) -> HistoryEvent {
        HistoryEvent::new(
            self.created_at,
            EventKind::ExecutionStarted {
                name: self.name.clone(),
                input: self.input.clone(),
                parent: self.parent.clone(),
                trace: self.trace.clone(),
            },
        )
    }

    /// What the parent of a sub-orchestration receives, at `at`, when an unfinished instance
    /// already holds the child's id: `SubOrchestrationFailed` for the parent's execution. `None`
    /// for an instance without a parent (a client start reports `AlreadyExists` instead).
    pub fn collision_message(&self, at: Timestamp) -> Option<NewMessage> {
        let parent = self.parent.as_ref()?;
        let failure = FailureDetails::new(
            "InstanceAlreadyExists",
            format!(
                "cannot start sub-orchestration '{}': an unfinished instance already has this id",
                self.instance_id
            ),
        );
        Some(NewMessage {
            instance_id: parent.instance_id.clone(),
            execution_id: Some(parent.execution_id.clone()),
            event: HistoryEvent::new(
                at,
                EventKind::SubOrchestrationFailed { task_id: parent.task_id, failure },
            ),
        })
    }
}

/// The status row of an instance. Stores keep its timestamps at microsecond precision (at
/// least); event timestamps inside histories and messages are kept exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceState {
    /// Instance id.
    pub instance_id: String,
    /// Orchestrator name.
    pub name: String,
    /// Current execution id.
    pub execution_id: String,
    /// Runtime status.
    pub status: RuntimeStatus,
    /// Input of the current execution.
    pub input: Option<Payload>,
    /// Output (Completed), reason (Terminated).
    pub output: Option<Payload>,
    /// Failure (Failed).
    pub failure: Option<FailureDetails>,
    /// Custom status set by the orchestrator.
    pub custom_status: Option<Payload>,
    /// When the instance was created.
    pub created_at: Timestamp,
    /// When its status row last changed.
    pub last_updated_at: Timestamp,
    /// When it finished.
    pub completed_at: Option<Timestamp>,
    /// The parent instance, for sub-orchestrations.
    pub parent_instance_id: Option<String>,
    /// Number of events in the current execution's history.
    pub history_len: u64,
    /// Why the instance is not making progress, when a node had to leave its work for another
    /// (e.g. it lacks the orchestrator). Cleared by the store when the instance makes progress
    /// (its status or history changes). Work items may leave it out.
    pub stall: Option<Stall>,
}

/// Why an instance waits for a node that can run its work; see [`InstanceState::stall`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stall {
    /// What is missing, e.g. "`[DT0002]` no orchestrator named 'X' is registered on this node".
    pub reason: String,
    /// Since when (the first report of this reason).
    pub since: Timestamp,
}

/// A message waiting in an instance's inbox.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Store-assigned id.
    pub id: MessageId,
    /// The execution it is for; `None` means whichever execution is current (raised events and
    /// lifecycle messages). Messages for another execution are consumed and dropped.
    pub execution_id: Option<String>,
    /// The event to deliver.
    pub event: HistoryEvent,
}

/// A message to enqueue for another instance as part of a turn.
#[derive(Clone, Debug, PartialEq)]
pub struct NewMessage {
    /// Target instance. Messages to instances that do not exist or have finished are dropped.
    pub instance_id: String,
    /// Target execution (`None` = current).
    pub execution_id: Option<String>,
    /// The event.
    pub event: HistoryEvent,
}

/// Proof of an orchestration lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrchestrationLease {
    /// The leased instance.
    pub instance_id: String,
    /// Unique per grant; operations check it (fencing).
    pub token: u64,
    /// When the lease expires unless renewed.
    pub expires_at: Timestamp,
}

/// An instance with work to do, leased to the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct OrchestrationWorkItem {
    /// The lease.
    pub lease: OrchestrationLease,
    /// The status row as of the fetch.
    pub instance: InstanceState,
    /// Visible messages, oldest first.
    pub messages: Vec<Message>,
}

/// An activity to schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct NewActivity {
    /// The `TaskScheduled` sequence number.
    pub task_id: TaskId,
    /// Activity name.
    pub name: String,
    /// Input.
    pub input: Option<Payload>,
}

/// A durable timer to create: a `TimerFired` message that becomes visible at `fire_at`.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTimer {
    /// The `TimerCreated` sequence number.
    pub timer_id: TaskId,
    /// Due time.
    pub fire_at: Timestamp,
}

impl NewTimer {
    /// The `TimerFired` event this timer delivers.
    pub fn fired_event(&self) -> HistoryEvent {
        HistoryEvent::new(
            self.fire_at,
            EventKind::TimerFired { timer_id: self.timer_id, fire_at: self.fire_at },
        )
    }
}

/// The execution that replaces the current one after `continue_as_new`.
#[derive(Clone, Debug, PartialEq)]
pub struct NewExecution {
    /// Its id.
    pub execution_id: String,
    /// Its input (also the input inside `start`; the status row shows it).
    pub input: Option<Payload>,
    /// The `ExecutionStarted` that starts it, built by the engine.
    pub start: HistoryEvent,
    /// Events to deliver to it after its `ExecutionStarted` (carried-over raised events).
    pub carried_events: Vec<HistoryEvent>,
}

/// One turn's effects, committed atomically by [`Store::commit_turn`](crate::Store::commit_turn).
#[derive(Clone, Debug, PartialEq)]
pub struct TurnCommit {
    /// The lease of the work item; released by the commit.
    pub lease: OrchestrationLease,
    /// The execution the turn ran; must be the instance's current execution.
    pub execution_id: String,
    /// The history length the turn started from; must equal the stored one (fencing against a
    /// second writer: history can never be appended twice).
    pub expected_history_len: u64,
    /// Messages consumed by the turn (delivered or dropped); deleted.
    pub consumed: Vec<MessageId>,
    /// Events appended to the execution's history.
    pub history: Vec<HistoryEvent>,
    /// New status. When terminal (Completed, Failed, Terminated) the store also deletes every
    /// remaining message, timer and unleased activity of the instance.
    pub status: RuntimeStatus,
    /// Output or termination reason.
    pub output: Option<Payload>,
    /// Failure, when Failed.
    pub failure: Option<FailureDetails>,
    /// Custom status (replaces the stored one).
    pub custom_status: Option<Payload>,
    /// Commit time (`last_updated_at`, `completed_at`).
    pub now: Timestamp,
    /// Activities to schedule for this execution.
    pub activities: Vec<NewActivity>,
    /// Timers to create for this execution.
    pub timers: Vec<NewTimer>,
    /// Timers of this execution to delete (they must never fire).
    pub cancelled_timers: Vec<TaskId>,
    /// Instances to create (sub-orchestrations).
    pub new_instances: Vec<CreateInstance>,
    /// Messages to other instances (completions to the parent, events, terminations).
    pub messages: Vec<NewMessage>,
    /// Set when the execution continued as new (`status` is then ContinuedAsNew): the store
    /// deletes the old execution's history, timers and activities, switches the instance to the
    /// new execution (history length 0, new input) and enqueues its `ExecutionStarted`
    /// followed by the carried events. Messages without an execution id stay queued, behind
    /// the carried events (they arrived after them). As with a terminal commit, activities
    /// under a live lease are kept until their worker completes them; that completion then
    /// enqueues nothing, since the execution has changed.
    pub continue_as_new: Option<NewExecution>,
}

/// The rewind of a `Failed` instance, committed atomically by
/// [`Store::rewind_instance`](crate::Store::rewind_instance). The engine plans it
/// (`durable_core::plan_rewind`); the store replaces the history and queues the work.
#[derive(Clone, Debug, PartialEq)]
pub struct RewindCommit {
    /// The instance; it must be `Failed`.
    pub instance_id: String,
    /// Its current execution (it stays the same: completions of its tasks still apply).
    pub execution_id: String,
    /// The history length the plan was made from; a different stored one is a conflict.
    pub expected_history_len: u64,
    /// The execution's new history (replaces the recorded one). When empty, the instance is
    /// `Pending` again, else `Running`; output, failure and completion time are cleared.
    pub history: Vec<HistoryEvent>,
    /// Events queued for the execution, in order.
    pub messages: Vec<HistoryEvent>,
    /// Activities to run again (one whose work item of this execution is still there, e.g.
    /// leased by a worker, is not added twice).
    pub activities: Vec<NewActivity>,
    /// Timers to create again.
    pub timers: Vec<NewTimer>,
    /// Sub-orchestrations to start again (a finished holder of the id is replaced; an
    /// unfinished one makes the instance receive `SubOrchestrationFailed`, as in a turn).
    pub new_instances: Vec<CreateInstance>,
    /// The time of the rewind (`last_updated_at`).
    pub now: Timestamp,
}

/// Proof of an activity lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityLease {
    /// The leased work item.
    pub activity_id: i64,
    /// Unique per grant.
    pub token: u64,
    /// When the lease expires unless renewed.
    pub expires_at: Timestamp,
}

/// An activity to run, leased to the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityWorkItem {
    /// The lease.
    pub lease: ActivityLease,
    /// The instance that scheduled it.
    pub instance_id: String,
    /// The execution that scheduled it.
    pub execution_id: String,
    /// The `TaskScheduled` sequence number.
    pub task_id: TaskId,
    /// Activity name.
    pub name: String,
    /// Input.
    pub input: Option<Payload>,
    /// How many times it has been handed out, this time included (1 on the first run).
    pub attempt: u32,
}

/// How an activity ended.
#[derive(Clone, Debug, PartialEq)]
pub enum ActivityOutcome {
    /// It returned this output.
    Completed(Option<Payload>),
    /// It failed.
    Failed(FailureDetails),
}

impl ActivityOutcome {
    /// The `TaskCompleted` / `TaskFailed` event that reports this outcome of task `task_id`,
    /// recorded at `at`.
    pub fn into_event(self, task_id: TaskId, at: Timestamp) -> HistoryEvent {
        let kind = match self {
            ActivityOutcome::Completed(result) => EventKind::TaskCompleted { task_id, result },
            ActivityOutcome::Failed(failure) => EventKind::TaskFailed { task_id, failure },
        };
        HistoryEvent::new(at, kind)
    }
}

/// Filters and paging for [`Store::query_instances`](crate::Store::query_instances).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceQuery {
    /// Only these statuses (empty = all).
    pub statuses: Vec<RuntimeStatus>,
    /// Only this orchestrator name.
    pub name: Option<String>,
    /// Created at or after.
    pub created_from: Option<Timestamp>,
    /// Created at or before.
    pub created_to: Option<Timestamp>,
    /// Instance id starts with.
    pub instance_id_prefix: Option<String>,
    /// Page size (0 = 100).
    pub page_size: usize,
    /// Continuation token from the previous page.
    pub continuation: Option<String>,
    /// Include inputs (false leaves `input` empty, which is cheaper).
    pub include_input: bool,
    /// Order by (created time, instance id) descending: newest first (the dashboard's order).
    /// A continuation token is only valid for the order that produced it.
    pub newest_first: bool,
}

impl InstanceQuery {
    /// The id-prefix filter as a half-open range `[prefix, upper)` of byte-ordered strings, so
    /// stores can answer it from the primary key instead of testing every row. `upper` is the
    /// smallest string greater than every string that starts with `prefix` (`None`: no bound,
    /// when the prefix is all U+10FFFF). `None` overall when there is no prefix filter.
    pub fn id_prefix_range(&self) -> Option<(&str, Option<String>)> {
        let prefix = self.instance_id_prefix.as_deref().filter(|p| !p.is_empty())?;
        Some((prefix, prefix_upper_bound(prefix)))
    }
}

/// The smallest string greater (in byte order, which for UTF-8 is code point order) than every
/// string starting with `prefix`: the prefix up to its last character that has a successor,
/// with that character replaced by its successor.
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=0x10FFFF).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// How many instances have each status ([`Store::count_instances`](crate::Store::count_instances)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// One entry per status that has instances, in [`RuntimeStatus::ALL`] order.
    pub counts: Vec<(RuntimeStatus, u64)>,
}

impl StatusCounts {
    /// The count of `status` (0 when absent).
    pub fn get(&self, status: RuntimeStatus) -> u64 {
        self.counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n)
    }

    /// All instances.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }

    /// Builds the counts from (status, count) pairs in any order, dropping zeros.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (RuntimeStatus, u64)>) -> Self {
        let mut all = [0u64; RuntimeStatus::ALL.len()];
        for (status, n) in pairs {
            if let Some(i) = RuntimeStatus::ALL.iter().position(|s| *s == status) {
                all[i] += n;
            }
        }
        let counts = RuntimeStatus::ALL.into_iter().zip(all).filter(|(_, n)| *n > 0).collect::<Vec<_>>();
        StatusCounts { counts }
    }
}

/// One page of instances.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstancePage {
    /// The instances.
    pub instances: Vec<InstanceState>,
    /// Token for the next page; `None` when this is the last one.
    pub continuation: Option<String>,
}

/// Which instances [`Store::purge_instances`](crate::Store::purge_instances) deletes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PurgeFilter {
    /// Created at or after (required by the HTTP API, optional here).
    pub created_from: Option<Timestamp>,
    /// Created at or before.
    pub created_to: Option<Timestamp>,
    /// Only these statuses; empty means the terminal ones (Completed, Failed, Terminated).
    pub statuses: Vec<RuntimeStatus>,
}

impl PurgeFilter {
    /// The statuses to purge, with the default applied.
    pub fn effective_statuses(&self) -> Vec<RuntimeStatus> {
        if self.statuses.is_empty() {
            vec![RuntimeStatus::Completed, RuntimeStatus::Failed, RuntimeStatus::Terminated]
        } else {
            self.statuses.clone()
        }
    }
}

/// Page continuation: the (created time, instance id) of the last instance returned. Encoded as
/// an opaque string so stores can change it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Created time of the last instance of the page.
    pub created_at: Timestamp,
    /// Its id.
    pub instance_id: String,
}

impl Cursor {
    /// Encodes the cursor as a continuation token.
    pub fn encode(&self) -> String {
        let json = serde_json::to_string(self).expect("cursor is JSON");
        json.bytes().map(|b| format!("{b:02x}")).collect()
    }

    /// Decodes a continuation token; the error says it is not one of ours.
    pub fn decode(token: &str) -> Result<Cursor, crate::Error> {
        let bad = || {
            crate::Error::Invalid(
                "the continuation token is not valid; pass the token of the previous page unchanged".into(),
            )
        };
        if !token.len().is_multiple_of(2) || token.len() > 4096 {
            return Err(bad());
        }
        let bytes: Option<Vec<u8>> =
            (0..token.len()).step_by(2).map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok()).collect();
        let bytes = bytes.ok_or_else(bad)?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}

/// Counters of a store's work, for benchmarks and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreMetrics {
    /// Database transactions committed.
    pub transactions: u64,
    /// Orchestration turns committed.
    pub turns: u64,
    /// Activity completions committed.
    pub activity_completions: u64,
    /// Messages enqueued by clients (starts, events, lifecycle).
    pub client_writes: u64,
}

/// What waits in a store right now ([`Store::backlog`](crate::Store::backlog)), for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlog {
    /// Instances with visible messages and no live lease: turns waiting for a dispatcher.
    pub ready_instances: u64,
    /// Activity work items that are not leased: activities waiting for a dispatcher.
    pub ready_activities: u64,
    /// Durable timers that are due but not yet handed to their instance's turn (an instance
    /// whose due timer was already moved to its ready queue counts as ready instead).
    pub due_timers: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor { created_at: "2026-01-01T00:00:00Z".parse().unwrap(), instance_id: "a:b".into() };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("zz").is_err());
        assert!(Cursor::decode("abc").is_err());
        assert!(Cursor::decode("7b7d").is_err());
    }

    #[test]
    fn prefix_ranges_cover_exactly_the_strings_with_the_prefix() {
        let range = |p: &str| {
            let q = InstanceQuery { instance_id_prefix: Some(p.into()), ..Default::default() };
            q.id_prefix_range().map(|(lo, hi)| (lo.to_owned(), hi))
        };
        assert_eq!(range("ab"), Some(("ab".into(), Some("ac".into()))));
        assert_eq!(range("a\u{10FFFF}"), Some(("a\u{10FFFF}".into(), Some("b".into()))));
        assert_eq!(range("\u{10FFFF}"), Some(("\u{10FFFF}".into(), None)));
        // The successor of U+D7FF skips the surrogates.
        assert_eq!(range("\u{D7FF}"), Some(("\u{D7FF}".into(), Some("\u{E000}".into()))));
        assert_eq!(range(""), None);
        let (lo, hi) = range("q-a").unwrap();
        let hi = hi.unwrap();
        for inside in ["q-a", "q-a-1", "q-a\u{10FFFF}\u{10FFFF}"] {
            assert!(inside >= lo.as_str() && inside < hi.as_str(), "{inside}");
        }
        for outside in ["q-", "q-b", "q-`"] {
            assert!(!(outside >= lo.as_str() && outside < hi.as_str()), "{outside}");
        }
    }

    #[test]
    fn status_counts_sum_and_order() {
        let c = StatusCounts::from_pairs([
            (RuntimeStatus::Completed, 3),
            (RuntimeStatus::Pending, 1),
            (RuntimeStatus::Completed, 2),
            (RuntimeStatus::Failed, 0),
        ]);
        assert_eq!(c.counts, [(RuntimeStatus::Pending, 1), (RuntimeStatus::Completed, 5)]);
        assert_eq!(c.get(RuntimeStatus::Completed), 5);
        assert_eq!(c.get(RuntimeStatus::Failed), 0);
        assert_eq!(c.total(), 6);
    }
}
