//! PostgreSQL-specific behaviour: schema names, migrations and versioning, and the listener's
//! reconnect.

use durable_store::conformance::{DEADLINE, LONG, create_request, fetch_for, raised, turn_of};
use durable_store::{Error, Store};
use durable_store_postgres::testing::{TestDatabase, database};
use durable_store_postgres::{PostgresStore, PostgresStoreOptions, SCHEMA_VERSION};
use std::time::Duration;

async fn sql(db: &TestDatabase, statement: &str) -> Vec<tokio_postgres::Row> {
    let (client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.query(statement, &[]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schema_names_and_urls_are_refused_clearly() {
    let Some(db) = database().await else { return };
    for bad in ["Upper", "has-dash", "x\"; DROP TABLE y; --", ""] {
        let mut o = db.options();
        o.schema = bad.into();
        match PostgresStore::connect(o).await {
            Err(Error::Invalid(msg)) => assert!(msg.contains("schema name"), "{msg}"),
            Err(e) => panic!("{bad:?}: wrong error {e}"),
            Ok(_) => panic!("{bad:?} was accepted"),
        }
    }
    let mut o = PostgresStoreOptions::new("postgres://u:secret@[::1");
    o.schema = db.schema().into();
    match PostgresStore::connect(o).await {
        Err(Error::Invalid(msg)) => assert!(!msg.contains("secret"), "the password leaked: {msg}"),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("a broken URL was accepted"),
    }
}

/// Nodes starting together on a fresh schema serialize their migrations; all of them work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_connects_migrate_once() {
    let Some(db) = database().await else { return };
    let connects: Vec<_> = (0..4).map(|_| PostgresStore::connect(db.options())).collect();
    let stores = futures::future::join_all(connects).await;
    let stores: Vec<PostgresStore> = stores.into_iter().map(|s| s.expect("connect")).collect();
    let versions = sql(&db, &format!("SELECT version FROM \"{}\".schema_version", db.schema())).await;
    let applied: Vec<i32> = versions.iter().map(|r| r.get::<_, i32>(0)).collect();
    assert_eq!(applied, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    stores[0].create_instance(create_request("m1", "Orch")).await.unwrap();
    assert!(stores[3].get_instance("m1").await.unwrap().is_some());
    // Reconnecting to a current schema changes nothing.
    drop(PostgresStore::connect(db.options()).await.unwrap());
    let versions = sql(&db, &format!("SELECT count(*) FROM \"{}\".schema_version", db.schema())).await;
    assert_eq!(versions[0].get::<_, i64>(0), i64::from(SCHEMA_VERSION));
}

/// A schema at version 1 (before the batch functions) is brought to the current version at
/// connect, and instances written before keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_schema_is_upgraded() {
    let Some(db) = database().await else { return };
    let store = db.store().await;
    store.create_instance(create_request("old", "Orch")).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    let q = format!("\"{}\"", db.schema());
    let (client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP TRIGGER progress_clears_stall ON {q}.instances; DROP FUNCTION {q}.clear_stall; \
             DROP FUNCTION {q}.rewind_instance; \
             ALTER TABLE {q}.instances DROP COLUMN stall_reason, DROP COLUMN stall_since; \
             DROP FUNCTION {q}.commit_turns; DROP FUNCTION {q}.create_instances; \
             DROP FUNCTION {q}.send_messages; DROP FUNCTION {q}.complete_activities; \
             DROP INDEX {q}.instances_status; DROP INDEX {q}.instances_name; \
             DROP TRIGGER instances_count_insert ON {q}.instances; \
             DROP TRIGGER instances_count_delete ON {q}.instances; \
             DROP TRIGGER instances_count_update ON {q}.instances; \
             DROP FUNCTION {q}.count_status_change; DROP FUNCTION {q}.fold_instance_counts; \
             DROP TABLE {q}.instance_counts; \
             DROP TABLE {q}.limits; \
             DELETE FROM {q}.schema_version WHERE version > 1"
        ))
        .await
        .unwrap();
    let store = db.store().await;
    let versions = sql(&db, &format!("SELECT max(version) FROM {q}.schema_version")).await;
    assert_eq!(versions[0].get::<_, i32>(0), SCHEMA_VERSION);
    store.create_instance(create_request("new", "Orch")).await.unwrap();
    let item = fetch_for(&store, "old", LONG).await;
    store.commit_turn(turn_of(&item)).await.unwrap();
    assert!(store.get_instance("new").await.unwrap().is_some());
    assert_eq!(store.count_instances().await.unwrap().total(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let Some(db) = database().await else { return };
    drop(db.store().await);
    sql(&db, &format!("INSERT INTO \"{}\".schema_version (version) VALUES (99)", db.schema())).await;
    match PostgresStore::connect(db.options()).await {
        Err(Error::Unavailable(msg)) => {
            assert!(msg.contains("version 99") && msg.contains("upgrade durable"), "{msg}");
        }
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("connected to a schema from the future"),
    }
}

/// Two task hubs in one database do not see each other's work or notifications.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_are_separate_task_hubs() {
    let (Some(one), Some(two)) = (database().await, database().await) else { return };
    let (a, b) = (one.store().await, two.store().await);
    a.create_instance(create_request("same-id", "A")).await.unwrap();
    b.create_instance(create_request("same-id", "B")).await.unwrap();
    let item = fetch_for(&a, "same-id", LONG).await;
    assert_eq!(item.instance.name, "A");
    assert_eq!(b.fetch_orchestration_work(10, LONG).await.unwrap()[0].instance.name, "B");
}

/// When the listener's connection is killed, the store reconnects, and notifications from
/// other nodes wake it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_reconnects_after_its_connection_is_killed() {
    let Some(db) = database().await else { return };
    let (a, b) = (db.store().await, db.store().await);
    a.create_instance(create_request("lr", "Orch")).await.unwrap();
    b.commit_turn(turn_of(&fetch_for(&b, "lr", LONG).await)).await.unwrap();

    // Both nodes' listeners (their application_name names the schema).
    let kill = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'durable-listener:{}'",
        db.schema()
    );
    let killed = sql(&db, &kill).await;
    assert_eq!(killed.len(), 2, "one listener per node");

    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let count = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'durable-listener:{}'",
            db.schema()
        );
        if sql(&db, &count).await[0].get::<_, i64>(0) == 2 && a.is_listening() && b.is_listening() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the listeners did not reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // B sleeps for up to a minute; only a notification from A can wake it in time.
    let waiter = tokio::spawn(async move {
        loop {
            let items = b.fetch_orchestration_work(10, LONG).await.unwrap();
            if let Some(item) = items.into_iter().next() {
                return item;
            }
            b.wait_for_orchestration_work(Duration::from_secs(60)).await;
        }
    });
    a.send_message("lr", raised("after-reconnect", "1")).await.unwrap();
    let item = tokio::time::timeout(DEADLINE, waiter).await.expect("B woke up").unwrap();
    assert_eq!(item.lease.instance_id, "lr");
}

