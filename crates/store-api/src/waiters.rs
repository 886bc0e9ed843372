//! [`CompletionWaiters`]: the in-process registry behind `Store::listen_for_completion`.
//!
//! Memory follows the listeners that still wait, never the instances that were ever waited
//! for: a listener whose receiver was dropped without a notification (its caller found the
//! instance finished already, or gave up) is swept out, by the next listen on the same instance
//! or by a sweep of the whole registry once abandoned entries could outnumber live ones.

use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::oneshot;

/// Below this many instances the registry is never swept.
const SWEEP_MIN: usize = 1024;

/// Per-instance one-shot listeners, notified when a commit finishes the instance.
pub struct CompletionWaiters {
    inner: Mutex<Inner>,
}

struct Inner {
    waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
    /// The registry is swept when it holds more instances than this.
    sweep_at: usize,
}

impl Default for CompletionWaiters {
    fn default() -> Self {
        CompletionWaiters { inner: Mutex::new(Inner { waiters: HashMap::new(), sweep_at: SWEEP_MIN }) }
    }
}

impl CompletionWaiters {
    /// Registers a listener for `instance_id`.
    pub fn listen(&self, instance_id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.inner.lock();
        let list = inner.waiters.entry(instance_id.to_owned()).or_default();
        // Drop listeners whose receivers are gone, so abandoned waits do not accumulate.
        list.retain(|s| !s.is_closed());
        list.push(tx);
        if inner.waiters.len() > inner.sweep_at {
            inner.waiters.retain(|_, list| {
                list.retain(|s| !s.is_closed());
                !list.is_empty()
            });
            inner.sweep_at = (inner.waiters.len() * 2).max(SWEEP_MIN);
        }
        rx
    }

    /// Wakes every listener of `instance_id`.
    pub fn notify(&self, instance_id: &str) {
        let senders = {
            let mut inner = self.inner.lock();
            if inner.waiters.is_empty() {
                return;
            }
            inner.waiters.remove(instance_id)
        };
        for s in senders.into_iter().flatten() {
            let _ = s.send(());
        }
    }

    /// Wakes every listener (on shutdown).
    pub fn notify_all(&self) {
        let all: Vec<_> = self.inner.lock().waiters.drain().collect();
        for (_, senders) in all {
            for s in senders {
                let _ = s.send(());
            }
        }
    }

    /// How many instances have listeners registered (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.inner.lock().waiters.len()
    }

    /// True when no listener is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: a wait that finds its instance finished drops its receiver without a
    /// notification. One such entry per instance ever waited for used to stay forever (and,
    /// scattered over the heap, pinned a page each: ~7 KB of RSS per answered instance in a
    /// drain of parked verifications).
    #[test]
    fn abandoned_listeners_do_not_accumulate() {
        let waiters = CompletionWaiters::default();
        let live: Vec<_> = (0..100).map(|i| waiters.listen(&format!("live-{i}"))).collect();
        for i in 0..100_000 {
            drop(waiters.listen(&format!("done-{i}")));
        }
        assert!(waiters.len() <= 2 * SWEEP_MIN + 100, "{} entries for 100 live listeners", waiters.len());
        for i in 0..100 {
            waiters.notify(&format!("live-{i}"));
        }
        assert!(live.into_iter().all(|mut rx| rx.try_recv().is_ok()), "live listeners are kept and woken");
    }
}
