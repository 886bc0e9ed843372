//! Micro-benchmarks of `SqliteStore::commit_turn` with `synchronous=FULL`: one commit round trip
//! at a time (each waits for its own fsync), and 100 concurrent commits (which the writer thread
//! groups into few transactions). The database lives under the target directory, on disk:
//! a RAM disk would make fsync free.
//!
//! ```text
//! cargo bench -p durable-store-sqlite --bench commit
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use durable_core::{EventKind, HistoryEvent, Payload, Timestamp};
use durable_store::{CreateInstance, OrchestrationWorkItem, Store, TurnCommit};
use durable_store_sqlite::{SqliteStore, SqliteStoreOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(300);

fn id(i: usize) -> String {
    format!("{i:032x}")
}

/// A typical small turn: consume the messages, append its events.
fn commit(item: &OrchestrationWorkItem) -> TurnCommit {
    durable_store::conformance::turn_of(item)
}

/// Leases `n` work items, waiting for them to become visible.
async fn fetch(store: &SqliteStore, n: usize) -> Vec<OrchestrationWorkItem> {
    let mut items = Vec::with_capacity(n);
    while items.len() < n {
        let got = store.fetch_orchestration_work(n - items.len(), LEASE).await.expect("fetch");
        if got.is_empty() {
            store.wait_for_orchestration_work(Duration::from_millis(50)).await;
        }
        items.extend(got);
    }
    items
}

/// Gives each of the first `n` instances one event and leases them (not timed).
async fn prepare(store: &Arc<SqliteStore>, n: usize) -> Vec<OrchestrationWorkItem> {
    let sends = (0..n).map(|i| {
        let store = store.clone();
        async move {
            let event = HistoryEvent::new(
                Timestamp::now(),
                EventKind::EventRaised {
                    name: "SmsChallengeResponse".into(),
                    input: Some(Payload::from_json("\"0042\"").unwrap()),
                    id: None,
                },
            );
            store.send_message(&id(i), event).await.expect("send");
        }
    });
    futures::future::join_all(sends).await;
    fetch(store, n).await
}

/// A store with `n` started instances (their first turn committed).
async fn open(dir: &std::path::Path, n: usize) -> Arc<SqliteStore> {
    let store = Arc::new(SqliteStore::open(SqliteStoreOptions::new(dir.join("bench.db"))).expect("open"));
    for i in 0..n {
        store
            .create_instance(CreateInstance {
                instance_id: id(i),
                name: "E4_SmsPhoneVerification".into(),
                execution_id: format!("{:032x}", i + (1 << 40)),
                input: Some(Payload::from_value("+14255550100").unwrap()),
                parent: None,
                created_at: Timestamp::now(),
                trace: None,
            })
            .await
            .expect("create");
    }
    for item in fetch(&store, n).await {
        store.commit_turn(commit(&item)).await.expect("first turn");
    }
    store
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    const POOL: usize = 100;
    let store = rt.block_on(open(dir.path(), POOL));

    let mut g = c.benchmark_group("commit_turn");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(1));
    g.bench_function("one at a time (one fsync each)", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let store = store.clone();
            async move {
                let mut spent = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let items = prepare(&store, left.min(POOL)).await;
                    left -= items.len();
                    for item in &items {
                        let t = Instant::now();
                        store.commit_turn(commit(item)).await.expect("commit");
                        spent += t.elapsed();
                    }
                }
                spent
            }
        });
    });
    // Reported per batch of 100; the throughput line gives commits per second.
    g.throughput(Throughput::Elements(POOL as u64));
    g.bench_function("100 concurrent (group commit)", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let store = store.clone();
            async move {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let items = prepare(&store, POOL).await;
                    let t = Instant::now();
                    let commits = items.iter().map(|item| store.commit_turn(commit(item)));
                    for r in futures::future::join_all(commits).await {
                        r.expect("commit");
                    }
                    spent += t.elapsed();
                }
                spent
            }
        });
    });
    g.finish();
    rt.block_on(store.close()).unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
