//! Memory is bounded by the work in flight, not by the backlog (ARCHITECTURE.md, invariants).
//!
//! Instances wait for an answer; with no runtime running, a backlog of answers is queued in the
//! store; then a runtime drains it. The live heap (counted by dhat's allocator, not RSS, so
//! allocator fragmentation does not blur it) is sampled during the drain. What the drain adds,
//! per queued answer, must stay under a small fixed budget: the execution cache, the turns in
//! flight and the fetched batches are bounded by the runtime options, so only the store's
//! per-item index entry may grow with the backlog. This test fails if anything starts holding
//! memory per queued item again (a listener, a buffered event, a cached execution beyond the
//! cache's capacity...).
//!
//! One test in this binary: the allocator and its counters are process-wide.

mod common;

use common::*;
use durable_core::{EventKind, HistoryEvent, OrchestrationContext, RuntimeStatus};
use durable_runtime::{Registry, Runtime, RuntimeOptions};
use durable_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Heap the drain may add per queued answer: the store's ready-queue entry and instance slot
/// (the id, about 150 bytes) with room for allocator rounding. Today's cost is printed.
const BYTES_PER_QUEUED_ANSWER: usize = 400;

/// Waits for an answer, then for another event that never comes: after the drain every
/// instance is still running, so its execution could stay cached (the cache must not grow past
/// its capacity with the backlog).
async fn wait_answer(ctx: OrchestrationContext, _: ()) -> Result<String, durable_core::Error> {
    let answer = ctx.wait_for_external_event::<String>("Answer").await?;
    ctx.wait_for_external_event::<String>("Never").await?;
    Ok(answer)
}

fn registry() -> Registry {
    Registry::new().orchestrator("WaitAnswer", wait_answer)
}

/// Small bounds, so that the backlog dwarfs what is in flight.
fn bounded() -> RuntimeOptions {
    RuntimeOptions { max_concurrent_turns: 8, fetch_batch: 8, execution_cache_capacity: 64, ..options() }
}

fn live_bytes() -> usize {
    dhat::HeapStats::get().curr_bytes
}

/// Parks `n` instances, queues an answer for each with no runtime running, then drains them
/// with a fresh runtime; returns the peak live heap during the drain above the heap before the
/// answers were queued.
async fn drain_growth(n: usize) -> usize {
    let node = TestNode::start_in(tempfile::tempdir().unwrap(), registry(), bounded());
    let client = node.client();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(client.start_with_id("WaitAnswer", &format!("m-{n}-{i:06}"), &()).await.unwrap());
    }
    eventually("every instance waits for its answer", || async {
        let counts = node.store.count_instances().await.unwrap();
        counts.get(RuntimeStatus::Running) == n as u64
            && node.store.backlog().await.map(|b| b.ready_instances == 0).unwrap_or(false)
    })
    .await;
    let TestNode { dir, store, runtime } = node;
    runtime.unwrap().shutdown().await;

    let before = live_bytes();
    for id in &ids {
        let answer = durable_core::Payload::from_value("yes").unwrap();
        let event = EventKind::EventRaised { name: "Answer".into(), input: Some(answer), id: None };
        store.send_message(id, HistoryEvent::new(durable_core::Timestamp::now(), event)).await.unwrap();
    }
    let runtime = Runtime::start(store.clone(), registry(), bounded()).unwrap();
    let peak = Arc::new(AtomicUsize::new(live_bytes()));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(live_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    // One turn per answer.
    eventually("every answer is processed", || async { runtime.metrics().turns >= n as u64 }).await;
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    runtime.shutdown().await;
    store.close().await.unwrap();
    drop((store, dir));
    peak.load(Ordering::Relaxed).saturating_sub(before)
}

#[test]
fn draining_queued_answers_needs_memory_for_the_work_in_flight_not_the_backlog() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let (small, large) = (250, 2_000);
        let small_growth = drain_growth(small).await;
        let large_growth = drain_growth(large).await;
        let per_item = large_growth.saturating_sub(small_growth) / (large - small);
        eprintln!(
            "drain growth: {small} answers {small_growth} B, {large} answers {large_growth} B; {per_item} B per queued answer"
        );
        assert!(
            per_item <= BYTES_PER_QUEUED_ANSWER,
            "draining a backlog holds {per_item} B per queued answer (budget {BYTES_PER_QUEUED_ANSWER} B): \
             something keeps memory per queued item instead of per item in flight"
        );
    });
}
