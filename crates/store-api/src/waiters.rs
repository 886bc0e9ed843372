//! [`CompletionWaiters`]: the in-process registry behind `Store::listen_for_completion`.

use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::oneshot;

/// Per-instance one-shot listeners, notified when a commit finishes the instance.
#[derive(Default)]
pub struct CompletionWaiters {
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
}

impl CompletionWaiters {
    /// Registers a listener for `instance_id`.
    pub fn listen(&self, instance_id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut map = self.waiters.lock();
        let list = map.entry(instance_id.to_owned()).or_default();
        // Drop listeners whose receivers are gone, so abandoned waits do not accumulate.
        list.retain(|s| !s.is_closed());
        list.push(tx);
        rx
    }

    /// Wakes every listener of `instance_id`.
    pub fn notify(&self, instance_id: &str) {
        let senders = {
            let mut map = self.waiters.lock();
            if map.is_empty() {
                return;
            }
            map.remove(instance_id)
        };
        for s in senders.into_iter().flatten() {
            let _ = s.send(());
        }
    }

    /// Wakes every listener (on shutdown).
    pub fn notify_all(&self) {
        let all: Vec<_> = self.waiters.lock().drain().collect();
        for (_, senders) in all {
            for s in senders {
                let _ = s.send(());
            }
        }
    }
}
