//! Metrics both stores report, through the [`metrics`] facade (no-ops without a recorder).

use metrics::{Histogram, describe_histogram, histogram};
use std::time::Duration;

/// Commit latency and batch size of one store's group commit.
#[derive(Clone)]
pub struct CommitMeters {
    latency: Histogram,
    batch_size: Histogram,
}

impl CommitMeters {
    /// Registers the histograms of store `store` (`"sqlite"`, `"postgres"`) with the installed
    /// recorder.
    pub fn new(store: &'static str) -> Self {
        describe_histogram!(
            "durable_store_commit_seconds",
            metrics::Unit::Seconds,
            "Time of one store transaction of the group commit, from its start to its durable COMMIT."
        );
        describe_histogram!(
            "durable_store_commit_batch_size",
            metrics::Unit::Count,
            "Operations (turns, starts, events, activity results, …) committed together in one transaction."
        );
        CommitMeters {
            latency: histogram!("durable_store_commit_seconds", "store" => store),
            batch_size: histogram!("durable_store_commit_batch_size", "store" => store),
        }
    }

    /// Records one committed transaction of `operations` that took `elapsed`.
    pub fn committed(&self, operations: usize, elapsed: Duration) {
        self.latency.record(elapsed.as_secs_f64());
        self.batch_size.record(operations as f64);
    }
}
