//! Scale-out: two `durable serve` processes on one PostgreSQL schema behind the same HTTP API;
//! 500 phone verifications started through both; one node killed with SIGKILL in the middle.
//! Every verification still ends with the right output, exactly once, with no duplicated
//! history, and the survivor takes over the dead node's work once its leases expire.

mod common;

use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const INSTANCES: u32 = 500;
const LEASE_MS: u64 = 2000;

/// Instance `i` is answered with the right code, except every fifth, which gets 4 wrong ones.
fn expected(i: u32) -> bool {
    i % 5 != 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_work_and_survive_a_kill_9() {
    let Some(db) = durable_store_postgres::testing::database().await else { return };
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("durable.toml");
    std::fs::write(
        &config,
        format!("[server.runtime]\norchestration_lease = {LEASE_MS}\nactivity_lease = {LEASE_MS}\n"),
    )
    .unwrap();
    let launch = Launch {
        twilio: Some(twilio.base_url()),
        args: vec![
            "--store".into(),
            db.url().into(),
            "--postgres-schema".into(),
            db.schema().into(),
            "--config".into(),
            config.display().to_string(),
            // 500 starts from one test client in seconds: the abuse limits would refuse most.
            "--no-verification-limits".into(),
        ],
    };
    let a = Durable::start(&dir.path().join("a"), &launch);
    let b = Durable::start(&dir.path().join("b"), &launch);

    // Start every verification, alternating nodes, 50 at a time.
    let mut starts: Vec<Value> = Vec::new();
    for chunk in (0..INSTANCES).collect::<Vec<_>>().chunks(50) {
        let futures = chunk.iter().map(|&i| {
            let node = if i % 2 == 0 { &a } else { &b };
            node.start_verification_owned(format!("\"{}\"", phone(1000 + i)))
        });
        starts.extend(futures::future::join_all(futures).await);
    }
    // Each challenge is recorded (its TaskCompleted is in history) before anyone answers, so
    // the newest SMS to a phone carries the code that counts.
    wait_all(&a, &starts, |s| history_has(s, "TaskCompleted")).await;

    // Answer the first half through the node that started them, then kill node B mid-way.
    let half = INSTANCES / 2;
    answer_range(&a, &b, &twilio, &starts, 0..half).await;
    b.kill9();
    let killed_at = Instant::now();

    // The rest is answered through the survivor (management URLs rebased onto it).
    answer_range(&a, &a, &twilio, &starts, half..INSTANCES).await;
    let finished = wait_all(&a, &starts, |s| s["runtimeStatus"] == "Completed").await;
    let takeover = killed_at.elapsed();
    eprintln!(
        "all {INSTANCES} verifications finished {takeover:?} after node B was killed (lease {LEASE_MS} ms)"
    );

    for (i, status) in finished.iter().enumerate() {
        assert_eq!(status["output"].as_bool(), Some(expected(i as u32)), "instance {i}: {status}");
        let events = status["historyEvents"].as_array().unwrap();
        let count = |t: &str| events.iter().filter(|e| e["EventType"] == t).count();
        assert_eq!(count("ExecutionStarted"), 1, "instance {i}");
        assert_eq!(count("ExecutionCompleted"), 1, "instance {i}: exactly one completion");
        assert_eq!(count("TaskCompleted"), 1, "instance {i}: no duplicated history");
        assert_eq!(count("TimerCreated"), 1, "instance {i}: no duplicated history");
        let to = phone(1000 + i as u32);
        let sms = twilio.messages_to(&to).len();
        assert!((1..=2).contains(&sms), "instance {i}: {sms} SMS (at most one resend after the crash)");
    }
    assert!(
        takeover < Duration::from_millis(LEASE_MS) + Duration::from_secs(30),
        "the survivor took {takeover:?} to finish the dead node's work"
    );
}

/// Answers instances `range`: through `first` for even, `second` for odd instances.
async fn answer_range(
    first: &Durable,
    second: &Durable,
    twilio: &durable_twilio::fake::FakeTwilio,
    starts: &[Value],
    range: std::ops::Range<u32>,
) {
    for chunk in range.collect::<Vec<_>>().chunks(25) {
        let futures = chunk.iter().map(|&i| async move {
            let node = if i % 2 == 0 { first } else { second };
            let start = rebase(&starts[i as usize], &node.base);
            let code = code_of(&twilio.messages_to(&phone(1000 + i)).last().unwrap().body);
            if expected(i) {
                assert_eq!(node.answer(&start, &format!("\"{code}\"")).await, 202);
            } else {
                for n in 0..4 {
                    assert_eq!(node.answer(&start, &wrong(&code, n)).await, 202);
                }
            }
        });
        futures::future::join_all(futures).await;
    }
}

/// Polls every instance's status (with history) through `node` until `done` holds for all;
/// returns the final statuses.
async fn wait_all(node: &Durable, starts: &[Value], done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = vec![Value::Null; starts.len()];
    let mut pending: Vec<usize> = (0..starts.len()).collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for i in pending {
            let start = rebase(&starts[i], &node.base);
            let url = format!(
                "{}&showHistory=true&showHistoryOutput=true",
                start["statusQueryGetUri"].as_str().unwrap()
            );
            let status: Value = node.http.get(url).send().await.unwrap().json().await.unwrap();
            if done(&status) {
                last[i] = status;
            } else {
                still.push(i);
            }
        }
        pending = still;
        assert!(Instant::now() < deadline, "{} instance(s) did not get there", pending.len());
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    last
}

fn history_has(status: &Value, event_type: &str) -> bool {
    status["historyEvents"].as_array().is_some_and(|h| h.iter().any(|e| e["EventType"] == event_type))
}

fn rebase(start: &Value, base: &str) -> Value {
    let old = start["statusQueryGetUri"].as_str().unwrap();
    let old_base = &old[..old.find("/runtime").unwrap()];
    serde_json::from_str(&start.to_string().replace(old_base, base)).unwrap()
}
