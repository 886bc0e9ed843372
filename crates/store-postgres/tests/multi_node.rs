//! Several nodes on one schema: each node is a `PostgresStore` with its own pool and listener.
//! Timings are measured and printed, never asserted (only hangs fail, after a generous deadline).

use durable_core::{EventKind, RuntimeStatus};
use durable_store::conformance::{DEADLINE, LONG, create_request, fetch_for, now, raised, turn_of};
use durable_store::{Error, NewActivity, NewTimer, Store};
use durable_store_postgres::PostgresStore;
use durable_store_postgres::testing::database;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fetches in a loop until `instance_id` has work, waiting up to a minute between attempts:
/// finishes within the deadline only if wake-ups work.
async fn wait_and_fetch(store: &PostgresStore, instance_id: &str) -> durable_store::OrchestrationWorkItem {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let items = store.fetch_orchestration_work(10, LONG).await.unwrap();
        let mut found = None;
        for item in items {
            if item.lease.instance_id == instance_id && found.is_none() {
                found = Some(item);
            } else {
                store.abandon_orchestration_work(&item.lease, Duration::ZERO).await.unwrap();
            }
        }
        if let Some(item) = found {
            return item;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for work of {instance_id}");
        store.wait_for_orchestration_work(Duration::from_secs(60)).await;
    }
}

