//! History compatibility: histories written by earlier builds must still replay.
//!
//! `tests/histories/*.json` holds one history per sample path and per feature, as the engine
//! recorded it (the JSON the stores keep). Every build replays each one with the orchestrators
//! below and checks that the code still matches its history: no nondeterminism, the same end,
//! and the same next step. A change to the engine or to the history format that breaks an old
//! history fails here; such a change needs a migration of stored histories, not an edit of
//! these files.
//!
//! The files were written by this test's generator: `DURABLE_WRITE_HISTORIES=1 cargo test -p
//! durable-core --test history_corpus`. Only add new files that way (for a new feature or
//! sample path); never rewrite existing ones to make a change pass.

use durable_core::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// One corpus entry.
#[derive(Serialize, Deserialize)]
struct Recorded {
    /// What it covers.
    about: String,
    /// The orchestrator it ran.
    orchestrator: String,
    /// The history, as stored.
    history: Vec<HistoryEvent>,
    /// How it ended: "Running" (waiting), or the final status.
    status: String,
}

// ------------------------------------------------------------------ the recorded orchestrators
// These are the code the histories were recorded with. Changing one changes what "the same
// code" means: add a new orchestrator (and new files) instead.

const SEND: &str = "E4_SendSmsChallenge";
const ANSWER: &str = "SmsChallengeResponse";