/// A history append at a taken position (another writer got there first, a split brain) fails
/// the whole batch inside PostgreSQL; the store then commits the batch's turns one by one, so
/// only the culprit gets `Conflict` and the others commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_turn_in_a_batch_fails_alone() {
    let Some(db) = database().await else { return };
    let store = std::sync::Arc::new(db.store().await);
    let ids: Vec<String> = (0..20).map(|i| format!("b-{i:02}")).collect();
    for id in &ids {
        store.create_instance(create_request(id, "Orch")).await.unwrap();
    }
    let mut items = Vec::new();
    for id in &ids {
        items.push(fetch_for(&*store, id, LONG).await);
    }
    // Someone else's history row where b-07's turn would go.
    sql(
        &db,
        &format!(
            "INSERT INTO \"{}\".history (instance_id, execution_id, first_event_index, events) \
             VALUES ('b-07', 'e1', 0, '[]')",
            db.schema()
        ),
    )
    .await;
    let commits: Vec<_> = items
        .iter()
        .map(|item| {
            let (store, commit) = (store.clone(), turn_of(item));
            tokio::spawn(async move { store.commit_turn(commit).await })
        })
        .collect();
    for (id, commit) in ids.iter().zip(commits) {
        let result = commit.await.unwrap();
        if id == "b-07" {
            assert!(matches!(result, Err(Error::Conflict(_))), "{result:?}");
        } else {
            result.unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(store.read_history(id).await.unwrap().len(), 2, "{id}");
        }
    }
}
