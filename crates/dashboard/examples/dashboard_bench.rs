//! How fast the dashboard answers with many instances in the store (BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p durable-dashboard --example dashboard_bench -- sqlite /tmp/bench.db 1000000
//! cargo run --release -p durable-dashboard --example dashboard_bench -- postgres://postgres@127.0.0.1:5432/test 1000000
//! ```
//!
//! Fills the store through the store API (when it has fewer instances than asked): 90 % of
//! the instances are `E4_SmsPhoneVerification`, 10 % `Other`; each runs one turn that leaves it
//! Completed (80 %), Failed (5 %), Terminated (5 %) or Running (10 %). Then it times the
//! store's count and list queries and the dashboard's pages (rendered by its router, no
//! sockets), each the median of 21 runs after 3 warm-ups.

use durable_core::{EventKind, HistoryEvent, RuntimeStatus, Timestamp};
use durable_dashboard::{Dashboard, DashboardOptions, router};
use durable_runtime::{Registry, Runtime, RuntimeOptions};
use durable_store::{CreateInstance, InstanceQuery, Store, TurnCommit};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const NAME: &str = "E4_SmsPhoneVerification";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (store, n): (Arc<dyn Store>, usize) = match args.get(1).map(String::as_str) {
        Some("sqlite") => {
            let mut o = durable_store_sqlite::SqliteStoreOptions::new(&args[2]);
            o.synchronous = durable_store_sqlite::Synchronous::Normal;
            (Arc::new(durable_store_sqlite::SqliteStore::open(o)?), args[3].parse()?)
        }
        Some(url) if url.starts_with("postgres") => {
            let mut o = durable_store_postgres::PostgresStoreOptions::new(url);
            o.schema = "dashboard_bench".into();
            (Arc::new(durable_store_postgres::PostgresStore::connect(o).await?), args[2].parse()?)
        }
        _ => return Err("usage: dashboard_bench sqlite <file> <n> | dashboard_bench postgres://… <n>".into()),
    };
    let have = store.count_instances().await?.total() as usize;
    if have < n {
        populate(&store, have, n).await?;
    }
    println!("instances: {:?}", store.count_instances().await?);

    let q = |f: &dyn Fn(&mut InstanceQuery)| {
        let mut q = InstanceQuery { page_size: 50, newest_first: true, ..Default::default() };
        f(&mut q);
        q
    };
    let deep = {
        // The continuation after ~half of the instances (newest first), found by one query.
        let mut probe = q(&|_| {});
        probe.page_size = n / 2;
        let page = store.query_instances(&probe).await?;
        page.continuation
    };
    let queries: Vec<(&str, InstanceQuery)> = vec![
        ("newest 50", q(&|_| {})),
        ("status=Running (10 %)", q(&|q| q.statuses = vec![RuntimeStatus::Running])),
        ("status=Failed (5 %)", q(&|q| q.statuses = vec![RuntimeStatus::Failed])),
        (
            "status=Failed|Terminated",
            q(&|q| q.statuses = vec![RuntimeStatus::Failed, RuntimeStatus::Terminated]),
        ),
        ("name=Other (10 %)", q(&|q| q.name = Some("Other".into()))),
        ("id prefix 'ab' (1/256)", q(&|q| q.instance_id_prefix = Some("ab".into()))),
        ("id prefix 'abcd' (1/65536)", q(&|q| q.instance_id_prefix = Some("abcd".into()))),
        (
            "created in a 1-minute window",
            q(&|q| {
                q.created_from = Some(at(n as i64 / 2));
                q.created_to = Some(at(n as i64 / 2 + 60_000));
            }),
        ),
        ("page at the middle (continuation)", q(&|q| q.continuation = deep.clone())),
    ];
    println!("\n{:<40} {:>10}", "store query", "median ms");
    println!(
        "{:<40} {:>10.2}",
        "count_instances",
        time(|| async { store.count_instances().await.map(drop) }).await?
    );
    for (label, query) in &queries {
        let ms = time(|| async { store.query_instances(query).await.map(drop) }).await?;
        println!("{label:<40} {ms:>10.2}");
    }

    // The dashboard's pages, rendered by its router (no authentication: the session is
    // issued on the fly, as for a local server).
    let registry =
        Registry::new().orchestrator(NAME, |_ctx, _: ()| async { Ok::<_, durable_core::Error>(()) });
    let runtime = Runtime::start(store.clone(), registry, RuntimeOptions::default())?;
    let app = router(Dashboard::new(runtime.client(), store.clone(), DashboardOptions::default()));
    println!("\n{:<40} {:>10}", "dashboard page", "median ms");
    for path in [
        "/",
        "/live/instances",
        "/?status=Failed",
        "/?name=Other",
        "/?prefix=abcd",
        "/?status=Running&size=200",
    ] {
        let ms = time(|| async {
            let request = axum::http::Request::builder().uri(path).body(axum::body::Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success(), "{path}: {}", response.status());
            let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
            Ok(())
        })
        .await?;
        println!("{path:<40} {ms:>10.2}");
    }
    runtime.shutdown().await;
    store.close().await?;
    Ok(())
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(1_767_225_600_000 + ms).unwrap()
}

