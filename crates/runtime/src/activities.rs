//! The activity dispatcher: fetches activity work items, runs them concurrently (each in its own
//! task, so a panic is contained), keeps their leases alive while they run, and reports the
//! outcome to the instance.

use crate::UnknownFunctions;
use crate::dispatch::Dispatcher;
use crate::registry::ActivityContext;
use crate::shared::Shared;
use crate::tracing_spans::ExecutionTrace;
use durable_core::{FailureDetails, codes};
use durable_store::{ActivityOutcome, ActivityWorkItem, Error as StoreError};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracing::{Instrument, debug, debug_span, warn};

/// Activities.
pub(crate) struct Activities;

impl Dispatcher for Activities {
    type Item = ActivityWorkItem;
    const KIND: &'static str = "activity work";

    fn concurrency(shared: &Shared) -> usize {
        shared.options.max_concurrent_activities
    }

    async fn fetch(shared: &Shared, max: usize) -> Result<Vec<ActivityWorkItem>, StoreError> {
        shared.store.fetch_activity_work(max, shared.options.activity_lease).await
    }

    async fn wait(shared: &Shared) {
        shared.store.wait_for_activity_work(shared.options.idle_check).await;
    }

    fn span(item: &ActivityWorkItem) -> tracing::Span {
        debug_span!("activity", name = %item.name, instance_id = %item.instance_id, task_id = item.task_id)
    }

    async fn process(shared: Arc<Shared>, item: ActivityWorkItem) {
        execute(&shared, item).await;
    }
}

async fn execute(shared: &Shared, item: ActivityWorkItem) {
    let mut lease = item.lease.clone();
    let activity = shared.registry.get_activity(&item.name);
    if activity.is_none() && shared.options.unknown_functions == UnknownFunctions::Wait {
        // Never consume what this node cannot process: the work item stays for a node that
        // has the activity. Its attempt count (persisted at every fetch) sets the delay, so
        // the backoff survives restarts.
        let reason = codes::coded(
            codes::UNKNOWN_ACTIVITY,
            format_args!(
                "no activity named '{}' is registered on the node that tried to run it; the activity \
             waits for a node that has it",
                item.name
            ),
        );
        crate::stalls::leave_to_another_node(shared, &item.instance_id, &reason).await;
        let delay = crate::stalls::backoff(item.attempt.saturating_sub(1));
        if let Err(e) = shared.store.abandon_activity_work(&lease, delay).await {
            debug!(error = %e, "could not release the activity; its lease will expire");
        }
        return;
    }
    let outcome = match activity {
        None => ActivityOutcome::Failed(
            FailureDetails::new(
                "UnknownActivity",
                codes::coded(codes::UNKNOWN_ACTIVITY, format_args!("no activity named '{}' is registered on this node; register it with Registry::activity", item.name)),
            )
            .non_retriable(),
        ),
        Some(activity) => {
            let meters = shared.meters.activity(&item.name);
            meters.executions.increment(1);
            if item.attempt > 1 {
                meters.retries.increment(1);
            }
            let span = activity_span(shared, &item).await;
            let ctx = ActivityContext {
                instance_id: item.instance_id.clone(),
                execution_id: item.execution_id.clone(),
                name: item.name.clone(),
                task_id: item.task_id,
                attempt: item.attempt,
            };
            let started = std::time::Instant::now();
            let run = activity(ctx, item.input.clone());
            let mut task = match &span {
                Some(span) => tokio::spawn(run.instrument(span.clone())),
                None => tokio::spawn(run),
            };
            let renew_every = shared.options.activity_lease / 2;
            loop {
                tokio::select! {
                    joined = &mut task => {
                        let outcome = outcome_of(joined);
                        meters.duration.record(started.elapsed().as_secs_f64());
                        if let ActivityOutcome::Failed(failure) = &outcome {
                            meters.failures.increment(1);
                            if let (Some(sink), Some(span)) = (&shared.spans, &span) {
                                sink.activity_failed(span, &failure.message);
                            }
                        }
                        break outcome;
                    }
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
            debug!("activity result discarded: its lease was lost and it will run again");
        }
        Err(e) => {
            warn!(error = %e, "could not record the activity result; it will run again");
            let _ = shared.store.abandon_activity_work(&lease, Duration::from_secs(1)).await;
        }
    }
}

/// The span of this activity execution, a child of its orchestration's span, when tracing is
/// on and the orchestration is traced. The orchestration's span is found in the execution
/// cache (the usual case: the turn that scheduled the activity ran here), else in its history.
async fn activity_span(shared: &Shared, item: &ActivityWorkItem) -> Option<tracing::Span> {
    let sink = shared.spans.as_ref()?;
    let parent = match shared.cache.span_of(&item.instance_id, &item.execution_id) {
        Some(span) => span,
        None => {
            let history = shared.store.read_history(&item.instance_id).await.ok()?;
            ExecutionTrace::from_history(&item.instance_id, &item.execution_id, &history)?.span().clone()
        }
    };
    Some(sink.activity_span(&parent, &item.name, &item.instance_id, item.attempt))
}

fn outcome_of(joined: Result<crate::registry::ActivityOutput, tokio::task::JoinError>) -> ActivityOutcome {
    match joined {
        Ok(Ok(output)) => ActivityOutcome::Completed(output),
        Ok(Err(failure)) => ActivityOutcome::Failed(failure),
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let message = durable_core::panic_message(&*panic);
            ActivityOutcome::Failed(FailureDetails::new(
                "Panic",
                codes::coded(codes::ACTIVITY_PANIC, format_args!("the activity panicked: {message}")),
            ))
        }
        Err(_) => {
            ActivityOutcome::Failed(FailureDetails::new("Cancelled", "the activity task was cancelled"))
        }
    }
}
