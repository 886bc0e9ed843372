//! The store contract of **durable**.
//!
//! A store keeps instances, their histories, their message queues (inboxes), timers and activity
//! work items, and hands work out under leases. Its operations are coarse and transactional: a
//! whole orchestration turn is committed by one [`Store::commit_turn`] call, all or nothing, which
//! is what makes the engine crash-safe. Implementations: `durable-store-sqlite` (embedded) and
//! `durable-store-postgres` (shared by several nodes).
//!
//! Every implementation must pass the generic suite in the `conformance` module (feature
//! `conformance`), which runs each test against a fresh store through `conformance_tests!`.
//!
//! ## Queues, visibility and leases
//! - Each instance has an inbox of [`Message`]s, consumed in id order. A message with a
//!   `visible_at` in the future (a durable timer) is invisible until then.
//! - [`Store::fetch_orchestration_work`] leases instances that have visible messages and no live
//!   lease, and returns each with all its visible messages. One instance is leased by at most
//!   one caller at a time, so its turns run one at a time and in order.
//! - A lease expires after the requested duration unless renewed; an expired lease can be taken
//!   by another fetch, and any operation presenting an expired or superseded lease fails with
//!   [`Error::LeaseLost`] (fencing). Work is therefore delivered at least once, and a turn's
//!   effects are committed at most once.

pub mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod limits;
pub mod meters;
mod types;
mod waiters;

pub use limits::{LimitCharge, LimitRefund, LimitRefusal, Rate};
pub use types::*;
pub use waiters::CompletionWaiters;

use async_trait::async_trait;
use durable_core::{HistoryEvent, RuntimeStatus, Timestamp};
use std::time::Duration;

/// Errors of store operations. Messages say what happened and, where it helps, what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No instance with this id.
    #[error("instance '{instance_id}' was not found")]
    NotFound {
        /// The id asked for.
        instance_id: String,
    },
    /// `create_instance` on an id whose instance has not finished.
    #[error(
        "instance '{instance_id}' already exists and is {status}; wait for it to finish, terminate it, or use another id"
    )]
    AlreadyExists {
        /// The id asked for.
        instance_id: String,
        /// Its current status.
        status: RuntimeStatus,
    },
    /// A message for an instance that has finished.
    #[error("instance '{instance_id}' has already finished ({status})")]
    InstanceFinished {
        /// The id asked for.
        instance_id: String,
        /// Its final status.
        status: RuntimeStatus,
    },
    /// The lease presented has expired or was taken over; the work will be redelivered.
    #[error("the lease on this work item was lost (expired or taken over); the work will be redelivered")]
    LeaseLost,
    /// The instance changed underneath the caller (its history or execution is not the one the
    /// caller worked on); the caller's result is discarded.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request is malformed.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The store is closed or cannot be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A rate limit refused [`Store::create_instance_limited`]; nothing was written.
    #[error("rate limited: {0}")]
    RateLimited(LimitRefusal),
    /// The disk (or the database's quota) is full: nothing was written. Writes work again once
    /// space is freed; no restart is needed.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// An error of the underlying database.
    #[error("storage error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wraps a database error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Backend(Box::new(e))
    }
}

