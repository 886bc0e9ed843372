//! SQLite-specific behaviour: the file lock, recovery at reopen, the schema version check and
//! group commit.

use durable_core::{EventKind, HistoryEvent, RuntimeStatus};
use durable_store::conformance::{
    DEADLINE, LONG, create_request, fetch_for, now, raised, run_turn, start, terminate, turn_of,
};
use durable_store::{Error, NewActivity, NewTimer, Store};
use durable_store_sqlite::{SCHEMA_VERSION, SqliteStore, SqliteStoreOptions, Synchronous};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn open(path: &Path) -> durable_store::Result<SqliteStore> {
    SqliteStore::open(SqliteStoreOptions::new(path))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_open_of_the_same_file_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let first = open(&path).unwrap();
    match open(&path) {
        Err(Error::Unavailable(msg)) => {
            assert!(msg.contains("is in use by another durable process"), "{msg}");
            assert!(msg.contains("durable.db"), "{msg}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a second store opened a file that is in use"),
    }
    first.close().await.unwrap();
    let second = open(&path).expect("close releases the file");
    drop(second);
    let third = open(&path).expect("dropping the last handle releases the file");
    third.close().await.unwrap();
}

/// Leases, queues, timers and activities are rebuilt from the tables at open; leases of the
/// previous process are gone, so its work is redelivered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_recovers_queues_timers_and_activities() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let timer = NewTimer { timer_id: 1, fire_at: now().checked_add(Duration::from_millis(800)).unwrap() };
    let (leased_messages, first_attempt) = {
        let store = open(&path).unwrap();
        // "pending": a start nobody fetched. "leased": fetched, its process dies mid-turn.
        // "parked": waits for a timer and has an activity, already attempted once.
        for id in ["pending", "leased", "parked"] {
            store.create_instance(create_request(id, "Orch")).await.unwrap();
        }
        let parked = fetch_for(&store, "parked", LONG).await;
        let mut c = turn_of(&parked);
        c.timers.push(timer.clone());
        c.activities.push(NewActivity { task_id: 0, name: "A".into(), input: None });
        store.commit_turn(c).await.unwrap();
        let act = store.fetch_activity_work(1, LONG).await.unwrap().pop().expect("activity");
        let leased = fetch_for(&store, "leased", LONG).await;
        // Dropped without close or commit, like a crash (the lock is released by the OS).
        (leased.messages, act.attempt)
    };
    assert_eq!(first_attempt, 1);

    let store = open(&path).unwrap();
    assert_eq!(store.pending_timers(), 1, "the timer is back in the index");
    let leased = fetch_for(&store, "leased", LONG).await;
    assert_eq!(leased.messages, leased_messages, "the old lease did not survive the restart");
    fetch_for(&store, "pending", LONG).await;
    let act = store.fetch_activity_work(10, LONG).await.unwrap();
    assert_eq!(act.len(), 1);
    assert_eq!((act[0].task_id, act[0].attempt), (0, 2), "attempts are durable");
    let fired = fetch_for(&store, "parked", LONG).await;
    assert!(now() >= timer.fire_at);
    assert_eq!(fired.messages[0].event, timer.fired_event());
    assert_eq!(store.get_instance("parked").await.unwrap().unwrap().history_len, 2);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    open(&path).unwrap().close().await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1)).unwrap();
    drop(conn);
    match open(&path) {
        Err(Error::Unavailable(msg)) => {
            assert!(msg.contains(&format!("schema version {}", SCHEMA_VERSION + 1)), "{msg}");
            assert!(msg.contains("upgrade durable"), "{msg}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a database with a newer schema"),
    }
}

/// A version 2 database (before the status counts and the list indexes) is migrated at open:
/// the counts start from the instances already there, and lists use the new indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_from_version_2_counts_the_existing_instances() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    {
        let store = open(&path).unwrap();
        for id in ["u1", "u2", "u3"] {
            store.create_instance(create_request(id, "Orch")).await.unwrap();
        }
        run_turn(&store, "u1", |c| c.status = RuntimeStatus::Completed).await;
        store.close().await.unwrap();
    }
    // Back to version 2, as a database written by an older build would be (versions 3 and 4
    // added the counts and indexes, and the limits table).
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS instance_counts_insert; DROP TRIGGER IF EXISTS instance_counts_delete;
         DROP TRIGGER IF EXISTS instance_counts_update; DROP TABLE instance_counts;
         DROP INDEX instances_by_status; DROP INDEX instances_by_name; DROP TABLE limits;
         PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);

    let store = open(&path).unwrap();
    let counts = store.count_instances().await.unwrap();
    assert_eq!((counts.get(RuntimeStatus::Pending), counts.get(RuntimeStatus::Completed)), (2, 1));
    store.create_instance(create_request("u4", "Orch")).await.unwrap();
    assert_eq!(store.count_instances().await.unwrap().get(RuntimeStatus::Pending), 3);
    store.close().await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT instance_id FROM instances WHERE status = 2 \
             ORDER BY created_at DESC, instance_id DESC LIMIT 10",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("instances_by_status"), "{plan}");
}

