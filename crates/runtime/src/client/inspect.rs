//! What a running instance waits for, as far as this node knows (for dashboards).

use super::Client;

impl Client {
    /// Of `candidates`, the event names the instance's orchestrator waits for right now, in
    /// the order given; `None` when this node does not hold the instance's execution in its
    /// cache (it runs elsewhere, was evicted, or has finished), so nobody can tell without a
    /// replay. Reads memory only: no store access.
    pub fn awaited_events(&self, instance_id: &str, candidates: &[&str]) -> Option<Vec<String>> {
        self.shared.cache.peek(instance_id, |execution| {
            candidates
                .iter()
                .filter(|name| execution.waits_for_event(name))
                .map(|n| (*n).to_owned())
                .collect()
        })
    }
}
