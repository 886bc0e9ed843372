//! The generic store conformance suite: the store contract as executable tests.
//!
//! Every test is a `pub async fn name<S: Store>(store: S)` that gets a fresh, empty store and
//! panics on a violation. [`conformance_tests!`](crate::conformance_tests) expands to one
//! `#[tokio::test]` per test, so each failure is reported by name:
//!
//! ```ignore
//! // tests/conformance.rs of a store crate (needs tokio with `macros` and `rt-multi-thread`)
//! durable_store::conformance_tests!(|| async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = MyStore::open(dir.path().join("db")).unwrap();
//!     // Keeps the directory until the test's store is dropped.
//!     durable_store::conformance::Guarded::new(store, dir)
//! });
//! ```
//!
//! Requirements on the factory's store: it is empty and uses the system clock (timing tests use
//! leases and timers of a few hundred milliseconds and real time). No test sleeps to synchronize:
//! each waits for a condition (a fetch returning the expected work) up to a generous deadline,
//! and time-based expectations are checked as "never early" so a slow machine cannot fail them.

mod activities;
mod client;
mod concurrent;
mod introspection;
mod limits;
mod rewind;
mod turns;

pub use activities::*;
pub use client::*;
pub use concurrent::*;
pub use introspection::*;
pub use limits::*;
pub use rewind::*;
pub use turns::*;

use crate::{
    ActivityLease, ActivityOutcome, ActivityWorkItem, CreateInstance, InstancePage, InstanceQuery,
    InstanceState, OrchestrationLease, OrchestrationWorkItem, PurgeFilter, Result, StatusCounts, Store,
    StoreMetrics, TurnCommit,
};
use async_trait::async_trait;
use durable_core::{EventKind, HistoryEvent, Payload, RuntimeStatus, Timestamp};
use std::time::Duration;

/// Expands to one `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` per conformance
/// test. `$factory` is an expression callable with no arguments that returns a future of a
/// fresh store (any `S: Store`, e.g. a [`Guarded`] one). The calling crate needs `tokio` with the
/// `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@each $factory;
            create_instance_enqueues_start_and_reads_back,
            create_rejects_running_and_replaces_finished,
            send_message_checks_existence_and_status,
            query_filters_and_pages,
            purge_instance_is_recursive,
            purge_instances_by_filter,
            large_payloads_round_trip,
            listen_for_completion_fires_on_terminal_commit,
            close_rejects_further_calls,
            turn_commit_is_atomic,
            commit_conflicts_on_history_len_or_execution,
            history_accumulates_across_turns,
            one_lease_at_a_time,
            expired_lease_is_redelivered_and_stale_token_fenced,
            renewed_lease_is_kept,
            abandon_respects_retry_after,
            messages_arriving_during_a_turn_survive_the_commit,
            per_instance_fifo_order,
            events_queued_before_consumption_stay_in_order,
            timers_are_invisible_until_due,
            cancelled_timers_never_fire,
            terminal_commit_deletes_remaining_work,
            continue_as_new_switches_execution,
            sub_orchestration_created_or_failed_to_parent,
            messages_to_missing_or_finished_instances_are_dropped,
            wait_for_orchestration_work_wakes_on_enqueue,
            wait_for_orchestration_work_wakes_on_timer_due,
            activity_fetch_complete_and_attempts,
            activity_lease_expiry_renewal_and_loss,
            activity_abandon_respects_retry_after,
            activity_completion_for_finished_or_other_execution_enqueues_nothing,
            wait_for_activity_work_wakes_on_schedule,
            backlog_counts_ready_work_and_due_timers,
            lease_instance_takes_an_idle_instance_exclusively,
            lease_instance_refuses_leased_missing_and_finished_instances,
            stall_is_shown_until_cleared_or_progress,
            rewind_replaces_history_and_queues_the_work,
            rewind_refuses_unfailed_missing_and_changed_instances,
            concurrent_creates_and_messages_each_get_their_own_answer,
            concurrent_commits_each_get_their_own_answer,
            concurrent_completions_each_get_their_own_answer,
            limited_create_is_all_or_nothing,
            refunds_give_units_back,
            concurrent_limited_creates_never_overspend,
            ready_backlog_counts_ready_instances,
            query_newest_first_pages_to_the_oldest,
            count_instances_follows_every_status_change,
            check_ready_until_closed,
        );
    };
    (@each $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = ($factory)().await;
                $crate::conformance::$name(store).await;
            }
        )*
    };
}

/// How long any wait in the suite may take before the test fails. Generous: under a loaded CI
/// machine a wait can be slow, and only a hang should fail.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A lease no test outlives.
pub const LONG: Duration = Duration::from_secs(120);

/// Longest single wait between two polls of a condition.
const POLL: Duration = Duration::from_millis(200);

