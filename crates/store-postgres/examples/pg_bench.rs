//! A quick throughput measurement of the PostgreSQL store (not a test: numbers depend on the
//! machine and the server's configuration). Uses a fresh schema on `DURABLE_TEST_POSTGRES_URL`
//! (or a throwaway local cluster, see `durable_store_postgres::testing`), dropped at the end.
//!
//! ```text
//! DURABLE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p durable-store-postgres --features testing --example pg_bench -- [turns|notify] [N...]
//! ```
//!
//! - `turns` (default): 2,000 instances each get an event and are fetched, then their turns are
//!   committed by N concurrent committers (default 1 2 4 8 16 32), 3 rounds each; prints turn
//!   commits per second. Concurrent `commit_turn` calls are group-committed: the store sends
//!   what queued up as one `commit_turns` call (one round trip, one transaction, one WAL flush).
//! - `notify`: why notifications are sent after the data commit and not inside it: N
//!   connections each commit small transactions as fast as they can, with and without a
//!   `pg_notify` in the same transaction; prints transactions per second.
//!
//! Measured on the 2-core development VM (PostgreSQL 15 on loopback, `fdatasync`, release
//! build, 2026-11-26, ±20%):
//!
//! | committers | turn commits/s, one transaction per call (schema v1) | group commit (schema v2) |
//! |-----------:|-----------------------------------------------------:|-------------------------:|
//! | 1          | 260–300                                              | 1,549                    |
//! | 16         | 1,300–1,700                                          | 8,657                    |
//! | 256        | —                                                    | 20,404                   |
//!
//! One call at a time got faster too: generic plans (`plan_cache_mode=force_generic_plan`)
//! stopped PostgreSQL from planning every statement again on every call. `notify` mode: 16
//! connections committing `INSERT` alone reach ~3900/s, with a `pg_notify` in each transaction
//! ~1300/s (fewer than with 1 connection): notifying transactions commit one at a time, which
//! is why notifications go out after the data commit.

use durable_core::{EventKind, HistoryEvent, Timestamp};
use durable_store::{CreateInstance, OrchestrationWorkItem, Store, TurnCommit};
use durable_store_postgres::PostgresStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(600);
const INSTANCES: usize = 2000;
const ROUNDS: usize = 3;

fn id(i: usize) -> String {
    // 32 hex characters, like the GUIDs the HTTP API hands out.
    format!("{i:032x}")
}