/// Two nodes, two fetchers each, 60 instances that each need three turns: no instance is ever
/// leased by two fetchers at once, every turn commits, and histories have no duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetchers_on_two_nodes_never_share_an_instance() {
    let Some(db) = database().await else { return };
    let nodes = [Arc::new(db.store().await), Arc::new(db.store().await)];
    const N: usize = 60;
    const TURNS: u64 = 3;
    for i in 0..N {
        nodes[i % 2].create_instance(create_request(&format!("mn-{i:03}"), "Orch")).await.unwrap();
    }
    let held = Arc::new(Mutex::new(HashSet::new()));
    let turns = Arc::new(Mutex::new(HashMap::<String, (u64, HashSet<usize>)>::new()));
    let mut tasks = Vec::new();
    for (worker, node) in [0, 0, 1, 1].into_iter().enumerate() {
        let (store, held, turns) = (nodes[node].clone(), held.clone(), turns.clone());
        tasks.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + DEADLINE;
            loop {
                let done = turns.lock().values().filter(|(n, _)| *n == TURNS).count();
                if done == N {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "timed out: {done} of {N} instances done");
                let items = store.fetch_orchestration_work(4, LONG).await.unwrap();
                if items.is_empty() {
                    store.wait_for_orchestration_work(Duration::from_millis(200)).await;
                }
                for item in items {
                    let id = item.lease.instance_id.clone();
                    assert!(held.lock().insert(id.clone()), "{id} leased twice at the same time");
                    let turn = item.instance.history_len / 2;
                    if turn + 1 < TURNS {
                        // Arrives during the turn: makes the instance ready again after it.
                        store.send_message(&id, raised("next", &turn.to_string())).await.unwrap();
                    }
                    {
                        let mut t = turns.lock();
                        let entry = t.entry(id.clone()).or_default();
                        entry.0 += 1;
                        entry.1.insert(worker);
                    }
                    // Released before the commit, so a fetch right after it cannot look like
                    // an overlap.
                    held.lock().remove(&id);
                    store.commit_turn(turn_of(&item)).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let turns = turns.lock().clone();
    let spread: HashSet<usize> = turns.values().flat_map(|(_, w)| w.iter().copied()).collect();
    println!("turns per worker spread over {} workers", spread.len());
    for i in 0..N {
        let id = format!("mn-{i:03}");
        assert_eq!(turns[&id].0, TURNS, "{id}");
        let history = nodes[0].read_history(&id).await.unwrap();
        // Each turn appends OrchestratorStarted and the one message it consumed.
        assert_eq!(history.len() as u64, 2 * TURNS, "{id}: {history:?}");
        let starts = history.iter().filter(|e| matches!(e.kind, EventKind::ExecutionStarted { .. })).count();
        assert_eq!(starts, 1, "{id}");
    }
    for n in nodes {
        n.close().await.unwrap();
    }
}

/// Node A's lease expires; node B takes the work over and commits; A's late commit, renewal
/// and abandon get `LeaseLost`, and the history holds B's turn once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_moves_to_another_node_and_the_late_commit_is_fenced() {
    let Some(db) = database().await else { return };
    let (a, b) = (db.store().await, db.store().await);
    a.create_instance(create_request("tk", "Orch")).await.unwrap();
    let on_a = fetch_for(&a, "tk", Duration::from_millis(400)).await;
    assert!(b.fetch_orchestration_work(10, LONG).await.unwrap().is_empty(), "leased on A");
    let on_b = wait_and_fetch(&b, "tk").await;
    assert!(now() >= on_a.lease.expires_at, "taken over before A's lease expired");
    assert_ne!(on_a.lease.token, on_b.lease.token);
    assert_eq!(on_a.messages, on_b.messages);

    let mut b_turn = turn_of(&on_b);
    b_turn.history.push(raised("only-on-b", "1"));
    b.commit_turn(b_turn.clone()).await.unwrap();
    assert!(matches!(a.commit_turn(turn_of(&on_a)).await, Err(Error::LeaseLost)));
    assert!(matches!(a.renew_orchestration_lease(&on_a.lease, LONG).await, Err(Error::LeaseLost)));
    assert!(matches!(a.abandon_orchestration_work(&on_a.lease, Duration::ZERO).await, Err(Error::LeaseLost)));
    assert_eq!(a.read_history("tk").await.unwrap(), b_turn.history, "B's turn, exactly once");
    assert_eq!(a.get_instance("tk").await.unwrap().unwrap().history_len, 3);
}

/// An enqueue on node A wakes node B's `wait_for_orchestration_work` (and its activity waiter,
/// and its completion listener) through NOTIFY. Prints the wake-up latencies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_from_one_node_wakes_the_other() {
    let Some(db) = database().await else { return };
    let (a, b) = (Arc::new(db.store().await), Arc::new(db.store().await));
    const SAMPLES: usize = 20;
    a.create_instance(create_request("nw", "Orch")).await.unwrap();
    b.commit_turn(turn_of(&wait_and_fetch(&b, "nw").await)).await.unwrap();

    let mut latencies = Vec::new();
    for i in 0..SAMPLES {
        let waiter = b.clone();
        let (parked_tx, parked_rx) = tokio::sync::oneshot::channel();
        let woke = tokio::spawn(async move {
            // Nothing to do now: this wait sleeps until a notification arrives.
            assert!(waiter.fetch_orchestration_work(10, LONG).await.unwrap().is_empty());
            let _ = parked_tx.send(());
            waiter.wait_for_orchestration_work(Duration::from_secs(60)).await;
            Instant::now()
        });
        parked_rx.await.unwrap();
        // Give the waiter time to read the next due time and go to sleep; an early send only
        // makes that sample look faster, it cannot fail the test.
        tokio::task::yield_now().await;
        let sent = Instant::now();
        a.send_message("nw", raised("ping", &i.to_string())).await.unwrap();
        let woke_at = tokio::time::timeout(DEADLINE, woke).await.expect("B woke up").unwrap();
        latencies.push(woke_at.saturating_duration_since(sent));
        let item = wait_and_fetch(&b, "nw").await;
        b.commit_turn(turn_of(&item)).await.unwrap();
    }
    latencies.sort();
    println!(
        "cross-node wake-up after send_message (enqueue commit + NOTIFY + LISTEN): median {:?}, max {:?} over {SAMPLES}",
        latencies[SAMPLES / 2],
        latencies[SAMPLES - 1]
    );

    // Activity work scheduled on A wakes B's activity waiter.
    let waiter = b.clone();
    let activity = tokio::spawn(async move {
        loop {
            if let Some(act) = waiter.fetch_activity_work(1, LONG).await.unwrap().pop() {
                return act;
            }
            waiter.wait_for_activity_work(Duration::from_secs(60)).await;
        }
    });
    a.send_message("nw", raised("go", "1")).await.unwrap();
    let item = wait_and_fetch(&a, "nw").await;
    let mut c = turn_of(&item);
    c.activities.push(NewActivity { task_id: 0, name: "Act".into(), input: None });
    a.commit_turn(c).await.unwrap();
    let act = tokio::time::timeout(DEADLINE, activity).await.expect("B's activity waiter woke").unwrap();
    assert_eq!((act.instance_id.as_str(), act.task_id), ("nw", 0));

    // A completion committed on A resolves B's listener.
    let done = b.listen_for_completion("nw");
    b.complete_activity(&act.lease, durable_store::ActivityOutcome::Completed(None)).await.unwrap();
    let item = wait_and_fetch(&a, "nw").await;
    let mut c = turn_of(&item);
    c.status = RuntimeStatus::Completed;
    a.commit_turn(c).await.unwrap();
    tokio::time::timeout(DEADLINE, done).await.expect("B heard of the completion").unwrap();
}