/// Polls `$attempt` (an expression yielding `Option<T>`) until it is `Some`, running `$wait`
/// between attempts; fails the test after [`DEADLINE`].
macro_rules! poll {
    ($what:expr, $wait:expr, $attempt:expr) => {{
        let deadline = tokio::time::Instant::now() + $crate::conformance::DEADLINE;
        loop {
            if let Some(v) = $attempt {
                break v;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {}", $what);
            $wait;
        }
    }};
}
pub(crate) use poll;

/// A store that keeps `guard` alive as long as itself (a temporary directory, a test database
/// to drop), delegating every operation to `store`.
pub struct Guarded<S, G> {
    store: S,
    _guard: G,
}

impl<S, G> Guarded<S, G> {
    /// Wraps `store`; `guard` is dropped after it.
    pub fn new(store: S, guard: G) -> Self {
        Guarded { store, _guard: guard }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.store
    }
}

#[async_trait]
impl<S: Store, G: Send + Sync + 'static> Store for Guarded<S, G> {
    async fn create_instance(&self, request: CreateInstance) -> Result<()> {
        self.store.create_instance(request).await
    }
    async fn create_instance_limited(
        &self,
        request: CreateInstance,
        charges: Vec<crate::LimitCharge>,
    ) -> Result<()> {
        self.store.create_instance_limited(request, charges).await
    }
    async fn refund_limits(&self, refunds: Vec<crate::LimitRefund>) -> Result<()> {
        self.store.refund_limits(refunds).await
    }
    async fn limit_reference(&self, key: &str) -> Result<Option<String>> {
        self.store.limit_reference(key).await
    }
    async fn ready_backlog(&self, at_most: u64) -> Result<Option<u64>> {
        self.store.ready_backlog(at_most).await
    }
    async fn send_message(&self, instance_id: &str, event: HistoryEvent) -> Result<()> {
        self.store.send_message(instance_id, event).await
    }
    async fn get_instance(&self, instance_id: &str) -> Result<Option<InstanceState>> {
        self.store.get_instance(instance_id).await
    }
    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>> {
        self.store.read_history(instance_id).await
    }
    async fn query_instances(&self, query: &InstanceQuery) -> Result<InstancePage> {
        self.store.query_instances(query).await
    }
    async fn count_instances(&self) -> Result<StatusCounts> {
        self.store.count_instances().await
    }
    async fn purge_instance(&self, instance_id: &str) -> Result<u64> {
        self.store.purge_instance(instance_id).await
    }
    async fn purge_instances(&self, filter: &PurgeFilter) -> Result<u64> {
        self.store.purge_instances(filter).await
    }
    fn listen_for_completion(&self, instance_id: &str) -> tokio::sync::oneshot::Receiver<()> {
        self.store.listen_for_completion(instance_id)
    }
    async fn fetch_orchestration_work(
        &self,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<OrchestrationWorkItem>> {
        self.store.fetch_orchestration_work(max, lease).await
    }
    async fn lease_instance(
        &self,
        instance_id: &str,
        lease: Duration,
    ) -> Result<Option<OrchestrationWorkItem>> {
        self.store.lease_instance(instance_id, lease).await
    }
    async fn commit_turn(&self, commit: TurnCommit) -> Result<()> {
        self.store.commit_turn(commit).await
    }
    async fn rewind_instance(&self, rewind: crate::RewindCommit) -> Result<()> {
        self.store.rewind_instance(rewind).await
    }
    async fn set_stall(&self, instance_id: &str, reason: Option<&str>) -> Result<()> {
        self.store.set_stall(instance_id, reason).await
    }
    async fn abandon_orchestration_work(
        &self,
        lease: &OrchestrationLease,
        retry_after: Duration,
    ) -> Result<()> {
        self.store.abandon_orchestration_work(lease, retry_after).await
    }
    async fn renew_orchestration_lease(
        &self,
        lease: &OrchestrationLease,
        duration: Duration,
    ) -> Result<OrchestrationLease> {
        self.store.renew_orchestration_lease(lease, duration).await
    }
    async fn wait_for_orchestration_work(&self, max_wait: Duration) {
        self.store.wait_for_orchestration_work(max_wait).await;
    }
    async fn fetch_activity_work(&self, max: usize, lease: Duration) -> Result<Vec<ActivityWorkItem>> {
        self.store.fetch_activity_work(max, lease).await
    }
    async fn complete_activity(&self, lease: &ActivityLease, outcome: ActivityOutcome) -> Result<()> {
        self.store.complete_activity(lease, outcome).await
    }
    async fn abandon_activity_work(&self, lease: &ActivityLease, retry_after: Duration) -> Result<()> {
        self.store.abandon_activity_work(lease, retry_after).await
    }
    async fn renew_activity_lease(&self, lease: &ActivityLease, duration: Duration) -> Result<ActivityLease> {
        self.store.renew_activity_lease(lease, duration).await
    }
    async fn wait_for_activity_work(&self, max_wait: Duration) {
        self.store.wait_for_activity_work(max_wait).await;
    }
    async fn backlog(&self) -> Result<crate::Backlog> {
        self.store.backlog().await
    }

    async fn check_ready(&self) -> Result<()> {
        self.store.check_ready().await
    }
    fn metrics(&self) -> StoreMetrics {
        self.store.metrics()
    }
    async fn close(&self) -> Result<()> {
        self.store.close().await
    }
}

// ------------------------------------------------------------------------------------- helpers

/// The current time at microsecond precision (what every store keeps on status rows).
pub fn now() -> Timestamp {
    let t = Timestamp::now();
    Timestamp::from_microsecond(t.as_microsecond()).expect("in range")
}

/// `now()` plus `d`.
fn after(d: Duration) -> Timestamp {
    now().checked_add(d).expect("in range")
}

/// A JSON payload.
pub fn json(text: &str) -> Payload {
    Payload::from_json(text).expect("test JSON is valid")
}

/// A create request for a top-level instance (execution `e1`, input `{"n":1}`).
pub fn create_request(instance_id: &str, name: &str) -> CreateInstance {
    CreateInstance {
        instance_id: instance_id.into(),
        name: name.into(),
        execution_id: "e1".into(),
        input: Some(json(r#"{"n":1}"#)),
        parent: None,
        created_at: now(),
        trace: None,
    }
}

/// An `EventRaised` event.
pub fn raised(name: &str, data: &str) -> HistoryEvent {
    HistoryEvent::new(now(), EventKind::EventRaised { name: name.into(), input: Some(json(data)), id: None })
}

/// The commit of a turn that consumes every message of `item` and appends a turn
/// (`OrchestratorStarted` + the consumed events), leaving the instance Running.
pub fn turn_of(item: &OrchestrationWorkItem) -> TurnCommit {
    let t = now();
    let mut history = vec![HistoryEvent::new(t, EventKind::OrchestratorStarted)];
    history.extend(item.messages.iter().map(|m| m.event.clone()));
    TurnCommit {
        lease: item.lease.clone(),
        execution_id: item.instance.execution_id.clone(),
        expected_history_len: item.instance.history_len,
        consumed: item.messages.iter().map(|m| m.id).collect(),
        history,
        status: RuntimeStatus::Running,
        output: None,
        failure: None,
        custom_status: None,
        now: t,
        activities: Vec::new(),
        timers: Vec::new(),
        cancelled_timers: Vec::new(),
        new_instances: Vec::new(),
        messages: Vec::new(),
        continue_as_new: None,
    }
}

/// Waits for a work item of `instance_id` and leases it for `lease`. Work of other instances
/// fetched on the way is abandoned (fetchable again shortly).
pub async fn fetch_for<S: Store>(store: &S, instance_id: &str, lease: Duration) -> OrchestrationWorkItem {
    poll!(format!("work for '{instance_id}'"), store.wait_for_orchestration_work(POLL).await, {
        let mut found = None;
        for item in store.fetch_orchestration_work(100, lease).await.expect("fetch") {
            if item.lease.instance_id == instance_id && found.is_none() {
                found = Some(item);
            } else {
                store
                    .abandon_orchestration_work(&item.lease, Duration::from_millis(20))
                    .await
                    .expect("abandon");
            }
        }
        found
    })
}

/// Fetches, applies `edit` to the default turn and commits it. Returns the fetched item.
pub async fn run_turn<S: Store>(
    store: &S,
    instance_id: &str,
    edit: impl FnOnce(&mut TurnCommit),
) -> OrchestrationWorkItem {
    let item = fetch_for(store, instance_id, LONG).await;
    let mut commit = turn_of(&item);
    edit(&mut commit);
    store.commit_turn(commit).await.expect("commit");
    item
}

/// Creates `instance_id` and runs its first turn (now Running, history of 2 events).
pub async fn start<S: Store>(store: &S, instance_id: &str) {
    store.create_instance(create_request(instance_id, "Orch")).await.expect("create");
    run_turn(store, instance_id, |_| {}).await;
}

/// Ends the instance with `status` through a turn (waits for it to have work, so callers send
/// it a message first when it has none).
pub async fn finish<S: Store>(store: &S, instance_id: &str, status: RuntimeStatus) {
    run_turn(store, instance_id, |c| {
        c.status = status;
        c.output = Some(json(r#""done""#));
    })
    .await;
}

/// Sends an event to a running instance and ends it with `status`.
pub async fn terminate<S: Store>(store: &S, instance_id: &str, status: RuntimeStatus) {
    store.send_message(instance_id, raised("stop", "0")).await.expect("send");
    finish(store, instance_id, status).await;
}

/// The visible work of every instance right now, leased for `lease`.
pub async fn fetch_all<S: Store>(store: &S, lease: Duration) -> Vec<OrchestrationWorkItem> {
    store.fetch_orchestration_work(10_000, lease).await.expect("fetch")
}

/// The event kinds of a work item's messages.
pub fn kinds(item: &OrchestrationWorkItem) -> Vec<EventKind> {
    item.messages.iter().map(|m| m.event.kind.clone()).collect()
}
