//! State shared by the store handle, the writer thread and the readers.

use crate::codec;
use crate::dispatch::Dispatch;
use durable_store::{Clock, CompletionWaiters, StoreMetrics};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use tokio::sync::Notify;

/// Counters behind [`durable_store::Store::metrics`].
#[derive(Default)]
pub(crate) struct Metrics {
    pub transactions: AtomicU64,
    pub turns: AtomicU64,
    pub activity_completions: AtomicU64,
    pub client_writes: AtomicU64,
}

impl Metrics {
    pub(crate) fn snapshot(&self) -> StoreMetrics {
        StoreMetrics {
            transactions: self.transactions.load(Ordering::Relaxed),
            turns: self.turns.load(Ordering::Relaxed),
            activity_completions: self.activity_completions.load(Ordering::Relaxed),
            client_writes: self.client_writes.load(Ordering::Relaxed),
        }
    }
}

pub(crate) struct Shared {
    pub clock: Arc<dyn Clock>,
    pub dispatch: Mutex<Dispatch>,
    /// Wakes `wait_for_orchestration_work` callers (new ready instance, earlier wake-up time).
    pub orchestration_work: Notify,
    /// Wakes `wait_for_activity_work` callers.
    pub activity_work: Notify,
    pub waiters: CompletionWaiters,
    pub metrics: Metrics,
    pub closed: AtomicBool,
    /// When the writer last swept expired rate-limit rows (unix µs).
    pub limits_swept_at: AtomicI64,
    next_token: AtomicU64,
}

impl Shared {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Shared {
            clock,
            dispatch: Mutex::new(Dispatch::default()),
            orchestration_work: Notify::new(),
            activity_work: Notify::new(),
            waiters: CompletionWaiters::default(),
            metrics: Metrics::default(),
            closed: AtomicBool::new(false),
            limits_swept_at: AtomicI64::new(0),
            next_token: AtomicU64::new(1),
        }
    }

    /// The store clock in unix microseconds.
    pub(crate) fn now(&self) -> i64 {
        codec::us(self.clock.now())
    }

    /// A lease token never handed out before by this process (leases do not outlive it).
    pub(crate) fn token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
