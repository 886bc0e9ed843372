//! A quick throughput and footprint benchmark of the SQLite store (not a test: numbers depend
//! on the machine).
//!
//! ```text
//! cargo run --release -p durable-store-sqlite --example store_bench -- [turns|parked] [full|normal] [N] [CONCURRENCY]
//! ```
//!
//! - `turns` (default): N instances (default 1000) each get an event, are fetched and commit a
//!   small turn, for 5 rounds, with CONCURRENCY committers (default N); prints turn commits per
//!   second and how many transactions (fsyncs) they needed. The database goes in a temporary
//!   directory under the current one.
//! - `parked`: N instances (default 100000) each park on a timer an hour out; prints database
//!   bytes per instance, the process RSS, and how long a reopen takes to rebuild the index.
//!   `parked full N keep` keeps the database and prints its path; `reopen full PATH` then opens
//!   it in a fresh process and prints the memory the rebuilt index takes.

use durable_core::{EventKind, HistoryEvent, Timestamp};
use durable_store::{CreateInstance, NewTimer, Store, TurnCommit};
use durable_store_sqlite::{SqliteStore, SqliteStoreOptions, Synchronous};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(300);

fn options(path: &Path, sync: Synchronous) -> SqliteStoreOptions {
    let mut o = SqliteStoreOptions::new(path);
    o.synchronous = sync;
    o
}

fn create(i: usize) -> CreateInstance {
    CreateInstance {
        // 32 hex characters, like the GUIDs the HTTP API hands out.
        instance_id: format!("{i:032x}"),
        name: "Bench".into(),
        execution_id: format!("{:032x}", i + (1 << 40)),
        input: Some(durable_core::Payload::from_json(r#"{"phone":"+14255550100"}"#).unwrap()),
        parent: None,
        created_at: Timestamp::now(),
        trace: None,
    }
}

/// The commit of a small turn: consume everything, append its events.
fn turn(item: &durable_store::OrchestrationWorkItem, timer: Option<NewTimer>) -> TurnCommit {
    let mut c = durable_store::conformance::turn_of(item);
    if let Some(t) = timer {
        c.history
            .push(HistoryEvent::new(c.now, EventKind::TimerCreated { id: t.timer_id, fire_at: t.fire_at }));
        c.timers.push(t);
    }
    c
}

async fn all<T: Send + 'static>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

async fn fetch_n(store: &SqliteStore, n: usize) -> Vec<durable_store::OrchestrationWorkItem> {
    let mut items = Vec::with_capacity(n);
    while items.len() < n {
        let got = store.fetch_orchestration_work(n - items.len(), LEASE).await.unwrap();
        if got.is_empty() {
            store.wait_for_orchestration_work(Duration::from_millis(50)).await;
        }
        items.extend(got);
    }
    items
}

async fn create_all(store: &Arc<SqliteStore>, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let tasks = chunk
            .iter()
            .map(|&i| {
                let store = store.clone();
                tokio::spawn(async move { store.create_instance(create(i)).await.unwrap() })
            })
            .collect();
        all(tasks).await;
    }
}

async fn turns(path: &Path, sync: Synchronous, n: usize, concurrency: usize) {
    let store = Arc::new(SqliteStore::open(options(path, sync)).unwrap());
    let t = Instant::now();
    create_all(&store, n).await;
    let m = store.metrics();
    println!(
        "create: {n} instances in {:.2}s = {:.0}/s, {} transactions",
        t.elapsed().as_secs_f64(),
        n as f64 / t.elapsed().as_secs_f64(),
        m.transactions
    );
    // First turn of each instance.
    let items = fetch_n(&store, n).await;
    all(items
        .into_iter()
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.commit_turn(turn(&i, None)).await.unwrap() })
        })
        .collect())
    .await;

    let (mut commit_time, mut send_time) = (Duration::ZERO, Duration::ZERO);
    let before = store.metrics();
    let mut commit_tx = 0;
    for round in 0..5 {
        let t = Instant::now();
        all((0..n)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let ev = HistoryEvent::new(
                        Timestamp::now(),
                        EventKind::EventRaised { name: "Answer".into(), input: None, id: None },
                    );
                    store.send_message(&format!("{i:032x}"), ev).await.unwrap();
                })
            })
            .collect())
        .await;
        send_time += t.elapsed();
        let items = fetch_n(&store, n).await;
        let tx0 = store.metrics().transactions;
        let t = Instant::now();
        // `concurrency` workers, each committing its share one turn after the other.
        let mut shares: Vec<Vec<_>> = (0..concurrency).map(|_| Vec::new()).collect();
        for (k, item) in items.into_iter().enumerate() {
            shares[k % concurrency].push(item);
        }
        all(shares
            .into_iter()
            .map(|share| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in share {
                        store.commit_turn(turn(&i, None)).await.unwrap();
                    }
                })
            })
            .collect())
        .await;
        commit_time += t.elapsed();
        commit_tx += store.metrics().transactions - tx0;
        let _ = round;
    }
    let after = store.metrics();
    let turns = after.turns - before.turns;
    println!(
        "{sync:?}, {concurrency} concurrent committers: {turns} turn commits in {:.2}s = {:.0} commits/s using {commit_tx} transactions ({:.1} commits per fsync)",
        commit_time.as_secs_f64(),
        turns as f64 / commit_time.as_secs_f64(),
        turns as f64 / commit_tx as f64,
    );
    println!(
        "{sync:?}: {} client sends in {:.2}s = {:.0} sends/s",
        n * 5,
        send_time.as_secs_f64(),
        (n * 5) as f64 / send_time.as_secs_f64()
    );
    store.close().await.unwrap();
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn db_bytes(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
        })
        .sum()
}

