//! Bursts of concurrent calls. Stores may gather concurrent writes into shared transactions
//! (group commit); each call must still get exactly the answer it would get alone, and one
//! call's failure must not leak into the others.

use super::*;
use crate::{ActivityLease, Error, NewActivity, NewTimer};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The results of `tasks`, in order.
async fn all<T: Send + 'static>(tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("task panicked"));
    }
    out
}

/// A lease token nobody was given.
fn stale(token: u64) -> u64 {
    token.wrapping_add(1_000_000_007)
}

/// Concurrent creates: new ids are created once each (a duplicate in the same burst gets
/// `AlreadyExists`), an unfinished id is refused, a finished id is replaced. Concurrent
/// messages: each reaches its instance (two from one sender stay in order), a missing or
/// finished instance is reported to its sender only.
pub async fn concurrent_creates_and_messages_each_get_their_own_answer<S: Store>(store: S) {
    let store = Arc::new(store);
    start(&*store, "running").await;
    start(&*store, "replaced").await;
    terminate(&*store, "replaced", RuntimeStatus::Completed).await;
    start(&*store, "gone").await;
    terminate(&*store, "gone", RuntimeStatus::Failed).await;

    let mut ids: Vec<String> = (0..30).map(|i| format!("new-{i:02}")).collect();
    ids.extend(["new-07", "running", "replaced"].map(String::from));
    let creates = ids
        .iter()
        .map(|id| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.create_instance(create_request(&id, "Burst")).await })
        })
        .collect();
    let created = all(creates).await;
    let mut new_07 = Vec::new();
    for (id, result) in ids.iter().zip(created) {
        match id.as_str() {
            "running" => assert!(
                matches!(&result, Err(Error::AlreadyExists { status: RuntimeStatus::Running, .. })),
                "{result:?}"
            ),
            "new-07" => new_07.push(result),
            _ => result.unwrap_or_else(|e| panic!("create {id}: {e}")),
        }
    }
    assert_eq!(new_07.iter().filter(|r| r.is_ok()).count(), 1, "{new_07:?}");
    assert!(new_07.iter().any(|r| matches!(r, Err(Error::AlreadyExists { .. }))), "{new_07:?}");

    // Every new (and the replaced) instance has exactly its start queued; commit them all at once.
    let items = fetch_all(&*store, LONG).await;
    let started: Vec<_> = items.iter().filter(|i| i.instance.name == "Burst").collect();
    assert_eq!(started.len(), 31, "30 new instances and the replaced one");
    for item in &started {
        assert_eq!(item.messages.len(), 1, "{}", item.lease.instance_id);
        assert!(matches!(item.messages[0].event.kind, EventKind::ExecutionStarted { .. }));
    }
    let commits = started
        .iter()
        .map(|item| {
            let (store, commit) = (store.clone(), turn_of(item));
            tokio::spawn(async move { store.commit_turn(commit).await })
        })
        .collect();
    for result in all(commits).await {
        result.expect("commit");
    }

    let targets: Vec<String> =
        (0..30).map(|i| format!("new-{i:02}")).chain(["missing", "gone"].map(String::from)).collect();
    let sends = targets
        .iter()
        .map(|id| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move {
                let first = store.send_message(&id, raised("first", "1")).await;
                let second = store.send_message(&id, raised("second", "2")).await;
                (first, second)
            })
        })
        .collect();
    for (id, (first, second)) in targets.iter().zip(all(sends).await) {
        match id.as_str() {
            "missing" => {
                assert!(matches!(first, Err(Error::NotFound { .. })), "{first:?}");
                assert!(matches!(second, Err(Error::NotFound { .. })), "{second:?}");
            }
            "gone" => assert!(
                matches!(first, Err(Error::InstanceFinished { status: RuntimeStatus::Failed, .. })),
                "{first:?}"
            ),
            _ => {
                first.unwrap_or_else(|e| panic!("send to {id}: {e}"));
                second.unwrap_or_else(|e| panic!("send to {id}: {e}"));
            }
        }
    }
    let items = fetch_all(&*store, LONG).await;
    let mut got = 0;
    for item in items.iter().filter(|i| i.instance.name == "Burst" && i.lease.instance_id.starts_with("new-"))
    {
        let names: Vec<_> = item
            .messages
            .iter()
            .map(|m| match &m.event.kind {
                EventKind::EventRaised { name, .. } => name.as_str(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(names, ["first", "second"], "{}", item.lease.instance_id);
        got += 1;
    }
    assert_eq!(got, 30);
}

/// Concurrent turn commits: a stale lease gets `LeaseLost` and a wrong history length
/// `Conflict`, writing nothing; the others commit with all their effects.
pub async fn concurrent_commits_each_get_their_own_answer<S: Store>(store: S) {
    let store = Arc::new(store);
    let ids: Vec<String> = (0..40).map(|i| format!("c-{i:02}")).collect();
    for id in &ids {
        store.create_instance(create_request(id, "Orch")).await.expect("create");
    }
    let mut items = Vec::new();
    poll!("40 work items", store.wait_for_orchestration_work(POLL).await, {
        items.extend(fetch_all(&*store, LONG).await);
        (items.len() >= 40).then_some(())
    });
    items.sort_by(|a, b| a.lease.instance_id.cmp(&b.lease.instance_id));
    let due = after(Duration::from_secs(3600));
    let commits = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut c = turn_of(item);
            match i % 5 {
                0 => c.lease.token = stale(c.lease.token),
                1 => c.expected_history_len += 1,
                2 => {
                    c.status = RuntimeStatus::Completed;
                    c.output = Some(json(&i.to_string()));
                }
                3 => {
                    c.activities.push(NewActivity {
                        task_id: 0,
                        name: "Work".into(),
                        input: Some(json("1")),
                    });
                    c.timers.push(NewTimer { timer_id: 1, fire_at: due });
                }
                _ => {}
            }
            let store = store.clone();
            tokio::spawn(async move { store.commit_turn(c).await })
        })
        .collect();
    let results = all(commits).await;
    for (i, (item, result)) in items.iter().zip(&results).enumerate() {
        let id = &item.lease.instance_id;
        match i % 5 {
            0 => assert!(matches!(result, Err(Error::LeaseLost)), "{id}: {result:?}"),
            1 => assert!(matches!(result, Err(Error::Conflict(_))), "{id}: {result:?}"),
            _ => assert!(result.is_ok(), "{id}: {result:?}"),
        }
        let state = store.get_instance(id).await.unwrap().expect("instance");
        let history = store.read_history(id).await.unwrap();
        match i % 5 {
            0 | 1 => {
                assert_eq!((state.history_len, history.len()), (0, 0), "{id}: a rejected turn wrote history");
                // Still leased by the valid lease, with its start unconsumed.
                store.abandon_orchestration_work(&item.lease, Duration::ZERO).await.expect("abandon");
            }
            2 => {
                assert_eq!(state.status, RuntimeStatus::Completed, "{id}");
                assert_eq!(state.output, Some(json(&i.to_string())), "{id}");
            }
            _ => assert_eq!((state.status, history.len()), (RuntimeStatus::Running, 2), "{id}"),
        }
    }
    let mut activities = Vec::new();
    poll!("8 activities", store.wait_for_activity_work(POLL).await, {
        activities.extend(store.fetch_activity_work(100, LONG).await.unwrap());
        (activities.len() >= 8).then_some(())
    });
    let mut with_activity: Vec<_> = activities.iter().map(|a| a.instance_id.as_str()).collect();
    with_activity.sort_unstable();
    let expected: Vec<_> =
        ids.iter().enumerate().filter(|(i, _)| i % 5 == 3).map(|(_, id)| id.as_str()).collect();
    assert_eq!(with_activity, expected);
    let again = fetch_all(&*store, LONG).await;
    let mut redelivered: Vec<_> = again.iter().map(|w| w.lease.instance_id.as_str()).collect();
    redelivered.sort_unstable();
    let expected: Vec<_> =
        ids.iter().enumerate().filter(|(i, _)| i % 5 < 2).map(|(_, id)| id.as_str()).collect();
    assert_eq!(redelivered, expected, "only the rejected turns' starts are left");
    for w in &again {
        assert!(matches!(w.messages[0].event.kind, EventKind::ExecutionStarted { .. }));
    }
}