fn create(i: usize) -> CreateInstance {
    CreateInstance {
        instance_id: id(i),
        name: "Bench".into(),
        execution_id: format!("{:032x}", i + (1 << 40)),
        input: Some(durable_core::Payload::from_json(r#"{"phone":"+14255550100"}"#).unwrap()),
        parent: None,
        created_at: Timestamp::now(),
        trace: None,
    }
}

/// A small turn: consume everything, append its events.
fn turn(item: &OrchestrationWorkItem) -> TurnCommit {
    durable_store::conformance::turn_of(item)
}

/// Runs `jobs` with `n` concurrent workers; returns the elapsed time.
async fn run_concurrently<T: Send + 'static>(
    jobs: Vec<T>,
    n: usize,
    work: impl Fn(T) -> tokio::task::JoinHandle<()> + Send + Sync + 'static,
) -> Duration {
    let queue = Arc::new(parking_lot::Mutex::new(jobs));
    let work = Arc::new(work);
    let t = Instant::now();
    let workers: Vec<_> = (0..n)
        .map(|_| {
            let (queue, work) = (queue.clone(), work.clone());
            tokio::spawn(async move {
                loop {
                    let job = queue.lock().pop();
                    let Some(job) = job else { break };
                    work(job).await.expect("job");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    t.elapsed()
}

async fn fetch_all(store: &PostgresStore, n: usize) -> Vec<OrchestrationWorkItem> {
    let mut items = Vec::with_capacity(n);
    while items.len() < n {
        let got = store.fetch_orchestration_work(100, LEASE).await.unwrap();
        if got.is_empty() {
            store.wait_for_orchestration_work(Duration::from_millis(50)).await;
        }
        items.extend(got);
    }
    items
}

async fn turns(committers: &[usize]) {
    let Some(db) = durable_store_postgres::testing::database().await else { return };
    let mut options = db.options();
    options.pool_size = committers.iter().copied().max().unwrap_or(8).max(8);
    let store = Arc::new(PostgresStore::connect(options).await.unwrap());

    let s = store.clone();
    let took = run_concurrently((0..INSTANCES).collect(), 16, move |i| {
        let s = s.clone();
        tokio::spawn(async move { s.create_instance(create(i)).await.unwrap() })
    })
    .await;
    println!("create: {INSTANCES} instances in {took:.2?} = {:.0}/s (16 concurrent)", rate(INSTANCES, took));
    let first = fetch_all(&store, INSTANCES).await;
    let s = store.clone();
    run_concurrently(first, 16, move |item| {
        let s = s.clone();
        tokio::spawn(async move { s.commit_turn(turn(&item)).await.unwrap() })
    })
    .await;

    for &n in committers {
        let (mut commit_time, mut send_time, mut fetch_time) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for _ in 0..ROUNDS {
            let s = store.clone();
            send_time += run_concurrently((0..INSTANCES).collect(), 16, move |i| {
                let s = s.clone();
                tokio::spawn(async move {
                    let ev = HistoryEvent::new(
                        Timestamp::now(),
                        EventKind::EventRaised { name: "Answer".into(), input: None, id: None },
                    );
                    s.send_message(&id(i), ev).await.unwrap();
                })
            })
            .await;
            let t = Instant::now();
            let items = fetch_all(&store, INSTANCES).await;
            fetch_time += t.elapsed();
            let s = store.clone();
            commit_time += run_concurrently(items, n, move |item| {
                let s = s.clone();
                tokio::spawn(async move { s.commit_turn(turn(&item)).await.unwrap() })
            })
            .await;
        }
        let total = INSTANCES * ROUNDS;
        println!(
            "{n:>3} committers: {:>6.0} turn commits/s   (send_message {:>6.0}/s with 16 senders, fetch {:>6.0} items/s in batches of 100)",
            rate(total, commit_time),
            rate(total, send_time),
            rate(total, fetch_time),
        );
    }
    let m = store.metrics();
    println!("metrics: {m:?}");
    store.close().await.unwrap();
}

/// Small transactions per second on `n` connections, with or without a NOTIFY in each.
async fn notify_cost(counts: &[usize]) {
    let Some(db) = durable_store_postgres::testing::database().await else { return };
    let url = db.url().to_owned();
    let setup =
        format!("CREATE SCHEMA {s}; CREATE TABLE {s}.t (id bigserial PRIMARY KEY, v text)", s = db.schema());
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    admin.batch_execute(&setup).await.unwrap();
    for &n in counts {
        for notify in [false, true] {
            let mut tasks = Vec::new();
            let per_connection = 2000 / n.max(1);
            let t = Instant::now();
            for _ in 0..n {
                let (url, schema) = (url.clone(), db.schema().to_owned());
                tasks.push(tokio::spawn(async move {
                    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
                    tokio::spawn(conn);
                    let sql = if notify {
                        format!("INSERT INTO {schema}.t (v) VALUES ('x'); SELECT pg_notify('{schema}', 'o')")
                    } else {
                        format!("INSERT INTO {schema}.t (v) VALUES ('x')")
                    };
                    for _ in 0..per_connection {
                        // One implicit transaction per simple-query message.
                        client.batch_execute(&sql).await.unwrap();
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            let total = per_connection * n;
            println!(
                "{n:>3} connections, {}: {:>6.0} commits/s",
                if notify {
                    "INSERT + NOTIFY in one transaction"
                } else {
                    "INSERT only                       "
                },
                rate(total, t.elapsed())
            );
        }
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let mode = match args.peek().map(String::as_str) {
        Some("turns") | Some("notify") => args.next().unwrap(),
        _ => "turns".to_owned(),
    };
    let counts: Vec<usize> = args.map(|a| a.parse().expect("N is a number")).collect();
    let counts = if counts.is_empty() { vec![1, 2, 4, 8, 16, 32] } else { counts };
    match mode.as_str() {
        "notify" => notify_cost(&counts).await,
        _ => turns(&counts).await,
    }
}
