//! Activity dispatch: fetch, attempts, completion, leases, abandon and waiting for work.

use super::*;
use crate::{Error, NewActivity, NewExecution, NewTimer};
use durable_core::FailureDetails;
use std::sync::Arc;

/// Starts `instance_id` and runs a turn that schedules activities `names` (task ids 0, 1, ...).
async fn schedule<S: Store>(store: &S, instance_id: &str, names: &[&str]) {
    start(store, instance_id).await;
    store.send_message(instance_id, raised("go", "1")).await.unwrap();
    run_turn(store, instance_id, |c| {
        for (i, name) in names.iter().enumerate() {
            let input = Some(json(&i.to_string()));
            c.activities.push(NewActivity { task_id: i as u32, name: (*name).into(), input });
        }
    })
    .await;
}

/// Fetches until `n` activities are leased (in fetch order).
async fn fetch_activities<S: Store>(store: &S, n: usize, lease: Duration) -> Vec<ActivityWorkItem> {
    let mut got = Vec::new();
    poll!(format!("{n} activities"), store.wait_for_activity_work(POLL).await, {
        got.extend(store.fetch_activity_work(n - got.len(), lease).await.unwrap());
        (got.len() >= n).then_some(())
    });
    got
}

/// Activities are fetched oldest first with their attempt count; completions and failures
/// reach the instance as `TaskCompleted` / `TaskFailed`; a lease works once.
pub async fn activity_fetch_complete_and_attempts<S: Store>(store: S) {
    schedule(&store, "act", &["First", "Second", "Third"]).await;
    let two = fetch_activities(&store, 2, LONG).await;
    assert_eq!(two.iter().map(|a| (a.task_id, a.attempt)).collect::<Vec<_>>(), [(0, 1), (1, 1)]);
    let first = &two[0];
    assert_eq!((first.instance_id.as_str(), first.execution_id.as_str()), ("act", "e1"));
    assert_eq!((first.name.as_str(), &first.input), ("First", &Some(json("0"))));
    assert_ne!(two[0].lease.token, two[1].lease.token);

    store.abandon_activity_work(&two[1].lease, Duration::ZERO).await.unwrap();
    let again = fetch_activities(&store, 2, LONG).await;
    assert_eq!(again.iter().map(|a| (a.task_id, a.attempt)).collect::<Vec<_>>(), [(1, 2), (2, 1)]);
    assert!(matches!(
        store.complete_activity(&two[1].lease, ActivityOutcome::Completed(None)).await,
        Err(Error::LeaseLost)
    ));

    store.complete_activity(&first.lease, ActivityOutcome::Completed(Some(json("10")))).await.unwrap();
    let failure = FailureDetails::new("ActivityError", "no");
    store.complete_activity(&again[0].lease, ActivityOutcome::Failed(failure.clone())).await.unwrap();
    assert!(matches!(
        store.complete_activity(&first.lease, ActivityOutcome::Completed(None)).await,
        Err(Error::LeaseLost)
    ));

    let item = fetch_for(&store, "act", LONG).await;
    assert_eq!(
        kinds(&item),
        vec![
            EventKind::TaskCompleted { task_id: 0, result: Some(json("10")) },
            EventKind::TaskFailed { task_id: 1, failure },
        ]
    );
    for m in &item.messages {
        assert_eq!(m.execution_id.as_deref().unwrap_or("e1"), "e1");
    }
}

