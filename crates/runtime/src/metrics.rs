//! The runtime's metrics, through the [`metrics`] facade (Prometheus names and units).
//!
//! Handles are registered once, when the runtime starts, for every registered orchestrator and
//! activity name, so the hot path only increments atomics (and does one hash lookup by name);
//! with no recorder installed they are no-ops. Labels take bounded values only: orchestrator and
//! activity names are those registered in code (any other name is counted as
//! [`UNREGISTERED`]), never an instance id or an input.
//!
//! Gauges that describe the store (instances per status, the ready and due-timer backlogs) are
//! not kept by counting transitions, which would drift with several nodes and restarts: they are
//! read from the store when metrics are scraped ([`refresh_store_gauges`]), from its indexes and
//! in-memory queues, so they are exact and cost nothing between scrapes.

use durable_core::RuntimeStatus;
use durable_store::Store;
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use std::collections::HashMap;

/// The label value for names that are not registered on this node.
pub const UNREGISTERED: &str = "(unregistered)";

/// Every metric the runtime reports, with its help text (for `# HELP` lines).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "durable_instances_started_total",
        "Executions started (first turn run), by orchestrator."
    );
    describe_counter!("durable_instances_completed_total", "Executions completed, by orchestrator.");
    describe_counter!("durable_instances_failed_total", "Executions failed, by orchestrator.");
    describe_counter!("durable_instances_terminated_total", "Executions terminated, by orchestrator.");
    describe_counter!("durable_turns_total", "Orchestration turns committed.");
    describe_counter!(
        "durable_turns_discarded_total",
        "Turn results discarded because the instance changed underneath."
    );
    describe_counter!("durable_replays_total", "Executions rebuilt by replaying their stored history.");
    describe_counter!("durable_execution_cache_hits_total", "Turns that found their execution in memory.");
    describe_counter!(
        "durable_execution_cache_misses_total",
        "Turns of an existing execution that was not in memory (each is a replay)."
    );
    describe_counter!("durable_activity_executions_total", "Activity executions, by activity.");
    describe_counter!("durable_activity_failures_total", "Activity executions that failed, by activity.");
    describe_counter!(
        "durable_activity_retries_total",
        "Activity executions that ran the same task again (its earlier run's lease expired, its node died, or its result could not be recorded), by activity."
    );
    describe_histogram!(
        "durable_activity_duration_seconds",
        Unit::Seconds,
        "Activity execution time, by activity."
    );
    describe_histogram!(
        "durable_timer_lateness_seconds",
        Unit::Seconds,
        "How long after its due time a durable timer was delivered to its orchestration."
    );
    describe_counter!("durable_events_raised_total", "External events accepted from clients.");
    describe_counter!(
        "durable_starts_limited_total",
        "Starts a rate limit of the orchestrator's start guard refused (nothing was created), by orchestrator and limit."
    );
    describe_counter!(
        "durable_event_deliveries_total",
        "Raised events by path: `direct` (run in the turn that consumes them, one commit) or `queued` (through the inbox)."
    );
    describe_counter!(
        "durable_stalls_total",
        "Times this node left work to another because it lacks the function."
    );
    describe_gauge!(
        "durable_instances",
        "Instances per runtime status (read from the store at scrape time)."
    );
    describe_gauge!(
        "durable_ready_instances",
        "Instances with work ready to run and no node working on them (read from the store at scrape time)."
    );
    describe_gauge!(
        "durable_ready_activities",
        "Activities ready to run and not running (read from the store at scrape time)."
    );
    describe_gauge!(
        "durable_due_timers",
        "Durable timers that are due and not yet handed to their orchestration (read from the store at scrape time)."
    );
}

/// Counters of one orchestrator.
struct Orchestrator {
    started: Counter,
    completed: Counter,
    failed: Counter,
    terminated: Counter,
}

impl Orchestrator {
    fn new(name: &str) -> Self {
        let label = [("orchestrator", name.to_owned())];
        Orchestrator {
            started: counter!("durable_instances_started_total", &label),
            completed: counter!("durable_instances_completed_total", &label),
            failed: counter!("durable_instances_failed_total", &label),
            terminated: counter!("durable_instances_terminated_total", &label),
        }
    }
}

/// Counters of one activity.
pub(crate) struct Activity {
    pub(crate) executions: Counter,
    pub(crate) failures: Counter,
    pub(crate) retries: Counter,
    pub(crate) duration: Histogram,
}

