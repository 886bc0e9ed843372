//! The dispatch loop both dispatchers share: fetch as much work as there are free slots, run
//! each item in its own task, sleep on the store's notification when there is nothing to do,
//! back off while the store fails, and on shutdown wait a grace period for running work.

use crate::shared::Shared;
use durable_store::Error as StoreError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{Instrument, warn};

/// One kind of work (orchestration turns, activities).
pub(crate) trait Dispatcher: Send + Sync + 'static {
    /// A leased work item.
    type Item: Send + 'static;

    /// What the logs call it ("orchestration work", "activity work").
    const KIND: &'static str;

    /// Items running at once.
    fn concurrency(shared: &Shared) -> usize;

    /// Leases up to `max` items; never blocks waiting for work.
    fn fetch(shared: &Shared, max: usize)
    -> impl Future<Output = Result<Vec<Self::Item>, StoreError>> + Send;

    /// Resolves when work may be available (or after the idle check).
    fn wait(shared: &Shared) -> impl Future<Output = ()> + Send;

    /// The tracing span of an item's task.
    fn span(item: &Self::Item) -> tracing::Span;

    /// Runs one item to its end (including reporting its result to the store).
    fn process(shared: Arc<Shared>, item: Self::Item) -> impl Future<Output = ()> + Send;
}

/// Runs until shutdown: fetch → spawn → wait for work.
pub(crate) async fn run<D: Dispatcher>(shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(D::concurrency(&shared)));
    let mut tasks = JoinSet::new();
    let mut backoff = ErrorBackoff::default();
    loop {
        while tasks.try_join_next().is_some() {}
        if shared.shutdown.is_cancelled() {
            break;
        }
        let available = permits.available_permits();
        if available == 0 {
            tokio::select! {
                _ = shared.shutdown.cancelled() => break,
                _ = tasks.join_next() => continue,
            }
        }
        let max = available.min(shared.options.fetch_batch);
        match D::fetch(&shared, max).await {
            Ok(items) if items.is_empty() => {
                backoff.reset();
                tokio::select! {
                    _ = shared.shutdown.cancelled() => break,
                    _ = D::wait(&shared) => {}
                }
            }
            Ok(items) => {
                backoff.reset();
                for item in items {
                    let permit =
                        permits.clone().try_acquire_owned().expect("fetched no more items than free permits");
                    let span = D::span(&item);
                    // A turn's future is several KiB. Boxed, the task's cell holds a pointer, so
                    // spawning and joining move 8 bytes instead of copying the whole state.
                    let work = Box::pin(D::process(shared.clone(), item));
                    tasks.spawn(
                        async move {
                            work.await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
            }
            Err(e) => {
                warn!(error = %e, kind = D::KIND, "fetching work failed; retrying");
                if !backoff.wait(&shared).await {
                    break;
                }
            }
        }
    }
    drain(&shared, tasks).await;
}

/// Waits for running tasks up to the shutdown grace period, then abandons the rest to lease
/// expiry (their work is redelivered).
async fn drain(shared: &Shared, mut tasks: JoinSet<()>) {
    let grace = shared.options.shutdown_grace;
    let all_done = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all_done).await.is_err() {
        warn!(remaining = tasks.len(), "shutdown grace period over; unfinished work will be redelivered");
        tasks.abort_all();
    }
}

/// Exponential backoff after store errors (not a polling loop: it only runs while errors last).
#[derive(Default)]
struct ErrorBackoff {
    failures: u32,
}

impl ErrorBackoff {
    fn reset(&mut self) {
        self.failures = 0;
    }

    /// Sleeps for the next delay; false when shutdown began.
    async fn wait(&mut self, shared: &Shared) -> bool {
        self.failures += 1;
        let delay = Duration::from_millis(50 * 2u64.pow(self.failures.min(7))).min(Duration::from_secs(5));
        tokio::select! {
            _ = shared.shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}