async fn parked(path: &Path, sync: Synchronous, n: usize) {
    let rss0 = rss_kib();
    {
        let store = Arc::new(SqliteStore::open(options(path, sync)).unwrap());
        let t = Instant::now();
        create_all(&store, n).await;
        let mut done = 0;
        while done < n {
            let items = fetch_n(&store, (n - done).min(2000)).await;
            done += items.len();
            all(items
                .into_iter()
                .map(|i| {
                    let store = store.clone();
                    let timer =
                        NewTimer { timer_id: 0, fire_at: Timestamp::now() + Duration::from_secs(3600) };
                    tokio::spawn(async move { store.commit_turn(turn(&i, Some(timer))).await.unwrap() })
                })
                .collect())
            .await;
        }
        println!(
            "parked {n} instances in {:.1}s; timers in memory: {}",
            t.elapsed().as_secs_f64(),
            store.pending_timers()
        );
        store.close().await.unwrap();
    }
    let bytes = db_bytes(path);
    println!("database: {} bytes = {:.0} bytes per parked instance", bytes, bytes as f64 / n as f64);
    let t = Instant::now();
    let rss_before_open = rss_kib();
    let store = SqliteStore::open(options(path, sync)).unwrap();
    println!(
        "reopen: index rebuilt in {:.2}s, {} timers; RSS {} MiB at start, {} MiB before reopen, {} MiB after ({:.0} bytes per parked instance)",
        t.elapsed().as_secs_f64(),
        store.pending_timers(),
        rss0 / 1024,
        rss_before_open / 1024,
        rss_kib() / 1024,
        (rss_kib().saturating_sub(rss_before_open) * 1024) as f64 / n as f64
    );
    store.close().await.unwrap();
}

/// Opens an existing database in a fresh process, to see the memory the index takes.
async fn reopen(path: &Path, sync: Synchronous) {
    let rss0 = rss_kib();
    let t = Instant::now();
    let store = SqliteStore::open(options(path, sync)).unwrap();
    let wakeups = store.pending_timers();
    let rss = rss_kib();
    println!(
        "reopen: {wakeups} timers rebuilt in {:.2}s; RSS {} MiB before, {} MiB after = {:.0} bytes per timer",
        t.elapsed().as_secs_f64(),
        rss0 / 1024,
        rss / 1024,
        ((rss - rss0) * 1024) as f64 / wakeups.max(1) as f64
    );
    store.close().await.unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("turns", String::as_str).to_owned();
    let sync = match args.get(1).map(String::as_str) {
        Some("normal") => Synchronous::Normal,
        _ => Synchronous::Full,
    };
    let default_n = if mode == "parked" { 100_000 } else { 1000 };
    let n = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(default_n);
    let concurrency = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(n).max(1);
    // In the current directory: /tmp may be a RAM disk, where fsync costs nothing.
    let dir = tempfile::tempdir_in(".").unwrap();
    let path = dir.path().join("bench.db");
    match mode.as_str() {
        "parked" if args.get(3).is_some_and(|a| a == "keep") => {
            parked(&path, sync, n).await;
            println!("kept {}", dir.keep().join("bench.db").display());
        }
        "parked" => parked(&path, sync, n).await,
        "reopen" => reopen(Path::new(args.get(2).expect("reopen needs the database path")), sync).await,
        _ => turns(&path, sync, n, concurrency).await,
    }
}
