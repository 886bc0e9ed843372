//! [`ExecutionCache`]: executions kept in memory between turns, least recently used evicted.
//!
//! A cached execution saves replaying the history on the next turn. Correctness never depends
//! on it: the dispatcher uses a cached execution only if its execution id and history length
//! match the store's, and rebuilds from history otherwise.

use crate::tracing_spans::{ExecutionTrace, SpanRef};
use durable_core::Execution;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};

/// A bounded LRU of executions by instance id.
pub struct ExecutionCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

/// A cached execution with its tracing state (only when tracing is on).
type Entry = (Execution, Option<Box<ExecutionTrace>>, u64);

struct Inner {
    entries: HashMap<String, Entry>,
    /// Insertion order with generations; stale entries (taken or re-inserted) are skipped.
    order: VecDeque<(String, u64)>,
    generation: u64,
    hits: u64,
    misses: u64,
}

impl ExecutionCache {
    /// A cache holding at most `capacity` executions (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        ExecutionCache {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
                generation: 0,
                hits: 0,
                misses: 0,
            }),
            capacity,
        }
    }

    /// Removes and returns the execution of `instance_id`, if cached. The caller puts it back
    /// after a successful turn, so a turn always owns its execution exclusively.
    pub fn take(&self, instance_id: &str) -> Option<Execution> {
        self.take_traced(instance_id).map(|(e, _)| e)
    }

    /// [`take`](Self::take), with the execution's tracing state.
    pub(crate) fn take_traced(&self, instance_id: &str) -> Option<(Execution, Option<Box<ExecutionTrace>>)> {
        let mut inner = self.inner.lock();
        let found = inner.entries.remove(instance_id).map(|(e, t, _)| (e, t));
        if found.is_some() {
            inner.hits += 1;
        } else {
            inner.misses += 1;
        }
        found
    }

    /// Caches `execution`, evicting the least recently used ones beyond capacity.
    pub fn put(&self, execution: Execution) {
        self.put_traced(execution, None);
    }

    /// [`put`](Self::put), with the execution's tracing state.
    pub(crate) fn put_traced(&self, execution: Execution, trace: Option<Box<ExecutionTrace>>) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.inner.lock();
        inner.generation += 1;
        let generation = inner.generation;
        let id = execution.instance_id().to_owned();
        inner.order.push_back((id.clone(), generation));
        inner.entries.insert(id, (execution, trace, generation));
        while inner.entries.len() > self.capacity {
            let Some((old, g)) = inner.order.pop_front() else { break };
            if inner.entries.get(&old).is_some_and(|(_, _, eg)| *eg == g) {
                inner.entries.remove(&old);
            }
        }
        // Keep the order queue from growing with stale entries.
        if inner.order.len() > 2 * self.capacity + 1024 {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(id, g)| entries.get(id).is_some_and(|(_, _, eg)| eg == g));
        }
    }

    /// Applies `f` to the cached execution of `instance_id`, if any, without taking it.
    pub fn peek<R>(&self, instance_id: &str, f: impl FnOnce(&Execution) -> R) -> Option<R> {
        self.inner.lock().entries.get(instance_id).map(|(e, _, _)| f(e))
    }

    /// The span of the cached execution `execution_id` of `instance_id`, when it is cached
    /// and traced.
    pub(crate) fn span_of(&self, instance_id: &str, execution_id: &str) -> Option<SpanRef> {
        let inner = self.inner.lock();
        let (execution, trace, _) = inner.entries.get(instance_id)?;
        (execution.execution_id() == execution_id).then(|| trace.as_ref().map(|t| t.span().clone()))?
    }

    /// Drops the execution of `instance_id`.
    pub fn remove(&self, instance_id: &str) {
        self.inner.lock().entries.remove(instance_id);
    }

    /// (cached executions, hits, misses).
    pub fn stats(&self) -> (usize, u64, u64) {
        let inner = self.inner.lock();
        (inner.entries.len(), inner.hits, inner.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let cache = ExecutionCache::new(2);
        cache.put(Execution::new("a", "x"));
        cache.put(Execution::new("b", "x"));
        let a = cache.take("a").unwrap();
        cache.put(a);
        cache.put(Execution::new("c", "x"));
        assert!(cache.take("b").is_none(), "b was least recently used");
        assert!(cache.take("a").is_some());
        assert!(cache.take("c").is_some());
        assert_eq!(cache.stats().0, 0);
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache = ExecutionCache::new(0);
        cache.put(Execution::new("a", "x"));
        assert!(cache.take("a").is_none());
    }

    #[test]
    fn order_queue_stays_bounded() {
        let cache = ExecutionCache::new(4);
        for _ in 0..10_000 {
            let e = cache.take("a").unwrap_or_else(|| Execution::new("a", "x"));
            cache.put(e);
        }
        assert!(cache.inner.lock().order.len() <= 2 * 4 + 1024 + 1);
    }
}
