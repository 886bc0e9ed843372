//! Group commit: concurrent calls of one hot write (turn commits, creates, client messages,
//! activity completions) are gathered into batches, and each batch is one call of the
//! operation's batch function (see `sql/v2.sql`): one round trip, one transaction, one WAL
//! flush, and every statement of the function runs once per batch instead of once per call.
//!
//! A batch starts as soon as an in-flight slot is free and takes everything queued by then, so
//! a lone call is sent at once (no waiting to fill a batch) and batches grow only when calls
//! arrive faster than the database answers.

use durable_store::{Error, Result};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most calls in one batch: bounds the size of one transaction and of the row locks it holds.
pub(crate) const MAX_BATCH: usize = 256;

/// Batches of one operation in flight at once: while one waits for its WAL flush, the next one
/// gathers the calls that arrive meanwhile.
pub(crate) const IN_FLIGHT: usize = 2;

type Pending<I, O> = (I, oneshot::Sender<Result<O>>);

/// The queue of one operation. Dropping it ends its collector task once queued calls are
/// answered.
pub(crate) struct Group<I, O> {
    queue: mpsc::UnboundedSender<Pending<I, O>>,
}

impl<I: Send + 'static, O: Send + 'static> Group<I, O> {
    /// Starts the collector task (needs a Tokio runtime). `run` executes one batch and returns
    /// exactly one result per item, in order.
    pub(crate) fn start<F, Fut>(run: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<O>>> + Send + 'static,
    {
        let (queue, mut pending) = mpsc::unbounded_channel::<Pending<I, O>>();
        let run = Arc::new(run);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        tokio::spawn(async move {
            while let Some(first) = pending.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else { break };
                // Everything that queued up while the slot was busy joins this batch.
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match pending.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let run = run.clone();
                tokio::spawn(async move {
                    let (items, replies): (Vec<I>, Vec<_>) = batch.into_iter().unzip();
                    let n = replies.len();
                    let mut results = run(items).await;
                    debug_assert_eq!(results.len(), n, "a batch must answer every item");
                    results.resize_with(n, || Err(Error::Unavailable("the batch answered no result".into())));
                    for (reply, result) in replies.into_iter().zip(results) {
                        // A caller that went away no longer wants the answer.
                        let _ = reply.send(result);
                    }
                    drop(slot);
                });
            }
        });
        Group { queue }
    }

    /// Queues `item` and waits for its result.
    pub(crate) async fn call(&self, item: I) -> Result<O> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((item, reply)).map_err(|_| crate::codec::closed())?;
        answer.await.map_err(|_| crate::codec::closed())?
    }
}

/// A copy of a batch's error for each of its items (store errors are not `Clone`; the
/// variants callers match on are kept, the others keep their message).
pub(crate) fn copy_error(e: &Error) -> Error {
    match e {
        Error::NotFound { instance_id } => Error::NotFound { instance_id: instance_id.clone() },
        Error::AlreadyExists { instance_id, status } => {
            Error::AlreadyExists { instance_id: instance_id.clone(), status: *status }
        }
        Error::InstanceFinished { instance_id, status } => {
            Error::InstanceFinished { instance_id: instance_id.clone(), status: *status }
        }
        Error::LeaseLost => Error::LeaseLost,
        Error::Conflict(m) => Error::Conflict(m.clone()),
        Error::Invalid(m) => Error::Invalid(m.clone()),
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        Error::RateLimited(r) => Error::RateLimited(r.clone()),
        Error::StorageFull(m) => Error::StorageFull(m.clone()),
        other => Error::backend(std::io::Error::other(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn every_call_gets_its_own_result_and_calls_share_batches() {
        let batches = Arc::new(AtomicUsize::new(0));
        let counted = batches.clone();
        let group = Arc::new(Group::start(move |items: Vec<u32>| {
            counted.fetch_add(1, Ordering::Relaxed);
            async move {
                // Slow enough that calls pile up behind the in-flight batches.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                items
                    .into_iter()
                    .map(|i| if i % 7 == 0 { Err(Error::LeaseLost) } else { Ok(i * 2) })
                    .collect()
            }
        }));
        let calls: Vec<_> = (0..1000u32)
            .map(|i| {
                let group = group.clone();
                tokio::spawn(async move { (i, group.call(i).await) })
            })
            .collect();
        for call in calls {
            let (i, result) = call.await.unwrap();
            match result {
                Ok(v) => assert_eq!(v, i * 2),
                Err(Error::LeaseLost) => assert_eq!(i % 7, 0),
                Err(e) => panic!("unexpected {e}"),
            }
        }
        let n = batches.load(Ordering::Relaxed);
        assert!(n < 1000 / 4, "1000 concurrent calls should share batches, got {n} batches");
    }

    #[test]
    fn copied_errors_keep_their_kind() {
        assert!(matches!(copy_error(&Error::LeaseLost), Error::LeaseLost));
        assert!(matches!(copy_error(&Error::Conflict("x".into())), Error::Conflict(m) if m == "x"));
        assert!(
            matches!(copy_error(&Error::StorageFull("disk".into())), Error::StorageFull(m) if m == "disk")
        );
        let backend = Error::backend(std::io::Error::other("disk"));
        assert!(copy_error(&backend).to_string().contains("disk"));
    }
}