/// The phone-verification sample, as `durable-phone-verification` writes it (core cannot depend
/// on the sample: the shape is copied, with the tag comparison reduced to equality).
async fn sms_phone_verification(ctx: OrchestrationContext, phone: Option<String>) -> Result<bool, Error> {
    #[derive(Deserialize)]
    struct Challenge {
        tag: String,
        window_secs: u64,
        attempts: u32,
    }
    #[derive(Deserialize)]
    struct Answer {
        tag: String,
    }
    let phone = phone
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| Error::permanent("a phone number is required"))?;
    let challenge: Challenge = ctx.call_activity(SEND, &phone).await?;
    let timeout = ctx.create_timer(ctx.current_utc_datetime() + Duration::from_secs(challenge.window_secs));
    let mut authorized = false;
    for _ in 0..challenge.attempts {
        match ctx.select(ctx.wait_for_external_event::<Answer>(ANSWER), &timeout).await {
            Either::Left(Ok(answer)) => {
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

async fn features(ctx: OrchestrationContext, _: ()) -> Result<serde_json::Value, Error> {
    ctx.set_custom_status(&"starting")?;
    let guid = ctx.new_guid();
    let (a, b) = ctx.join(ctx.call_activity::<u32, _>("A", &1), ctx.call_activity::<u32, _>("B", &2)).await;
    let retried: u32 =
        ctx.call_activity_with_retry("Flaky", &(), RetryPolicy::new(3, Duration::from_secs(1))).await?;
    let child: u32 = ctx.call_sub_orchestrator_with_id("Child", "child-1", &5).await?;
    let kid: u32 = ctx
        .call_sub_orchestrator_with_retry("Child", None, &6, RetryPolicy::new(2, Duration::from_secs(1)))
        .await?;
    ctx.sleep(Duration::from_secs(30)).await;
    let cancelled = ctx.sleep(Duration::from_secs(3600));
    let early: String = ctx.wait_for_external_event("Early").await?;
    let timed: String = ctx
        .wait_for_external_event_or_default("Never", Duration::from_secs(10), "default".to_owned())
        .await?;
    let first =
        ctx.select_all(vec![ctx.wait_for_external_event::<u32>("X"), ctx.wait_for_external_event("Y")]).await;
    cancelled.cancel();
    ctx.send_event("other", "Ping", &"hello")?;
    ctx.set_custom_status(&"done")?;
    Ok(serde_json::json!({
        "guid": guid, "a": a?, "b": b?, "retried": retried, "child": child, "kid": kid,
        "early": early, "timed": timed, "first": first.0, "value": first.1?,
    }))
}

async fn child(ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
    ctx.call_activity("A", &n).await
}

async fn counter(ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
    if n >= 2 {
        return Ok(n);
    }
    let _: String = ctx.wait_for_external_event("Tick").await?;
    ctx.continue_as_new_with_options(&(n + 1), ContinueAsNewOptions { preserve_unprocessed_events: true })
        .await
}

async fn waiter(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    let a: String = ctx.call_activity("A", &()).await?;
    let b: String = ctx.wait_for_external_event("Go").await?;
    Ok(format!("{a}{b}"))
}

fn code() -> HashMap<String, OrchestratorFn> {
    HashMap::from([
        (
            "E4_SmsPhoneVerification".to_owned(),
            orchestrator_fn("E4_SmsPhoneVerification", sms_phone_verification),
        ),
        ("Features".to_owned(), orchestrator_fn("Features", features)),
        ("Child".to_owned(), orchestrator_fn("Child", child)),
        ("Counter".to_owned(), orchestrator_fn("Counter", counter)),
        ("Waiter".to_owned(), orchestrator_fn("Waiter", waiter)),
    ])
}

// ------------------------------------------------------------------------------- the replay

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/histories")
}

#[test]
fn every_recorded_history_still_replays() {
    if std::env::var_os("DURABLE_WRITE_HISTORIES").is_some() {
        write_corpus();
    }
    let code = code();
    let resolver = |name: &str| code.get(name).cloned();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/histories exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus is missing: {files:?}");
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let recorded: Recorded = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{name} no longer parses as a history: {e}"));
        let exec = Execution::from_history("corpus", "e1", &recorded.history, &resolver);
        assert_eq!(exec.history_len(), recorded.history.len(), "{name}");
        let finished = recorded.status != "Running";
        assert_eq!(exec.is_finished(), finished, "{name}: {}", recorded.about);
        // A clean replay leaves nothing to report: a turn with no new messages records nothing
        // (a replay that found nondeterminism would fail the instance here instead).
        let mut exec = exec;
        let r = exec.run_turn(Timestamp::from_second(1_900_000_000).unwrap(), Vec::new(), &resolver);
        assert!(r.failure.is_none(), "{name} ({}) no longer replays: {:?}", recorded.about, r.failure);
        if !finished {
            assert!(
                r.history.is_empty() && r.actions.is_empty(),
                "{name}: the replay issued new work: {r:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------- the generator

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn ev(secs: i64, kind: EventKind) -> HistoryEvent {
    HistoryEvent::new(t(secs), kind)
}

fn json<T: Serialize>(v: T) -> Option<Payload> {
    Some(Payload::from_value(&v).unwrap())
}

fn start(name: &str, input: Option<Payload>) -> HistoryEvent {
    ev(0, EventKind::ExecutionStarted { name: name.into(), input, parent: None, trace: None })
}

fn done(secs: i64, task_id: u32, v: impl Serialize) -> HistoryEvent {
    ev(secs, EventKind::TaskCompleted { task_id, result: json(v) })
}

fn fail(secs: i64, task_id: u32) -> HistoryEvent {
    ev(secs, EventKind::TaskFailed { task_id, failure: FailureDetails::new("ActivityError", "try later") })
}

fn raise(secs: i64, name: &str, v: impl Serialize) -> HistoryEvent {
    ev(secs, EventKind::EventRaised { name: name.into(), input: json(v), id: None })
}

fn fired(secs: i64, timer_id: u32, due: i64) -> HistoryEvent {
    ev(secs, EventKind::TimerFired { timer_id, fire_at: t(due) })
}

fn child_done(secs: i64, task_id: u32, v: impl Serialize) -> HistoryEvent {
    ev(secs, EventKind::SubOrchestrationCompleted { task_id, result: json(v) })
}

fn child_failed(secs: i64, task_id: u32) -> HistoryEvent {
    ev(
        secs,
        EventKind::SubOrchestrationFailed { task_id, failure: FailureDetails::new("Error", "child broke") },
    )
}

fn challenge() -> serde_json::Value {
    serde_json::json!({"tag": "6f1c", "window_secs": 90, "attempts": 4})
}

fn answer(tag: &str) -> serde_json::Value {
    serde_json::json!({ "tag": tag })
}

/// Runs the turns and records what the engine wrote.
fn record(about: &str, orchestrator: &str, turns: Vec<(i64, Vec<HistoryEvent>)>) -> Recorded {
    let code = code();
    let resolver = |name: &str| code.get(name).cloned();
    let mut exec = Execution::new("corpus", "e1");
    let mut history = Vec::new();
    let mut status = RuntimeStatus::Pending;
    for (secs, events) in turns {
        let r = exec.run_turn(t(secs), events, &resolver);
        history.extend(r.history);
        status = r.status;
    }
    Recorded {
        about: about.into(),
        orchestrator: orchestrator.into(),
        history,
        status: if status.is_terminal() || status == RuntimeStatus::ContinuedAsNew {
            status.as_str().into()
        } else {
            "Running".into()
        },
    }
}

/// A history that failed, was rewound (planned as the runtime does) and then completed.
fn rewound() -> Recorded {
    let code = code();
    let resolver = |name: &str| code.get(name).cloned();
    let mut exec = Execution::new("corpus", "e1");
    let mut failed = Vec::new();
    for (secs, events) in [(0, vec![start("Waiter", json(()))]), (1, vec![fail(1, 0)])] {
        failed.extend(exec.run_turn(t(secs), events, &resolver).history);
    }
    let plan = plan_rewind("corpus", "e1", &failed, &resolver, t(2), Some("fixed".into())).unwrap();
    let mut history = plan.history.clone();
    let mut exec = Execution::from_history("corpus", "e1", &history, &resolver);
    let mut status = RuntimeStatus::Running;
    for (secs, events) in [(2, plan.messages), (3, vec![done(3, 0, "a")]), (4, vec![raise(4, "Go", "b")])] {
        let r = exec.run_turn(t(secs), events, &resolver);
        history.extend(r.history);
        status = r.status;
    }
    Recorded {
        about: "failed, rewound, then completed".into(),
        orchestrator: "Waiter".into(),
        history,
        status: status.as_str().into(),
    }
}

fn write_corpus() {
    let phone = || json("+14255550123");
    let e4 = "E4_SmsPhoneVerification";
    let entries = vec![
        (
            "sample-right-code",
            record(
                "the right code: true",
                e4,
                vec![
                    (0, vec![start(e4, phone())]),
                    (1, vec![done(1, 0, challenge())]),
                    (5, vec![raise(5, ANSWER, answer("6f1c"))]),
                ],
            ),
        ),
        (
            "sample-three-wrong-then-right",
            record(
                "three wrong codes, then the right one: true",
                e4,
                vec![
                    (0, vec![start(e4, phone())]),
                    (1, vec![done(1, 0, challenge())]),
                    (2, vec![raise(2, ANSWER, answer("0001"))]),
                    (3, vec![raise(3, ANSWER, answer("0002")), raise(3, ANSWER, answer("0003"))]),
                    (4, vec![raise(4, ANSWER, answer("6f1c"))]),
                ],
            ),
        ),
        (
            "sample-four-wrong",
            record(
                "four wrong codes: false",
                e4,
                vec![
                    (0, vec![start(e4, phone())]),
                    (1, vec![done(1, 0, challenge())]),
                    (2, vec![raise(2, ANSWER, answer("1")), raise(2, ANSWER, answer("2"))]),
                    (3, vec![raise(3, ANSWER, answer("3")), raise(3, ANSWER, answer("4"))]),
                ],
            ),
        ),
        (
            "sample-timeout",
            record(
                "no answer within the window: false",
                e4,
                vec![
                    (0, vec![start(e4, phone())]),
                    (1, vec![done(1, 0, challenge())]),
                    (91, vec![fired(91, 1, 91)]),
                ],
            ),
        ),
        (
            "sample-early-answer",
            record(
                "an answer before the challenge was sent is kept",
                e4,
                vec![
                    (0, vec![start(e4, phone())]),
                    (1, vec![raise(1, ANSWER, answer("6f1c"))]),
                    (2, vec![done(2, 0, challenge())]),
                ],
            ),
        ),
        (
            "sample-waiting",
            record(
                "waiting for the answer",
                e4,
                vec![(0, vec![start(e4, phone())]), (1, vec![done(1, 0, challenge())])],
            ),
        ),
        ("sample-no-phone", record("no phone number: Failed", e4, vec![(0, vec![start(e4, json(""))])])),
        (
            "sample-sms-failed",
            record(
                "the SMS could not be sent: Failed",
                e4,
                vec![(0, vec![start(e4, phone())]), (1, vec![fail(1, 0)])],
            ),
        ),
        (
            "features-all",
            record(
                "every context feature, to completion",
                "Features",
                vec![
                    (0, vec![start("Features", json(())), raise(0, "Early", "early bird")]),
                    (1, vec![done(1, 1, 20), done(1, 0, 10)]),
                    (2, vec![fail(2, 2)]),
                    (3, vec![fired(3, 3, 3)]),
                    (4, vec![done(4, 4, 7)]),
                    (5, vec![child_done(5, 5, 50)]),
                    (6, vec![child_failed(6, 6)]),
                    (7, vec![fired(7, 7, 7)]),
                    (8, vec![child_done(8, 8, 60)]),
                    (38, vec![fired(38, 9, 38)]),
                    (48, vec![fired(48, 11, 48)]),
                    (50, vec![raise(50, "Y", 2), raise(50, "X", 1)]),
                ],
            ),
        ),
        (
            "features-suspended",
            record(
                "suspended, events kept, resumed, terminated",
                "Waiter",
                vec![
                    (0, vec![start("Waiter", json(()))]),
                    (
                        1,
                        vec![
                            ev(1, EventKind::ExecutionSuspended { reason: Some("hold".into()) }),
                            done(1, 0, "a"),
                        ],
                    ),
                    (2, vec![ev(2, EventKind::ExecutionResumed { reason: None })]),
                    (3, vec![ev(3, EventKind::ExecutionTerminated { reason: Some("enough".into()) })]),
                ],
            ),
        ),
        (
            "features-event-ids",
            record(
                "a raised event that carries an id (a direct delivery)",
                "Waiter",
                vec![
                    (0, vec![start("Waiter", json(()))]),
                    (1, vec![done(1, 0, "a")]),
                    (
                        2,
                        vec![ev(
                            2,
                            EventKind::EventRaised {
                                name: "Go".into(),
                                input: json("b"),
                                id: Some("0123456789abcdef".into()),
                            },
                        )],
                    ),
                ],
            ),
        ),
        ("features-rewound", rewound()),
        (
            "features-continue-as-new",
            record(
                "continue-as-new with a carried event",
                "Counter",
                vec![(
                    0,
                    vec![start("Counter", json(0)), raise(0, "Tick", "t"), raise(0, "Tick", "carried")],
                )],
            ),
        ),
    ];
    std::fs::create_dir_all(dir()).unwrap();
    for (name, recorded) in entries {
        let path = dir().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&recorded).unwrap() + "\n").unwrap();
    }
}