/// A timer created by a turn on node A fires on node B after A is gone, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_created_on_one_node_fires_on_another_after_it_is_gone() {
    let Some(db) = database().await else { return };
    let b = db.store().await;
    let timer = NewTimer { timer_id: 0, fire_at: now().checked_add(Duration::from_millis(700)).unwrap() };
    {
        let a = db.store().await;
        a.create_instance(create_request("tm", "Orch")).await.unwrap();
        let item = fetch_for(&a, "tm", LONG).await;
        let mut c = turn_of(&item);
        c.timers.push(timer.clone());
        a.commit_turn(c).await.unwrap();
        a.close().await.unwrap();
    }
    let item = wait_and_fetch(&b, "tm").await;
    assert!(now() >= timer.fire_at, "the timer fired early");
    assert_eq!(item.messages.len(), 1);
    assert_eq!(item.messages[0].event, timer.fired_event());
    b.commit_turn(turn_of(&item)).await.unwrap();
    let fired = b
        .read_history("tm")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::TimerFired { .. }))
        .count();
    assert_eq!(fired, 1);
    assert!(b.fetch_orchestration_work(10, LONG).await.unwrap().is_empty(), "consumed by the commit");
}

/// The fetch race of duroxide-pg: fetchers that start together must not report "no work"
/// because they lost a candidate to another fetcher while other candidates remained. With as
/// many single-item fetchers as ready instances, started at once on two nodes, every fetcher
/// gets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_single_fetches_each_get_an_instance() {
    let Some(db) = database().await else { return };
    let nodes = [Arc::new(db.store().await), Arc::new(db.store().await)];
    const N: usize = 10;
    for round in 0..5 {
        for i in 0..N {
            nodes[0].create_instance(create_request(&format!("race-{round}-{i}"), "Orch")).await.unwrap();
        }
        let start = Arc::new(tokio::sync::Barrier::new(N));
        let fetchers: Vec<_> = (0..N)
            .map(|i| {
                let (store, start) = (nodes[i % 2].clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    store.fetch_orchestration_work(1, LONG).await.unwrap()
                })
            })
            .collect();
        let mut got = Vec::new();
        for f in fetchers {
            let items = f.await.unwrap();
            assert_eq!(items.len(), 1, "round {round}: a fetcher found no work while instances were ready");
            got.push(items[0].lease.instance_id.clone());
        }
        got.sort();
        got.dedup();
        assert_eq!(got.len(), N, "round {round}: an instance was handed out twice");
    }
}