/// A renewed activity lease is kept; an unrenewed one expires, the item is redelivered with
/// the next attempt number, and the old lease is rejected with `LeaseLost`.
pub async fn activity_lease_expiry_renewal_and_loss<S: Store>(store: S) {
    schedule(&store, "al", &["A", "B"]).await;
    let both = fetch_activities(&store, 2, Duration::from_millis(300)).await;
    let (a, b) = (&both[0], &both[1]);
    let renewed = store.renew_activity_lease(&a.lease, LONG).await.unwrap();
    assert_eq!(renewed.activity_id, a.lease.activity_id);
    assert!(renewed.expires_at > a.lease.expires_at);

    let b2 = poll!("B's redelivery", store.wait_for_activity_work(POLL).await, {
        let got = store.fetch_activity_work(10, LONG).await.unwrap();
        assert!(got.iter().all(|x| x.task_id != a.task_id), "a renewed activity lease was taken over");
        got.into_iter().next()
    });
    assert!(now() >= b.lease.expires_at, "redelivered before the lease expired");
    assert_eq!((b2.task_id, b2.attempt), (b.task_id, 2));
    assert_ne!(b2.lease.token, b.lease.token);
    assert!(matches!(
        store.complete_activity(&b.lease, ActivityOutcome::Completed(None)).await,
        Err(Error::LeaseLost)
    ));
    assert!(matches!(store.renew_activity_lease(&b.lease, LONG).await, Err(Error::LeaseLost)));
    assert!(matches!(store.abandon_activity_work(&b.lease, Duration::ZERO).await, Err(Error::LeaseLost)));

    store.complete_activity(&b2.lease, ActivityOutcome::Completed(Some(json(r#""b""#)))).await.unwrap();
    store.complete_activity(&renewed, ActivityOutcome::Completed(Some(json(r#""a""#)))).await.unwrap();
    let item = fetch_for(&store, "al", LONG).await;
    assert_eq!(
        kinds(&item),
        vec![
            EventKind::TaskCompleted { task_id: 1, result: Some(json(r#""b""#)) },
            EventKind::TaskCompleted { task_id: 0, result: Some(json(r#""a""#)) },
        ],
        "one completion each, in completion order"
    );
}

/// An abandoned activity is not fetchable again before `retry_after`.
pub async fn activity_abandon_respects_retry_after<S: Store>(store: S) {
    schedule(&store, "aa", &["A"]).await;
    let a = fetch_activities(&store, 1, LONG).await.remove(0);
    let t0 = now();
    let delay = Duration::from_millis(500);
    store.abandon_activity_work(&a.lease, delay).await.unwrap();
    let again = fetch_activities(&store, 1, LONG).await.remove(0);
    assert!(now() >= t0.checked_add(delay).unwrap(), "fetchable before retry_after");
    assert_eq!((again.task_id, again.attempt), (0, 2));
    store.complete_activity(&again.lease, ActivityOutcome::Completed(None)).await.unwrap();
}

/// A completion for an instance that has finished, or that moved on to another execution,
/// deletes the work item and enqueues nothing.
pub async fn activity_completion_for_finished_or_other_execution_enqueues_nothing<S: Store>(store: S) {
    schedule(&store, "fa", &["A"]).await;
    let a = fetch_activities(&store, 1, LONG).await.remove(0);
    terminate(&store, "fa", RuntimeStatus::Completed).await;
    store.complete_activity(&a.lease, ActivityOutcome::Completed(Some(json("1")))).await.unwrap();
    assert!(fetch_all(&store, LONG).await.is_empty(), "nothing enqueued for a finished instance");
    assert_eq!(store.get_instance("fa").await.unwrap().unwrap().status, RuntimeStatus::Completed);

    schedule(&store, "fb", &["B"]).await;
    let b = fetch_activities(&store, 1, LONG).await.remove(0);
    store.send_message("fb", raised("restart", "1")).await.unwrap();
    run_turn(&store, "fb", |c| {
        c.status = RuntimeStatus::ContinuedAsNew;
        let start = HistoryEvent::new(
            c.now,
            EventKind::ExecutionStarted { name: "Orch".into(), input: None, parent: None, trace: None },
        );
        c.continue_as_new =
            Some(NewExecution { execution_id: "e2".into(), input: None, start, carried_events: vec![] });
    })
    .await;
    store.complete_activity(&b.lease, ActivityOutcome::Completed(Some(json("1")))).await.unwrap();
    let item = fetch_for(&store, "fb", LONG).await;
    assert_eq!(
        kinds(&item),
        vec![EventKind::ExecutionStarted { name: "Orch".into(), input: None, parent: None, trace: None }],
        "no completion for the old execution"
    );
    assert!(store.fetch_activity_work(10, LONG).await.unwrap().is_empty(), "the completed item was deleted");
}

/// A waiter for activity work wakes up when a turn schedules an activity.
pub async fn wait_for_activity_work_wakes_on_schedule<S: Store>(store: S) {
    let store = Arc::new(store);
    let waiter = store.clone();
    let consumer = tokio::spawn(async move {
        loop {
            if let Some(a) = waiter.fetch_activity_work(1, LONG).await.unwrap().pop() {
                return a;
            }
            waiter.wait_for_activity_work(Duration::from_secs(60)).await;
        }
    });
    schedule(&*store, "wa", &["A"]).await;
    let a = tokio::time::timeout(DEADLINE, consumer).await.expect("the waiter woke up").unwrap();
    assert_eq!((a.instance_id.as_str(), a.task_id), ("wa", 0));
}

/// The backlog counts ready instances and activities and due timers, not parked work.
pub async fn backlog_counts_ready_work_and_due_timers<S: Store>(store: S) {
    store.create_instance(create_request("parked", "Orch")).await.unwrap();
    run_turn(&store, "parked", |c| c.timers.push(NewTimer { timer_id: 0, fire_at: now() + LONG })).await;
    store.create_instance(create_request("bl", "Orch")).await.unwrap();
    let backlog = store.backlog().await.unwrap();
    assert_eq!((backlog.ready_instances, backlog.ready_activities, backlog.due_timers), (1, 0, 0));
    let item = fetch_for(&store, "bl", LONG).await;
    assert_eq!(store.backlog().await.unwrap().ready_instances, 0, "a leased instance is not waiting");
    let mut commit = turn_of(&item);
    commit.activities.push(NewActivity { task_id: 0, name: "A".into(), input: None });
    commit.timers.push(NewTimer { timer_id: 1, fire_at: now() - Duration::from_secs(1) });
    store.commit_turn(commit).await.unwrap();
    // The due timer makes the instance ready; a store may count it as a due timer until it
    // hands it to a turn (PostgreSQL), or move it to its ready queue at once (SQLite).
    let backlog = store.backlog().await.unwrap();
    assert_eq!((backlog.ready_instances, backlog.ready_activities), (1, 1), "{backlog:?}");
    assert!(backlog.due_timers <= 1, "{backlog:?}");
    fetch_activities(&store, 1, LONG).await;
    assert_eq!(store.backlog().await.unwrap().ready_activities, 0, "a running activity is not waiting");
}
