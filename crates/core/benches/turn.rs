//! Micro-benchmarks of the replay engine on the phone-verification orchestrator: one live turn
//! on a cached `Execution` (what the runtime does on a cache hit), and a full replay of its
//! history (what it does on a cache miss, e.g. after a restart).
//!
//! ```text
//! cargo bench -p durable-core --bench turn
//! ```

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use durable_core::*;
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::time::Duration;

// A copy of `durable_phone_verification::sms_phone_verification` (same awaits, same payload
// shapes): core cannot depend on the sample, which depends on core through the runtime.
const ACTIVITY: &str = "E4_SendSmsChallenge";
const EVENT: &str = "SmsChallengeResponse";
const ORCHESTRATOR: &str = "E4_SmsPhoneVerification";

#[derive(Serialize, Deserialize)]
struct Challenge {
    tag: String,
    window_secs: u64,
    attempts: u32,
}

#[derive(Serialize, Deserialize)]
struct Answer {
    tag: String,
}

async fn sms_phone_verification(ctx: OrchestrationContext, phone: Option<String>) -> Result<bool, Error> {
    let phone = phone
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| Error::permanent("a phone number is required"))?;
    let challenge: Challenge = ctx.call_activity(ACTIVITY, &phone).await?;
    let timeout = ctx.create_timer(ctx.current_utc_datetime() + Duration::from_secs(challenge.window_secs));
    let mut authorized = false;
    for _ in 0..challenge.attempts {
        match ctx.select(ctx.wait_for_external_event::<Answer>(EVENT), &timeout).await {
            Either::Left(Ok(answer)) => {
                // The sample compares in constant time; equality costs the same here.
                if answer.tag == challenge.tag {
                    authorized = true;
                    break;
                }
            }
            Either::Left(Err(_)) => {}
            Either::Right(()) => break,
        }
    }
    timeout.cancel();
    Ok(authorized)
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

/// 64 hex digits, like an HMAC-SHA256 tag.
const TAG: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn started() -> HistoryEvent {
    HistoryEvent::new(
        t(0),
        EventKind::ExecutionStarted {
            name: ORCHESTRATOR.into(),
            input: Some(Payload::from_value("+14255550100").unwrap()),
            parent: None,
            trace: None,
        },
    )
}

fn challenge_sent() -> HistoryEvent {
    let challenge = Challenge { tag: TAG.into(), window_secs: 90, attempts: 4 };
    HistoryEvent::new(
        t(1),
        EventKind::TaskCompleted { task_id: 0, result: Some(Payload::from_value(&challenge).unwrap()) },
    )
}

fn answer(tag: &str) -> HistoryEvent {
    HistoryEvent::new(
        t(5),
        EventKind::EventRaised {
            name: EVENT.into(),
            input: Some(Payload::from_value(&Answer { tag: tag.into() }).unwrap()),
            id: None,
        },
    )
}

fn resolver() -> impl OrchestratorResolver {
    let f = orchestrator_fn(ORCHESTRATOR, sms_phone_verification);
    move |name: &str| (name == ORCHESTRATOR).then(|| f.clone())
}

/// The history of a verification waiting for its answer (two turns), and of a finished one.
fn histories(resolver: &dyn OrchestratorResolver) -> (Vec<HistoryEvent>, Vec<HistoryEvent>) {
    let mut exec = Execution::new("inst", "exec");
    let mut history = Vec::new();
    for (secs, events) in [(0, vec![started()]), (1, vec![challenge_sent()])] {
        history.extend(exec.run_turn(t(secs), events, resolver).history);
    }
    let waiting = history.clone();
    let last = exec.run_turn(t(5), vec![answer(TAG)], resolver);
    assert_eq!(last.status, RuntimeStatus::Completed);
    history.extend(last.history);
    (waiting, history)
}

fn bench(c: &mut Criterion) {
    let resolver = resolver();
    let (waiting, finished) = histories(&resolver);

    let mut g = c.benchmark_group("turn");
    g.bench_function("live: start (schedule the SMS activity)", |b| {
        b.iter_batched(
            || Execution::new("inst", "exec"),
            |mut exec| black_box(exec.run_turn(t(0), vec![started()], &resolver)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("live: right answer on a cached execution (completes)", |b| {
        b.iter_batched(
            || Execution::from_history("inst", "exec", &waiting, &resolver),
            |mut exec| black_box(exec.run_turn(t(5), vec![answer(TAG)], &resolver)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("live: wrong answer on a cached execution (keeps waiting)", |b| {
        let wrong = "0".repeat(64);
        b.iter_batched(
            || Execution::from_history("inst", "exec", &waiting, &resolver),
            |mut exec| black_box(exec.run_turn(t(5), vec![answer(&wrong)], &resolver)),
            BatchSize::SmallInput,
        );
    });
    g.finish();

    let mut g = c.benchmark_group("replay");
    g.bench_function(format!("waiting verification ({} events)", waiting.len()), |b| {
        b.iter(|| black_box(Execution::from_history("inst", "exec", black_box(&waiting), &resolver)));
    });
    g.bench_function(format!("finished verification ({} events)", finished.len()), |b| {
        b.iter(|| black_box(Execution::from_history("inst", "exec", black_box(&finished), &resolver)));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