/// Many concurrent commits share few transactions (one fsync each), and a failing command in a
/// batch does not undo the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_batches_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = SqliteStoreOptions::new(dir.path().join("durable.db"));
    options.synchronous = Synchronous::Full;
    let store = Arc::new(SqliteStore::open(options).unwrap());
    const N: usize = 200;

    let creates: Vec<_> = (0..N)
        .map(|i| {
            let store = store.clone();
            // Every tenth request reuses id 0, which must fail alone with AlreadyExists.
            let id = if i % 10 == 0 { "gc-000".to_owned() } else { format!("gc-{i:03}") };
            tokio::spawn(async move { store.create_instance(create_request(&id, "Orch")).await })
        })
        .collect();
    let mut created = 0;
    for t in creates {
        match t.await.unwrap() {
            Ok(()) => created += 1,
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(created, N - N / 10 + 1);

    let mut items = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while items.len() < created && tokio::time::Instant::now() < deadline {
        items.extend(store.fetch_orchestration_work(1000, LONG).await.unwrap());
    }
    assert_eq!(items.len(), created);
    let before = store.metrics();
    let commits: Vec<_> = items
        .into_iter()
        .map(|item| {
            let store = store.clone();
            tokio::spawn(async move { store.commit_turn(turn_of(&item)).await })
        })
        .collect();
    for t in commits {
        t.await.unwrap().unwrap();
    }
    let after = store.metrics();
    let (turns, transactions) = (after.turns - before.turns, after.transactions - before.transactions);
    assert_eq!(turns, created as u64);
    assert!(transactions * 4 <= turns, "{turns} commits took {transactions} transactions: no group commit");
    let history = store.read_history("gc-000").await.unwrap();
    assert!(matches!(history[1].kind, EventKind::ExecutionStarted { .. }));
    assert_eq!(store.get_instance("gc-199").await.unwrap().unwrap().status, RuntimeStatus::Running);
    store.close().await.unwrap();
}

/// A store is usable from several handles and keeps working while one waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir.path().join("durable.db")).unwrap();
    let b = a.clone();
    a.create_instance(create_request("shared", "Orch")).await.unwrap();
    b.send_message("shared", raised("e", "1")).await.unwrap();
    let item = fetch_for(&b, "shared", LONG).await;
    assert_eq!(item.messages.len(), 2);
    let late =
        HistoryEvent::new(now(), EventKind::EventRaised { name: "late".into(), input: None, id: None });
    a.send_message("shared", late).await.unwrap();
    b.close().await.unwrap();
    assert!(matches!(a.get_instance("shared").await, Err(Error::Unavailable(_))));
}

/// The in-memory timer index forgets timers that are deleted (cancelled, finished, purged)
/// instead of keeping them until they would have been due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_timers_leave_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("durable.db")).unwrap();
    let in_an_hour = || now().checked_add(Duration::from_secs(3600)).unwrap();
    start(&store, "tw").await;
    store.send_message("tw", raised("go", "1")).await.unwrap();
    run_turn(&store, "tw", |c| {
        c.timers.push(NewTimer { timer_id: 1, fire_at: in_an_hour() });
        c.timers.push(NewTimer { timer_id: 2, fire_at: in_an_hour() });
        // Created and cancelled in the same turn: never indexed for long.
        c.timers.push(NewTimer { timer_id: 3, fire_at: in_an_hour() });
        c.cancelled_timers.push(3);
    })
    .await;
    assert_eq!(store.pending_timers(), 2);
    store.send_message("tw", raised("cancel", "1")).await.unwrap();
    run_turn(&store, "tw", |c| c.cancelled_timers.push(1)).await;
    assert_eq!(store.pending_timers(), 1);
    terminate(&store, "tw", RuntimeStatus::Completed).await;
    assert_eq!(store.pending_timers(), 0, "a terminal commit deletes the remaining timer");

    start(&store, "tp").await;
    store.send_message("tp", raised("go", "1")).await.unwrap();
    run_turn(&store, "tp", |c| c.timers.push(NewTimer { timer_id: 0, fire_at: in_an_hour() })).await;
    assert_eq!(store.pending_timers(), 1);
    assert_eq!(store.purge_instance("tp").await.unwrap(), 1);
    assert_eq!(store.pending_timers(), 0, "purging deletes the timer");
    store.close().await.unwrap();
}