/// Result of store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The store contract. All methods are safe to call concurrently.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---------------------------------------------------------------- client operations

    /// Creates an instance in status Pending and enqueues its `ExecutionStarted` message, in one
    /// transaction. An existing instance with the same id is replaced if it has finished (its
    /// history and queues are deleted first); if it has not, fails with
    /// [`Error::AlreadyExists`].
    async fn create_instance(&self, request: CreateInstance) -> Result<()>;

    /// Enqueues `event` for the instance's current execution (raise event, terminate, suspend,
    /// resume). Fails with [`Error::NotFound`] if the instance does not exist and with
    /// [`Error::InstanceFinished`] if it has finished; the check and the enqueue are atomic.
    async fn send_message(&self, instance_id: &str, event: HistoryEvent) -> Result<()>;

    /// The instance's status row, or `None`.
    async fn get_instance(&self, instance_id: &str) -> Result<Option<InstanceState>>;

    /// The history of the instance's current execution, in order. [`Error::NotFound`] if the
    /// instance does not exist.
    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>>;

    /// Like [`create_instance`](Store::create_instance), after charging `charges` against their
    /// rate limits, in the same transaction: if any limit refuses, nothing is written (no
    /// instance, no charge) and [`Error::RateLimited`] names the limit with the longest wait;
    /// if the create itself fails, no charge is kept. A charge's `reference` is stored with
    /// its key. With no charges this is `create_instance`; stores without limits refuse charges.
    async fn create_instance_limited(
        &self,
        request: CreateInstance,
        charges: Vec<LimitCharge>,
    ) -> Result<()> {
        if charges.is_empty() {
            return self.create_instance(request).await;
        }
        Err(Error::Invalid("this store does not keep rate limits".into()))
    }

    /// Gives units back to rate limits (see [`limits::refund`]); keys without a row, and keys
    /// with half their budget or more left, are skipped (and not written). Also drops rows
    /// whose limits have been at full budget for [`limits::LIMIT_RETENTION`].
    async fn refund_limits(&self, refunds: Vec<LimitRefund>) -> Result<()> {
        let _ = refunds;
        Ok(())
    }

    /// The reference last stored with the limit `key` (see [`LimitCharge::reference`]), or
    /// `None` when the key has no row.
    async fn limit_reference(&self, key: &str) -> Result<Option<String>> {
        let _ = key;
        Ok(None)
    }

    /// Instances with work ready and waiting for a turn, counted up to `at_most` (so the count
    /// costs at most that much): the engine's backlog, for load shedding. `None` when the store
    /// cannot tell.
    async fn ready_backlog(&self, at_most: u64) -> Result<Option<u64>> {
        let _ = at_most;
        Ok(None)
    }

    /// Instances matching `query`, ordered by (created time, instance id) (descending when
    /// [`InstanceQuery::newest_first`]), one page at a time. Stores answer every filter from an
    /// index, so a page costs about the same with a million instances as with ten.
    async fn query_instances(&self, query: &InstanceQuery) -> Result<InstancePage>;

    /// How many instances have each status, without reading the instances (stores keep the
    /// counts up to date in the transactions that change statuses, or count from an index).
    async fn count_instances(&self) -> Result<StatusCounts>;

    /// Deletes the instance (status, history, queues, activities) and, recursively, the
    /// sub-orchestrations it started, whatever their status. Returns how many instances were
    /// deleted (0 when it did not exist).
    async fn purge_instance(&self, instance_id: &str) -> Result<u64>;

    /// Deletes every instance matching `filter` (with its history, queues and activities).
    /// Returns how many were deleted.
    async fn purge_instances(&self, filter: &PurgeFilter) -> Result<u64>;

    /// Registers interest in the instance finishing: the receiver resolves when a commit ends
    /// the instance (Completed, Failed or Terminated) on this node, or may resolve spuriously.
    /// Register first, then read the status, then await, so no completion is missed. Stores
    /// shared by several nodes may also miss completions committed elsewhere: callers wait
    /// with a timeout and re-read.
    fn listen_for_completion(&self, instance_id: &str) -> tokio::sync::oneshot::Receiver<()>;

    // ---------------------------------------------------------------- orchestration dispatch

    /// Leases up to `max` instances that have visible messages and no live lease, for
    /// `lease_duration`, and returns each with its visible messages (oldest first, at most
    /// [`MAX_MESSAGES_PER_WORK_ITEM`]). Returns an empty list when there is nothing to do;
    /// never blocks waiting for work.
    async fn fetch_orchestration_work(
        &self,
        max: usize,
        lease_duration: Duration,
    ) -> Result<Vec<OrchestrationWorkItem>>;

    /// Commits one turn atomically and releases the lease: deletes the consumed messages,
    /// appends the history, updates the status row, creates activities, timers, sub-orchestration
    /// instances and messages to other instances, and carries out `continue_as_new`. See
    /// [`TurnCommit`] for each field's rules. Fails with [`Error::LeaseLost`] if the lease is no
    /// longer held and with [`Error::Conflict`] if the instance's execution or history length is
    /// not the one in the commit; then nothing is written.
    async fn commit_turn(&self, commit: TurnCommit) -> Result<()>;

    /// Leases `instance_id` now, if nobody holds a live lease on it, and returns it with its
    /// visible messages (possibly none), so a client can deliver an event and run the turn that
    /// consumes it in one commit (the event then goes straight into that turn's history instead
    /// of through the inbox). `Ok(None)` means "not now" (leased elsewhere or backing off): use
    /// [`send_message`](Store::send_message) instead. Fails with [`Error::NotFound`] or
    /// [`Error::InstanceFinished`] (then no lease is held).
    async fn lease_instance(
        &self,
        instance_id: &str,
        lease_duration: Duration,
    ) -> Result<Option<OrchestrationWorkItem>>;

    /// Rewinds a `Failed` instance atomically: replaces its execution's history, makes it
    /// `Running` again (`Pending` when no history is left), and queues the messages,
    /// activities, timers and sub-orchestrations of `rewind`. Fails with [`Error::NotFound`],
    /// or [`Error::Conflict`] when the instance is not `Failed` or its execution or history
    /// length differ from the commit's (then nothing is written).
    async fn rewind_instance(&self, rewind: RewindCommit) -> Result<()>;

    /// Records why the instance cannot make progress (`Some`), or that it can again (`None`).
    /// The reason is shown by [`get_instance`](Store::get_instance) until it is cleared, or
    /// until the instance makes progress (any change of its status or history clears it, so a
    /// node that can run the work needs no extra write). Reporting the same reason again keeps
    /// its `since`. Needs no lease. Fails with [`Error::NotFound`] for a missing instance.
    async fn set_stall(&self, instance_id: &str, reason: Option<&str>) -> Result<()>;

    /// Releases an orchestration lease without committing; the messages stay queued and become
    /// fetchable again after `retry_after` (immediately when zero).
    async fn abandon_orchestration_work(
        &self,
        lease: &OrchestrationLease,
        retry_after: Duration,
    ) -> Result<()>;

    /// Extends a live orchestration lease to `lease_duration` from now.
    async fn renew_orchestration_lease(
        &self,
        lease: &OrchestrationLease,
        lease_duration: Duration,
    ) -> Result<OrchestrationLease>;

    /// Resolves when orchestration work may have become available (a message was enqueued or
    /// a timer became due), or after `max_wait`. Spurious wake-ups are allowed.
    async fn wait_for_orchestration_work(&self, max_wait: Duration);

    // ---------------------------------------------------------------- activity dispatch

    /// Leases up to `max` activity work items (oldest first) for `lease_duration`; increments
    /// each item's attempt count. Never blocks waiting for work.
    async fn fetch_activity_work(
        &self,
        max: usize,
        lease_duration: Duration,
    ) -> Result<Vec<ActivityWorkItem>>;

    /// Deletes the activity work item and, if its instance still runs the same execution and
    /// has not finished, enqueues `TaskCompleted`/`TaskFailed` for it, atomically. Fails with
    /// [`Error::LeaseLost`] if the lease is no longer held (then nothing is written).
    async fn complete_activity(&self, lease: &ActivityLease, outcome: ActivityOutcome) -> Result<()>;

    /// Releases an activity lease without completing; the item becomes fetchable again after
    /// `retry_after`.
    async fn abandon_activity_work(&self, lease: &ActivityLease, retry_after: Duration) -> Result<()>;

    /// Extends a live activity lease to `lease_duration` from now.
    async fn renew_activity_lease(
        &self,
        lease: &ActivityLease,
        lease_duration: Duration,
    ) -> Result<ActivityLease>;

    /// Resolves when activity work may have become available, or after `max_wait`.
    async fn wait_for_activity_work(&self, max_wait: Duration);

    // ---------------------------------------------------------------- introspection

    /// What waits right now: ready instances and activities, due timers (for metrics, read at
    /// scrape time). Must be cheap: answered from in-memory queues or indexes, never a scan of
    /// parked work. The default reports that the store cannot tell.
    async fn backlog(&self) -> Result<Backlog> {
        Err(Error::Unavailable("this store does not report its backlog".into()))
    }

    /// Checks that the store can serve requests now: its database answers and its background
    /// machinery runs (SQLite: the writer thread; PostgreSQL: the pool and the notification
    /// listener). `Ok` means ready; the error says what is not, for logs (never for clients).
    /// The default answers `Ok` (a store without background machinery or connections).
    async fn check_ready(&self) -> Result<()> {
        Ok(())
    }

    /// Counters describing the store's work so far (for benchmarks and metrics).
    fn metrics(&self) -> StoreMetrics {
        StoreMetrics::default()
    }

    /// Waits until everything accepted so far is durable and stops background work. Further
    /// calls fail with [`Error::Unavailable`].
    async fn close(&self) -> Result<()>;
}

/// Upper bound of messages returned with one orchestration work item.
pub const MAX_MESSAGES_PER_WORK_ITEM: usize = 1000;

/// The clock stores use for visibility and leases.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