/// Concurrent activity completions: a stale lease gets `LeaseLost` and enqueues nothing; the
/// others reach their instances.
pub async fn concurrent_completions_each_get_their_own_answer<S: Store>(store: S) {
    let store = Arc::new(store);
    let ids: Vec<String> = (0..12).map(|i| format!("a-{i:02}")).collect();
    for id in &ids {
        start(&*store, id).await;
        store.send_message(id, raised("go", "1")).await.unwrap();
        run_turn(&*store, id, |c| {
            for task_id in 0..2 {
                c.activities.push(NewActivity { task_id, name: "Work".into(), input: None });
            }
        })
        .await;
    }
    let mut leased = Vec::new();
    poll!("24 activities", store.wait_for_activity_work(POLL).await, {
        leased.extend(store.fetch_activity_work(100, LONG).await.unwrap());
        (leased.len() >= 24).then_some(())
    });
    let completions = leased
        .iter()
        .map(|a| {
            let stale_lease = a.task_id == 1 && a.instance_id.ends_with(['0', '5']);
            let lease = if stale_lease {
                ActivityLease { token: stale(a.lease.token), ..a.lease.clone() }
            } else {
                a.lease.clone()
            };
            let (store, result) = (store.clone(), Some(json(&a.task_id.to_string())));
            tokio::spawn(async move {
                (stale_lease, store.complete_activity(&lease, ActivityOutcome::Completed(result)).await)
            })
        })
        .collect();
    for (stale_lease, result) in all(completions).await {
        if stale_lease {
            assert!(matches!(result, Err(Error::LeaseLost)), "{result:?}");
        } else {
            result.expect("complete");
        }
    }
    for id in &ids {
        let item = fetch_for(&*store, id, LONG).await;
        let mut tasks: Vec<u32> = item
            .messages
            .iter()
            .map(|m| match &m.event.kind {
                EventKind::TaskCompleted { task_id, .. } => *task_id,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        tasks.sort_unstable();
        let expected: &[u32] = if id.ends_with(['0', '5']) { &[0] } else { &[0, 1] };
        assert_eq!(tasks, expected, "{id}");
    }
}
