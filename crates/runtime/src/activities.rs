//! The activity dispatcher: fetches activity work items, runs them concurrently (each in its own
//! task, so a panic is contained), keeps their leases alive while they run, and reports the
//! outcome to the instance.

use crate::Shared;
use crate::orchestrations::{ErrorBackoff, drain};
use crate::registry::ActivityContext;
use durable_core::{FailureDetails, codes};
use durable_store::{ActivityOutcome, ActivityWorkItem, Error as StoreError};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, debug_span, warn};

/// Runs until shutdown: fetch → spawn activities → wait for work.
pub(crate) async fn run(shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(shared.options.max_concurrent_activities));
    let mut running = JoinSet::new();
    let mut backoff = ErrorBackoff::default();
    loop {
        while running.try_join_next().is_some() {}
        if shared.shutdown.is_cancelled() {
            break;
        }
        let available = permits.available_permits();
        if available == 0 {
            tokio::select! {
                _ = shared.shutdown.cancelled() => break,
                _ = running.join_next() => continue,
            }
        }
        let max = available.min(shared.options.fetch_batch);
        match shared.store.fetch_activity_work(max, shared.options.activity_lease).await {
            Ok(items) if items.is_empty() => {
                backoff.reset();
                tokio::select! {
                    _ = shared.shutdown.cancelled() => break,
                    _ = shared.store.wait_for_activity_work(shared.options.idle_check) => {}
                }
            }
            Ok(items) => {
                backoff.reset();
                for item in items {
                    let permit =
                        permits.clone().try_acquire_owned().expect("fetched no more items than free permits");
                    let shared = shared.clone();
                    let span = debug_span!("activity", name = %item.name, instance_id = %item.instance_id, task_id = item.task_id);
                    running.spawn(
                        async move {
                            execute(&shared, item).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
            }
            Err(e) => {
                warn!(error = %e, "fetching activity work failed; retrying");
                if !backoff.wait(&shared).await {
                    break;
                }
            }
        }
    }
    drain(&shared, running).await;
}

async fn execute(shared: &Shared, item: ActivityWorkItem) {
    let mut lease = item.lease.clone();
    let outcome = match shared.registry.get_activity(&item.name) {
        None => ActivityOutcome::Failed(
            FailureDetails::new(
                "UnknownActivity",
                format!(
                    "[{}] no activity named '{}' is registered on this node; register it with Registry::activity",
                    codes::UNKNOWN_ACTIVITY,
                    item.name
                ),
            )
            .non_retriable(),
        ),
        Some(activity) => {
            let ctx = ActivityContext {
                instance_id: item.instance_id.clone(),
                execution_id: item.execution_id.clone(),
                name: item.name.clone(),
                task_id: item.task_id,
                attempt: item.attempt,
            };
            let mut task = tokio::spawn(activity(ctx, item.input.clone()));
            let renew_every = shared.options.activity_lease / 2;
            loop {
                tokio::select! {
                    joined = &mut task => break outcome_of(joined),
                    _ = tokio::time::sleep(renew_every) => {
                        match shared.store.renew_activity_lease(&lease, shared.options.activity_lease).await {
                            Ok(renewed) => lease = renewed,
                            Err(e) => warn!(error = %e, "could not renew the activity lease; its result may be discarded"),
                        }
                    }
                }
            }
        }
    };
    let outcome = match outcome {
        ActivityOutcome::Completed(Some(output)) => {
            let what = format!("the output of activity '{}'", item.name);
            match shared.options.limits().check_payload(&what, output.len()) {
                Ok(()) => ActivityOutcome::Completed(Some(output)),
                Err(failure) => ActivityOutcome::Failed(failure),
            }
        }
        other => other,
    };
    match shared.store.complete_activity(&lease, outcome).await {
        Ok(()) => {
            shared.metrics.activities.fetch_add(1, Ordering::Relaxed);
        }
        Err(StoreError::LeaseLost) => {
            debug!("activity result discarded: its lease was lost and it will run again")
        }
        Err(e) => {
            warn!(error = %e, "could not record the activity result; it will run again");
            let _ = shared.store.abandon_activity_work(&lease, Duration::from_secs(1)).await;
        }
    }
}

fn outcome_of(joined: Result<crate::registry::ActivityOutput, tokio::task::JoinError>) -> ActivityOutcome {
    match joined {
        Ok(Ok(output)) => ActivityOutcome::Completed(output),
        Ok(Err(failure)) => ActivityOutcome::Failed(failure),
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".into());
            ActivityOutcome::Failed(FailureDetails::new(
                "Panic",
                format!("[{}] the activity panicked: {message}", codes::ACTIVITY_PANIC),
            ))
        }
        Err(_) => {
            ActivityOutcome::Failed(FailureDetails::new("Cancelled", "the activity task was cancelled"))
        }
    }
}