/// Median of 21 runs after 3 warm-ups, in milliseconds.
async fn time<F, Fut>(mut f: F) -> Result<f64, Box<dyn std::error::Error>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), durable_store::Error>>,
{
    for _ in 0..3 {
        f().await?;
    }
    let mut runs = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        f().await?;
        runs.push(start.elapsed());
    }
    runs.sort();
    Ok(runs[runs.len() / 2].as_secs_f64() * 1000.0)
}

/// Creates instances `from..to` and runs one turn for each, in chunks.
async fn populate(store: &Arc<dyn Store>, from: usize, to: usize) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    const CHUNK: usize = 2000;
    for chunk in (from..to).step_by(CHUNK) {
        let end = (chunk + CHUNK).min(to);
        let creates = (chunk..end).map(|i| {
            let store = store.clone();
            async move {
                let name = if i % 10 == 9 { "Other" } else { NAME };
                store
                    .create_instance(CreateInstance {
                        instance_id: uuid::Uuid::new_v4().simple().to_string(),
                        name: name.into(),
                        execution_id: "e1".into(),
                        input: Some(durable_core::Payload::from_json("\"+14255550123\"").unwrap()),
                        parent: None,
                        created_at: at(i as i64),
                        trace: None,
                    })
                    .await
            }
        });
        for r in futures::future::join_all(creates).await {
            r?;
        }
        let mut left = end - chunk;
        while left > 0 {
            store.wait_for_orchestration_work(Duration::from_millis(100)).await;
            let items = store.fetch_orchestration_work(left.min(1000), Duration::from_secs(300)).await?;
            left -= items.len();
            let commits = items.into_iter().map(|item| {
                let store = store.clone();
                async move {
                    let n = item.instance.created_at.as_millisecond() % 20;
                    let status = match n {
                        0 => RuntimeStatus::Failed,
                        1 => RuntimeStatus::Terminated,
                        2 | 3 => RuntimeStatus::Running,
                        _ => RuntimeStatus::Completed,
                    };
                    let now = Timestamp::now();
                    let mut history = vec![HistoryEvent::new(now, EventKind::OrchestratorStarted)];
                    history.extend(item.messages.iter().map(|m| m.event.clone()));
                    store
                        .commit_turn(TurnCommit {
                            lease: item.lease.clone(),
                            execution_id: item.instance.execution_id.clone(),
                            expected_history_len: item.instance.history_len,
                            consumed: item.messages.iter().map(|m| m.id).collect(),
                            history,
                            status,
                            output: (status == RuntimeStatus::Completed)
                                .then(|| durable_core::Payload::from_json("true").unwrap()),
                            failure: (status == RuntimeStatus::Failed)
                                .then(|| durable_core::FailureDetails::new("Bench", "failed on purpose")),
                            custom_status: None,
                            now,
                            activities: Vec::new(),
                            timers: Vec::new(),
                            cancelled_timers: Vec::new(),
                            new_instances: Vec::new(),
                            messages: Vec::new(),
                            continue_as_new: None,
                        })
                        .await
                }
            });
            for r in futures::future::join_all(commits).await {
                r?;
            }
        }
        if end.is_multiple_of(100_000) {
            println!("{end} instances ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}