/// Makes every insert of an activity named `poison` fail inside SQLite, after the statements
/// before it in the same command have written: a command that fails after writing.
fn inject_activity_failure(path: &Path) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER inject BEFORE INSERT ON activities WHEN NEW.name = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        .unwrap();
}

/// A turn of `item` that schedules the `poison` activity (see [`inject_activity_failure`]).
fn failing_turn(item: &durable_store::OrchestrationWorkItem) -> durable_store::TurnCommit {
    let mut turn = turn_of(item);
    turn.activities.push(NewActivity { task_id: 0, name: "poison".into(), input: None });
    turn
}

/// A command that fails after it has written (here an I/O-like error injected by a trigger) is
/// undone alone: the batch is rolled back and run again with a savepoint per command, so the
/// commands queued with it still succeed and the failed turn leaves no trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_failing_after_writing_is_undone_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let store = open(&path).unwrap();
    for id in ["poisoned", "healthy"] {
        store.create_instance(create_request(id, "Orch")).await.unwrap();
    }
    inject_activity_failure(&path);
    let poisoned = fetch_for(&store, "poisoned", LONG).await;
    let before = store.get_instance("poisoned").await.unwrap().unwrap();
    let bad = failing_turn(&poisoned);
    // Queue several good writes together with the bad commit so they share batches.
    let sends = (0..20).map(|i| store.send_message("healthy", raised("E", &i.to_string())));
    let (bad_result, sent) = tokio::join!(store.commit_turn(bad), futures::future::join_all(sends));
    match bad_result {
        Err(Error::Backend(e)) => assert!(e.to_string().contains("injected failure"), "{e}"),
        other => panic!("expected the injected failure, got {other:?}"),
    }
    assert!(sent.iter().all(Result::is_ok), "{sent:?}");
    // The failed turn wrote nothing: no history, the messages it consumed are still queued.
    let after = store.get_instance("poisoned").await.unwrap().unwrap();
    assert_eq!(after.history_len, before.history_len);
    assert!(store.read_history("poisoned").await.unwrap().is_empty());
    // Its lease is still held (a failed commit releases nothing); the runtime abandons it.
    store.abandon_orchestration_work(&poisoned.lease, Duration::ZERO).await.unwrap();
    let again = fetch_for(&store, "poisoned", LONG).await;
    assert_eq!(again.messages.len(), poisoned.messages.len());
    let healthy = fetch_for(&store, "healthy", LONG).await;
    assert_eq!(healthy.messages.len(), 21, "the start and the 20 events");
    store.close().await.unwrap();
}

/// Limit charges queued in the batch of a command that fails after writing are charged once:
/// the batch runs again with savepoints, and what its first run gathered is forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_run_again_charges_its_limits_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let store = open(&path).unwrap();
    store.create_instance(create_request("poisoned", "Orch")).await.unwrap();
    inject_activity_failure(&path);
    let charge = || durable_store::LimitCharge {
        key: "shared".into(),
        limit: "shared limit".into(),
        rate: durable_store::Rate::new(40, Duration::from_secs(3600)),
        cost: 1,
        reference: None,
    };
    let bad = failing_turn(&fetch_for(&store, "poisoned", LONG).await);
    let starts = (0..20)
        .map(|i| store.create_instance_limited(create_request(&format!("s{i}"), "Orch"), vec![charge()]));
    // The starts first: the batch's first run charges them before the commit fails.
    let (started, bad_result) = tokio::join!(futures::future::join_all(starts), store.commit_turn(bad));
    assert!(bad_result.is_err());
    assert!(started.iter().all(Result::is_ok), "{started:?}");
    // 20 of the 40 units are left, not 0.
    for i in 20..40 {
        store
            .create_instance_limited(create_request(&format!("s{i}"), "Orch"), vec![charge()])
            .await
            .unwrap();
    }
    let refused = store.create_instance_limited(create_request("s40", "Orch"), vec![charge()]).await;
    assert!(matches!(refused, Err(Error::RateLimited(_))), "{refused:?}");
    store.close().await.unwrap();
}

/// The checkpointer thread copies committed pages into the database file while the store runs
/// (well before the writer's own emergency threshold), so the WAL stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpointer_folds_the_wal_into_the_database_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let store = open(&path).unwrap();
    let size = || std::fs::metadata(&path).map_or(0, |m| m.len());
    let empty = size();
    // About 3,000 WAL pages: past the checkpoint request threshold (1,000 pages), far below
    // the writer's own (16,000).
    let payload = durable_core::Payload::from_value(&"x".repeat(2 * 1024)).unwrap();
    for i in 0..1500 {
        let mut request = create_request(&format!("big-{i}"), "Orch");
        request.input = Some(payload.clone());
        store.create_instance(request).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while size() < empty + 2 * 1024 * 1024 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the database file stayed at {} bytes: nothing was checkpointed",
            size()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.close().await.unwrap();
}
