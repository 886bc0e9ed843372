//! [`RuntimeOptions`]: concurrency, leases, batching and caching of a runtime node.

use durable_core::InvalidSetting;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Settings of a runtime node. The defaults suit one node on a small machine.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeOptions {
    /// Orchestration turns running at once (turns of one instance never overlap).
    pub max_concurrent_turns: usize,
    /// Activities running at once.
    pub max_concurrent_activities: usize,
    /// Work items fetched per store call.
    pub fetch_batch: usize,
    /// Lease on an instance while its turn runs.
    #[serde(with = "duration_ms")]
    pub orchestration_lease: Duration,
    /// Lease on an activity while it runs; renewed at half-time for long activities.
    #[serde(with = "duration_ms")]
    pub activity_lease: Duration,
    /// Executions kept in memory between turns (0 = always replay from history).
    pub execution_cache_capacity: usize,
    /// Longest wait for a work notification before checking the store again (a safety net;
    /// work is normally found through notifications).
    #[serde(with = "duration_ms")]
    pub idle_check: Duration,
    /// How long shutdown waits for running turns and activities before leaving them to lease
    /// expiry.
    #[serde(with = "duration_ms")]
    pub shutdown_grace: Duration,
    /// Most history events of one execution; beyond it the instance fails with `[DT0009]`
    /// (orchestrators that loop forever should use `continue_as_new`).
    pub max_history_events: usize,
    /// Largest input, output, event or custom status in bytes of JSON; larger ones fail with
    /// `[DT0008]` (or are refused at the client).
    pub max_payload_bytes: usize,
    /// What this node does with work for an orchestrator or activity it does not have.
    pub unknown_functions: UnknownFunctions,
}

/// What a node does with work for an orchestrator or activity that is not registered on it
/// (a node of an older or newer build in a rolling deploy, a process started with the wrong
/// registry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownFunctions {
    /// Leave the work to a node that has the function (the default): the lease is released with
    /// a growing delay (1 s doubling to 1 min), every message stays queued, one warning per
    /// instance is logged, and the instance's status shows why it waits until a node that has
    /// the function makes progress with it. Nothing is lost.
    #[default]
    Wait,
    /// Fail the instance at once (`[DT0002]` for an orchestrator, `[DT0003]` for an activity).
    Fail,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        RuntimeOptions {
            // 500 per core: bursts of due timers fire without waiting for the previous group
            // commit (p99 lateness 12–13 ms instead of 19–25 ms with 100 per core). The price:
            // an answer that races its activity's result more often gets a turn of its own
            // (`bench verify`, which answers at once: 2.36 turns per verification instead of
            // 2.0); a person answering seconds later takes that turn anyway (BENCHMARKS.md).
            max_concurrent_turns: 500 * cores,
            max_concurrent_activities: 100 * cores,
            fetch_batch: 256,
            orchestration_lease: Duration::from_secs(30),
            activity_lease: Duration::from_secs(60),
            execution_cache_capacity: 10_000,
            idle_check: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            max_history_events: durable_core::Limits::default().max_history_events,
            max_payload_bytes: durable_core::Limits::default().max_payload_bytes,
            unknown_functions: UnknownFunctions::Wait,
        }
    }
}

impl RuntimeOptions {
    /// The engine limits these options set.
    pub fn limits(&self) -> durable_core::Limits {
        durable_core::Limits {
            max_history_events: self.max_history_events,
            max_payload_bytes: self.max_payload_bytes,
        }
    }

    /// Checks the settings; the message names the wrong one.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.max_concurrent_turns == 0 || self.max_concurrent_activities == 0 || self.fetch_batch == 0 {
            return Err(InvalidSetting::new(
                "max_concurrent_turns",
                "max_concurrent_turns, max_concurrent_activities and fetch_batch must be at least 1",
            ));
        }
        if self.max_history_events < 10 || self.max_payload_bytes < 1024 {
            return Err(InvalidSetting::new(
                "max_history_events",
                "max_history_events must be at least 10 and max_payload_bytes at least 1024",
            ));
        }
        if self.orchestration_lease < Duration::from_millis(100)
            || self.activity_lease < Duration::from_millis(100)
        {
            return Err(InvalidSetting::new("orchestration_lease", "leases must be at least 100 ms"));
        }
        Ok(())
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