impl Activity {
    fn new(name: &str) -> Self {
        let label = [("activity", name.to_owned())];
        Activity {
            executions: counter!("durable_activity_executions_total", &label),
            failures: counter!("durable_activity_failures_total", &label),
            retries: counter!("durable_activity_retries_total", &label),
            duration: histogram!("durable_activity_duration_seconds", &label),
        }
    }
}

/// The handles of one runtime.
pub(crate) struct Metrics {
    pub(crate) turns: Counter,
    pub(crate) turns_discarded: Counter,
    pub(crate) replays: Counter,
    pub(crate) cache_hits: Counter,
    pub(crate) cache_misses: Counter,
    pub(crate) timer_lateness: Histogram,
    pub(crate) events_raised: Counter,
    pub(crate) direct_deliveries: Counter,
    pub(crate) queued_deliveries: Counter,
    pub(crate) stalls: Counter,
    orchestrators: HashMap<String, Orchestrator>,
    unregistered_orchestrator: Orchestrator,
    activities: HashMap<String, Activity>,
    unregistered_activity: Activity,
}

impl Metrics {
    /// Registers the handles with the installed recorder (no-ops when there is none).
    pub(crate) fn new(orchestrators: &[String], activities: &[String]) -> Self {
        describe();
        let delivery = |path: &'static str| counter!("durable_event_deliveries_total", "delivery" => path);
        Metrics {
            turns: counter!("durable_turns_total"),
            turns_discarded: counter!("durable_turns_discarded_total"),
            replays: counter!("durable_replays_total"),
            cache_hits: counter!("durable_execution_cache_hits_total"),
            cache_misses: counter!("durable_execution_cache_misses_total"),
            timer_lateness: histogram!("durable_timer_lateness_seconds"),
            events_raised: counter!("durable_events_raised_total"),
            direct_deliveries: delivery("direct"),
            queued_deliveries: delivery("queued"),
            stalls: counter!("durable_stalls_total"),
            orchestrators: orchestrators.iter().map(|n| (n.clone(), Orchestrator::new(n))).collect(),
            unregistered_orchestrator: Orchestrator::new(UNREGISTERED),
            activities: activities.iter().map(|n| (n.clone(), Activity::new(n))).collect(),
            unregistered_activity: Activity::new(UNREGISTERED),
        }
    }

    fn orchestrator(&self, name: &str) -> &Orchestrator {
        self.orchestrators.get(name).unwrap_or(&self.unregistered_orchestrator)
    }

    /// The counters of activity `name`.
    pub(crate) fn activity(&self, name: &str) -> &Activity {
        self.activities.get(name).unwrap_or(&self.unregistered_activity)
    }

    /// Counts what a committed turn of orchestrator `name` did: whether it started the
    /// execution, and the status it left (counted when it moved from unfinished to finished).
    pub(crate) fn turn_committed(
        &self,
        name: &str,
        started: bool,
        before: RuntimeStatus,
        after: RuntimeStatus,
    ) {
        self.turns.increment(1);
        if !started && (before == after || before.is_terminal()) {
            return;
        }
        let o = self.orchestrator(name);
        if started {
            o.started.increment(1);
        }
        if before.is_terminal() {
            return;
        }
        match after {
            RuntimeStatus::Completed => o.completed.increment(1),
            RuntimeStatus::Failed => o.failed.increment(1),
            RuntimeStatus::Terminated => o.terminated.increment(1),
            _ => {}
        }
    }
}

/// Sets the store gauges (instances per status, backlogs) from `store`, for a scrape. A store
/// that cannot answer a part leaves those gauges as they were.
pub async fn refresh_store_gauges(store: &dyn Store) {
    match store.backlog().await {
        Ok(b) => {
            gauge_set(gauge!("durable_ready_instances"), b.ready_instances);
            gauge_set(gauge!("durable_ready_activities"), b.ready_activities);
            gauge_set(gauge!("durable_due_timers"), b.due_timers);
        }
        Err(e) => tracing::debug!(error = %e, "the store did not report its backlog"),
    }
    match store.count_instances().await {
        Ok(counts) => {
            for status in RuntimeStatus::ALL {
                gauge_set(gauge!("durable_instances", "status" => status.as_str()), counts.get(status));
            }
        }
        Err(e) => tracing::debug!(error = %e, "the store did not count its instances"),
    }
}

fn gauge_set(g: Gauge, value: u64) {
    g.set(value as f64);
}
