//! Work this node leaves to others because it lacks the function (see
//! [`UnknownFunctions::Wait`](crate::UnknownFunctions::Wait)).
//!
//! The work itself is never touched: its lease is released with a delay and its messages stay
//! queued, so a node that has the function (or this one after a restart with it) picks it up
//! where it was. What this module keeps is per-node bookkeeping, so that each instance is
//! reported once (a warning and a stall note in its status) rather than on every retry, and
//! its retries back off. It is bounded: past [`MAX_TRACKED`] instances it starts over, which
//! costs at most one more warning and a shorter delay per instance.

use crate::shared::Shared;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracing::warn;

/// Instances tracked before the bookkeeping starts over (memory stays bounded).
const MAX_TRACKED: usize = 10_000;

/// The first retry delay; it doubles with every retry up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(60);

/// The retry delay after `retries` earlier retries.
pub(crate) fn backoff(retries: u32) -> Duration {
    FIRST_DELAY.saturating_mul(1 << retries.min(6)).min(MAX_DELAY)
}

/// How often this node left each instance's work.
#[derive(Default)]
pub(crate) struct Stalls {
    retries: Mutex<HashMap<String, u32>>,
}

impl Stalls {
    /// Counts one more stall of `instance_id`: whether it is the first on this node, and how
    /// many times it stalled here before.
    fn note(&self, instance_id: &str) -> (bool, u32) {
        let mut retries = self.retries.lock();
        if retries.len() >= MAX_TRACKED && !retries.contains_key(instance_id) {
            retries.clear();
        }
        let n = retries.entry(instance_id.to_owned()).or_insert(0);
        let before = *n;
        *n = n.saturating_add(1);
        (before == 0, before)
    }
}

/// Reports that this node leaves `instance_id`'s work (for `reason`) to a node that has the
/// function: counts it, and the first time on this node logs one warning and records the reason
/// in the instance's status. Returns the delay before the work should be offered again.
pub(crate) async fn leave_to_another_node(shared: &Shared, instance_id: &str, reason: &str) -> Duration {
    shared.metrics.stalls.fetch_add(1, Ordering::Relaxed);
    shared.meters.stalls.increment(1);
    let (first, retries) = shared.stalls.note(instance_id);
    if first {
        warn!(%instance_id, %reason, "this node cannot run the instance's work; it is left to a node that can");
        if let Err(e) = shared.store.set_stall(instance_id, Some(reason)).await {
            tracing::debug!(error = %e, "could not record why the instance waits");
        }
    }
    backoff(retries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_a_minute() {
        let delays: Vec<u64> = (0..9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn each_instance_is_first_once_and_memory_is_bounded() {
        let stalls = Stalls::default();
        assert_eq!(stalls.note("a"), (true, 0));
        assert_eq!(stalls.note("a"), (false, 1));
        for i in 0..MAX_TRACKED * 2 {
            stalls.note(&i.to_string());
        }
        assert!(stalls.retries.lock().len() <= MAX_TRACKED);
    }
}
