//! Replay tests: drive orchestrators turn by turn, then rebuild them from the recorded history
//! and check that the cached and the replayed execution agree, and that code/history mismatches
//! are reported as nondeterminism.

use durable_core::*;
use std::collections::HashMap;
use std::time::Duration;

const SEND: &str = "E4_SendSmsChallenge";
const ANSWER: &str = "SmsChallengeResponse";

async fn verify(ctx: OrchestrationContext, phone: String) -> Result<bool, Error> {
    if phone.is_empty() {
        return Err(Error::permanent("a phone number is required"));
    }
    let code: u32 = ctx.call_activity(SEND, &phone).await?;
    let timeout = ctx.sleep(Duration::from_secs(90));
    let mut authorized = false;
    for _ in 0..4 {
        match ctx.select(ctx.wait_for_external_event::<u32>(ANSWER), &timeout).await {
            Either::Left(answer) => {
                if answer? == code {
                    authorized = true;
                    break;
                }
            }
            Either::Right(()) => break,
        }
    }
    timeout.cancel();
    Ok(authorized)
}

struct Registry(HashMap<String, OrchestratorFn>);

impl Registry {
    fn new() -> Self {
        let mut r = Registry(HashMap::new());
        r.add("verify", orchestrator_fn("verify", verify));
        r
    }

    fn add(&mut self, name: &str, f: OrchestratorFn) {
        self.0.insert(name.to_owned(), f);
    }

    fn resolver(&self) -> impl OrchestratorResolver + '_ {
        move |name: &str| self.0.get(name).cloned()
    }
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

/// The turn time `drive` uses for second `secs`: its clock has nanoseconds, the engine keeps
/// microseconds.
fn turn_time(secs: i64) -> Timestamp {
    t(secs).checked_add(Duration::from_micros(123_456)).unwrap()
}

fn ev(secs: i64, kind: EventKind) -> HistoryEvent {
    HistoryEvent::new(t(secs), kind)
}

fn started(name: &str, input: impl serde::Serialize) -> HistoryEvent {
    ev(
        0,
        EventKind::ExecutionStarted {
            name: name.into(),
            input: Some(Payload::from_value(&input).unwrap()),
            parent: None,
            trace: None,
        },
    )
}

fn completed(secs: i64, task_id: u32, value: impl serde::Serialize) -> HistoryEvent {
    ev(secs, EventKind::TaskCompleted { task_id, result: Some(Payload::from_value(&value).unwrap()) })
}

fn failed(secs: i64, task_id: u32, message: &str) -> HistoryEvent {
    ev(secs, EventKind::TaskFailed { task_id, failure: FailureDetails::new("ActivityError", message) })
}

fn raised(secs: i64, name: &str, value: impl serde::Serialize) -> HistoryEvent {
    ev(
        secs,
        EventKind::EventRaised {
            name: name.into(),
            input: Some(Payload::from_value(&value).unwrap()),
            id: None,
        },
    )
}

fn fired(secs: i64, timer_id: u32) -> HistoryEvent {
    ev(secs, EventKind::TimerFired { timer_id, fire_at: t(secs) })
}

/// Runs `turns` live on one execution, and also rebuilds the execution from history before every
/// turn; both must produce identical results. Returns the live results and the full history.
fn drive(reg: &Registry, turns: Vec<(i64, Vec<HistoryEvent>)>) -> (Vec<TurnResult>, Vec<HistoryEvent>) {
    let resolver = reg.resolver();
    let mut live = Execution::new("inst", "exec");
    let mut history = Vec::new();
    let mut results = Vec::new();
    for (secs, events) in turns {
        // The rebuilt execution reads history back from storage (JSON), as a runtime would.
        let stored: Vec<HistoryEvent> =
            serde_json::from_str(&serde_json::to_string(&history).unwrap()).unwrap();
        let mut replayed = Execution::from_history("inst", "exec", &stored, &resolver);
        assert_eq!(replayed.history_len(), history.len());
        // A clock with nanoseconds: storage keeps microseconds, and the live turn must agree.
        let now = t(secs).checked_add(Duration::from_nanos(123_456_789)).unwrap();
        let a = live.run_turn(now, events.clone(), &resolver);
        let b = replayed.run_turn(now, events, &resolver);
        assert_eq!(a, b, "cached and replayed executions disagree");
        history.extend(a.history.iter().cloned());
        assert_eq!(live.history_len(), history.len());
        results.push(a);
    }
    (results, history)
}

fn output<T: serde::de::DeserializeOwned>(r: &TurnResult) -> T {
    r.output.as_ref().expect("an output").decode().unwrap()
}

#[test]
fn happy_path_records_the_durable_task_framework_turns() {
    let reg = Registry::new();
    let (r, history) = drive(
        &reg,
        vec![
            (0, vec![started("verify", "+1425")]),
            (1, vec![completed(1, 0, 2168)]),
            (5, vec![raised(5, ANSWER, 2168)]),
        ],
    );
    assert_eq!(r[0].status, RuntimeStatus::Running);
    assert_eq!(
        r[0].actions,
        vec![Action::ScheduleActivity {
            id: 0,
            name: SEND.into(),
            input: Some(Payload::from_value("+1425").unwrap())
        }]
    );
    assert_eq!(r[1].actions, vec![Action::CreateTimer { id: 1, fire_at: turn_time(91) }]);
    assert_eq!(r[2].status, RuntimeStatus::Completed);
    assert!(output::<bool>(&r[2]));
    // The cancelled timer needs no action: the store drops every timer of a finished instance.
    assert!(r[2].actions.is_empty());
    let types: Vec<_> = history.iter().map(|e| e.kind.type_name()).collect();
    assert_eq!(
        types,
        [
            "OrchestratorStarted",
            "ExecutionStarted",
            "TaskScheduled",
            "OrchestratorStarted",
            "TaskCompleted",
            "TimerCreated",
            "OrchestratorStarted",
            "EventRaised",
            "ExecutionCompleted"
        ]
    );
}

#[test]
fn an_event_raised_before_anyone_waits_is_buffered() {
    let reg = Registry::new();
    let (r, _) = drive(
        &reg,
        vec![(0, vec![started("verify", "+1"), raised(0, ANSWER, 7)]), (1, vec![completed(1, 0, 7)])],
    );
    assert_eq!(r[1].status, RuntimeStatus::Completed);
    assert!(output::<bool>(&r[1]));
}

#[test]
fn buffered_events_are_delivered_first_in_first_out() {
    let reg = Registry::new();
    // Three wrong answers and then the right one, all raised before the code is known.
    let early = vec![
        raised(0, ANSWER, 1),
        raised(0, ANSWER, 2),
        raised(0, "smschallengeresponse", 3),
        raised(0, ANSWER, 42),
    ];
    let mut first = vec![started("verify", "+1")];
    first.extend(early);
    let (r, _) = drive(&reg, vec![(0, first), (1, vec![completed(1, 0, 42)])]);
    assert!(output::<bool>(&r[1]), "the fourth answer is the right one and names are case-insensitive");
}

#[test]
fn four_wrong_answers_give_false() {
    let reg = Registry::new();
    let answers = (1..=4).map(|i| (1 + i, vec![raised(1 + i, ANSWER, 100 + i)])).collect::<Vec<_>>();
    let mut turns = vec![(0, vec![started("verify", "+1")]), (1, vec![completed(1, 0, 7)])];
    turns.extend(answers);
    let (r, _) = drive(&reg, turns);
    assert_eq!(r.last().unwrap().status, RuntimeStatus::Completed);
    assert!(!output::<bool>(r.last().unwrap()));
}

#[test]
fn the_timer_winning_gives_false() {
    let reg = Registry::new();
    let (r, _) = drive(
        &reg,
        vec![(0, vec![started("verify", "+1")]), (1, vec![completed(1, 0, 7)]), (91, vec![fired(91, 1)])],
    );
    assert!(!output::<bool>(&r[2]));
}

#[test]
fn an_event_and_the_timer_in_the_same_turn_resolve_deterministically() {
    let reg = Registry::new();
    // The event is polled first in `select(event, &timer)`, so it wins the tie.
    let (r, _) = drive(
        &reg,
        vec![
            (0, vec![started("verify", "+1")]),
            (1, vec![completed(1, 0, 7)]),
            (95, vec![fired(91, 1), raised(90, ANSWER, 7)]),
        ],
    );
    assert!(output::<bool>(&r[2]));
}

#[test]
fn a_timer_cancelled_in_a_later_turn_is_deleted_from_the_store() {
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<u32, Error> {
        let timer = ctx.sleep(Duration::from_secs(60));
        let n: u32 = ctx.call_activity("A", &()).await?;
        timer.cancel();
        let m: u32 = ctx.call_activity("A", &()).await?;
        Ok(n + m)
    }
    let mut reg = Registry::new();
    reg.add("o", orchestrator_fn("o", orch));
    let (r, _) = drive(
        &reg,
        vec![(0, vec![started("o", ())]), (1, vec![completed(1, 1, 2)]), (2, vec![completed(2, 2, 3)])],
    );
    assert_eq!(
        r[1].actions,
        vec![
            Action::CancelTimer { id: 0 },
            Action::ScheduleActivity { id: 2, name: "A".into(), input: Some(Payload::null()) }
        ]
    );
    assert_eq!(output::<u32>(&r[2]), 5);
}

#[test]
fn a_timer_created_and_cancelled_in_one_turn_never_reaches_the_store() {
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
        let timer = ctx.sleep(Duration::from_secs(60));
        timer.cancel();
        ctx.call_activity::<(), _>("A", &()).await
    }
    let mut reg = Registry::new();
    reg.add("o", orchestrator_fn("o", orch));
    let (r, history) = drive(&reg, vec![(0, vec![started("o", ())])]);
    assert_eq!(r[0].actions.len(), 1);
    assert!(matches!(r[0].actions[0], Action::ScheduleActivity { id: 1, .. }));
    assert!(history.iter().any(|e| matches!(e.kind, EventKind::TimerCreated { id: 0, .. })));
}

#[test]
fn replaying_different_code_is_reported_as_nondeterminism() {
    let reg = Registry::new();
    let (_, history) = drive(&reg, vec![(0, vec![started("verify", "+1")])]);
    // Same name, different code: it schedules another activity first.
    async fn changed(ctx: OrchestrationContext, _: String) -> Result<bool, Error> {
        ctx.call_activity::<u32, _>("SomethingElse", &()).await?;
        Ok(true)
    }
    let mut other = Registry(HashMap::new());
    other.add("verify", orchestrator_fn("verify", changed));
    let resolver = other.resolver();
    let mut exec = Execution::from_history("inst", "exec", &history, &resolver);
    let r = exec.run_turn(t(1), vec![completed(1, 0, 7)], &resolver);
    assert_eq!(r.status, RuntimeStatus::Failed);
    let f = r.failure.unwrap();
    assert_eq!(f.error_type, "Nondeterminism");
    assert_eq!(
        f.message,
        "[DT0001] nondeterminism: expected ScheduleActivity(\"E4_SendSmsChallenge\") at position 0, got ScheduleActivity(\"SomethingElse\")"
    );
    assert!(r.actions.is_empty());
}

#[test]
fn replaying_code_that_skips_a_recorded_action_is_nondeterminism() {
    let reg = Registry::new();
    let (_, history) = drive(&reg, vec![(0, vec![started("verify", "+1")])]);
    async fn lazy(ctx: OrchestrationContext, _: String) -> Result<bool, Error> {
        ctx.wait_for_external_event::<u32>("X").await?;
        Ok(true)
    }
    let mut other = Registry(HashMap::new());
    other.add("verify", orchestrator_fn("verify", lazy));
    let resolver = other.resolver();
    let mut exec = Execution::from_history("inst", "exec", &history, &resolver);
    let r = exec.run_turn(t(1), vec![], &resolver);
    assert_eq!(r.status, RuntimeStatus::Failed);
    assert!(r.failure.unwrap().message.contains(
        "has ScheduleActivity(\"E4_SendSmsChallenge\") at position 0, but the code did not issue it"
    ));
}

#[test]
fn replaying_code_that_adds_an_action_is_nondeterminism() {
    let reg = Registry::new();
    let (_, history) = drive(&reg, vec![(0, vec![started("verify", "+1")]), (1, vec![completed(1, 0, 7)])]);
    async fn extra(ctx: OrchestrationContext, phone: String) -> Result<bool, Error> {
        let _: u32 = ctx.call_activity(SEND, &phone).await?;
        let _: u32 = ctx.call_activity("Audit", &()).await?;
        Ok(true)
    }
    let mut other = Registry(HashMap::new());
    other.add("verify", orchestrator_fn("verify", extra));
    let resolver = other.resolver();
    let mut exec = Execution::from_history("inst", "exec", &history, &resolver);
    let r = exec.run_turn(t(2), vec![], &resolver);
    let message = r.failure.unwrap().message;
    assert!(
        message.contains("expected CreateTimer at position 1, got ScheduleActivity(\"Audit\")"),
        "{message}"
    );
}

#[test]
fn a_panicking_orchestrator_fails_the_instance() {
    async fn boom(_ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
        panic!("kaboom")
    }
    let mut reg = Registry::new();
    reg.add("boom", orchestrator_fn("boom", boom));
    let (r, _) = drive(&reg, vec![(0, vec![started("boom", ())])]);
    assert_eq!(r[0].status, RuntimeStatus::Failed);
    assert_eq!(r[0].failure.as_ref().unwrap().message, "[DT0005] the orchestrator panicked: kaboom");
}

#[test]
fn an_unknown_orchestrator_fails_the_instance() {
    let reg = Registry::new();
    let (r, _) = drive(&reg, vec![(0, vec![started("nope", ())])]);
    assert_eq!(r[0].status, RuntimeStatus::Failed);
    assert!(r[0].failure.as_ref().unwrap().message.starts_with("[DT0002] no orchestrator named 'nope'"));
}

#[test]
fn an_undecodable_input_fails_the_instance() {
    let reg = Registry::new();
    let (r, _) = drive(&reg, vec![(0, vec![started("verify", 12)])]);
    assert_eq!(r[0].status, RuntimeStatus::Failed);
    let m = &r[0].failure.as_ref().unwrap().message;
    assert!(
        m.starts_with(
            "[DT0004] the input of orchestrator 'verify' cannot be decoded as alloc::string::String"
        ),
        "{m}"
    );
}

#[test]
fn an_orchestrator_error_fails_the_instance_with_its_message() {
    let reg = Registry::new();
    let (r, history) = drive(&reg, vec![(0, vec![started("verify", "")])]);
    assert_eq!(r[0].status, RuntimeStatus::Failed);
    assert_eq!(r[0].failure.as_ref().unwrap().message, "a phone number is required");
    assert!(matches!(
        history.last().unwrap().kind,
        EventKind::ExecutionCompleted { status: RuntimeStatus::Failed, .. }
    ));
}

#[test]
fn an_activity_failure_surfaces_as_a_typed_error() {
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
        match ctx.call_activity::<u32, _>("A", &()).await {
            Err(Error::Failed(f)) => Ok(format!("{}: {}", f.error_type, f.message)),
            other => Ok(format!("unexpected {other:?}")),
        }
    }
    let mut reg = Registry::new();
    reg.add("o", orchestrator_fn("o", orch));
    let (r, _) = drive(&reg, vec![(0, vec![started("o", ())]), (1, vec![failed(1, 0, "twilio said no")])]);
    assert_eq!(output::<String>(&r[1]), "ActivityError: twilio said no");
}

#[test]
fn awaiting_a_non_durable_future_is_reported() {
    async fn stuck(_ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
        std::future::pending::<()>().await;
        Ok(())
    }
    let mut reg = Registry::new();
    reg.add("stuck", orchestrator_fn("stuck", stuck));
    let (r, _) = drive(&reg, vec![(0, vec![started("stuck", ())])]);
    assert_eq!(r[0].status, RuntimeStatus::Failed);
    assert!(r[0].failure.as_ref().unwrap().message.starts_with("[DT0006]"));
}

#[test]
fn retries_wait_on_durable_timers() {
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<u32, Error> {
        let policy = RetryPolicy::new(3, Duration::from_secs(5)).with_backoff_coefficient(2.0);
        ctx.call_activity_with_retry("Flaky", &(), policy).await
    }
    let mut reg = Registry::new();
    reg.add("o", orchestrator_fn("o", orch));
    let (r, _) = drive(
        &reg,
        vec![
            (0, vec![started("o", ())]),
            (1, vec![failed(1, 0, "503")]),
            (6, vec![fired(6, 1)]),
            (7, vec![failed(7, 2, "503")]),
            (17, vec![fired(17, 3)]),
            (18, vec![completed(18, 4, 9)]),
        ],
    );
    assert_eq!(r[1].actions, vec![Action::CreateTimer { id: 1, fire_at: turn_time(6) }]);
    assert!(matches!(&r[2].actions[..], [Action::ScheduleActivity { id: 2, .. }]));
    assert_eq!(r[3].actions, vec![Action::CreateTimer { id: 3, fire_at: turn_time(17) }]);
    assert_eq!(output::<u32>(&r[5]), 9);
}

#[test]
fn retries_give_up_after_max_attempts_and_skip_non_retriable_failures() {
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<u32, Error> {
        ctx.call_activity_with_retry("Flaky", &(), RetryPolicy::new(2, Duration::from_secs(1))).await
    }
    let mut reg = Registry::new();
    reg.add("o", orchestrator_fn("o", orch));
    let (r, _) = drive(
        &reg,
        vec![
            (0, vec![started("o", ())]),
            (1, vec![failed(1, 0, "a")]),
            (2, vec![fired(2, 1)]),
            (3, vec![failed(3, 2, "b")]),
        ],
    );
    assert_eq!(r[3].status, RuntimeStatus::Failed);
    assert_eq!(r[3].failure.as_ref().unwrap().message, "b");

    let permanent = ev(
        1,
        EventKind::TaskFailed { task_id: 0, failure: FailureDetails::new("E", "21211").non_retriable() },
    );
    let (r, _) = drive(&reg, vec![(0, vec![started("o", ())]), (1, vec![permanent])]);
    assert_eq!(r[1].status, RuntimeStatus::Failed);
}

#[test]
fn continue_as_new_restarts_with_a_new_input_and_can_carry_events() {
    async fn counter(ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
        if n >= 3 {
            return Ok(n);
        }
        let _: u32 = ctx.call_activity("Tick", &n).await?;
        ctx.continue_as_new_with_options(&(n + 1), ContinueAsNewOptions { preserve_unprocessed_events: true })
            .await
    }
    let mut reg = Registry::new();
    reg.add("c", orchestrator_fn("c", counter));
    let (r, history) = drive(
        &reg,
        vec![(0, vec![started("c", 1), raised(0, "Other", "keep me")]), (1, vec![completed(1, 0, 0)])],
    );
    assert_eq!(r[1].status, RuntimeStatus::ContinuedAsNew);
    let next = r[1].continue_as_new.as_ref().unwrap();
    assert_eq!(next.input, Some(Payload::from_value(&2).unwrap()));
    assert_eq!(
        next.start.kind,
        EventKind::ExecutionStarted {
            name: "c".into(),
            input: next.input.clone(),
            parent: None,
            trace: None
        }
    );
    assert_eq!(next.carried_events.len(), 1);
    assert!(matches!(&next.carried_events[0].kind, EventKind::EventRaised { name, .. } if name == "Other"));
    assert!(matches!(
        history.last().unwrap().kind,
        EventKind::ExecutionCompleted { status: RuntimeStatus::ContinuedAsNew, .. }
    ));
}

#[test]
fn suspended_instances_defer_events_until_resumed() {
    let reg = Registry::new();
    let suspend = ev(2, EventKind::ExecutionSuspended { reason: Some("maintenance".into()) });
    let resume = ev(4, EventKind::ExecutionResumed { reason: None });
    let (r, _) = drive(
        &reg,
        vec![
            (0, vec![started("verify", "+1")]),
            (1, vec![completed(1, 0, 7)]),
            (2, vec![suspend]),
            (3, vec![raised(3, ANSWER, 7)]),
            (4, vec![resume]),
        ],
    );
    assert_eq!(r[2].status, RuntimeStatus::Suspended);
    assert_eq!(r[3].status, RuntimeStatus::Suspended, "the event is recorded but not delivered");
    assert_eq!(r[4].status, RuntimeStatus::Completed);
    assert!(output::<bool>(&r[4]));
}

#[test]
fn termination_stops_the_code_and_terminates_open_children() {
    async fn parent(ctx: OrchestrationContext, _: ()) -> Result<u32, Error> {
        ctx.call_sub_orchestrator::<u32, _>("child", &()).await
    }
    let mut reg = Registry::new();
    reg.add("p", orchestrator_fn("p", parent));
    let terminate = ev(1, EventKind::ExecutionTerminated { reason: Some("enough".into()) });
    let (r, _) = drive(&reg, vec![(0, vec![started("p", ())]), (1, vec![terminate])]);
    assert_eq!(
        r[0].actions,
        vec![Action::StartSubOrchestration {
            id: 0,
            name: "child".into(),
            instance_id: "exec:0".into(),
            input: Some(Payload::null())
        }]
    );
    assert_eq!(r[1].status, RuntimeStatus::Terminated);
    assert_eq!(output::<String>(&r[1]), "enough");
    assert_eq!(
        r[1].actions,
        vec![Action::TerminateChild { instance_id: "exec:0".into(), reason: Some("enough".into()) }]
    );
}

#[test]
fn a_sub_orchestration_reports_to_its_parent() {
    async fn child(_ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
        Ok(n * 2)
    }
    let mut reg = Registry::new();
    reg.add("child", orchestrator_fn("child", child));
    let parent = ParentInstance { instance_id: "p".into(), execution_id: "pe".into(), task_id: 4 };
    let start = ev(
        0,
        EventKind::ExecutionStarted {
            name: "child".into(),
            input: Some(Payload::from_value(&21).unwrap()),
            parent: Some(parent.clone()),
            trace: None,
        },
    );
    let (r, _) = drive(&reg, vec![(0, vec![start])]);
    assert_eq!(
        r[0].notify_parent,
        Some((
            parent,
            EventKind::SubOrchestrationCompleted {
                task_id: 4,
                result: Some(Payload::from_value(&42).unwrap())
            }
        ))
    );
}

#[test]
fn duplicate_and_unknown_completions_are_discarded() {
    let reg = Registry::new();
    let (r, history) = drive(
        &reg,
        vec![
            (0, vec![started("verify", "+1")]),
            (1, vec![completed(1, 0, 7), completed(1, 0, 7), completed(1, 9, 1)]),
        ],
    );
    assert_eq!(r[1].discarded.len(), 2);
    assert_eq!(history.iter().filter(|e| matches!(e.kind, EventKind::TaskCompleted { .. })).count(), 1);
    // A turn that only brings duplicates leaves no turn behind.
    let (r, history) = drive(
        &reg,
        vec![
            (0, vec![started("verify", "+1")]),
            (1, vec![completed(1, 0, 7)]),
            (2, vec![completed(2, 0, 7)]),
        ],
    );
    assert!(r[2].history.is_empty());
    assert_eq!(r[2].status, RuntimeStatus::Running);
    assert_eq!(history.len(), 6);
}

#[test]
fn guids_time_and_replay_flags_are_stable_under_replay() {
    static SEEN: std::sync::Mutex<Vec<bool>> = std::sync::Mutex::new(Vec::new());
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<Vec<String>, Error> {
        let a = ctx.new_guid();
        let t0 = ctx.current_utc_datetime();
        SEEN.lock().unwrap().push(ctx.is_replaying());
        let _: () = ctx.call_activity("A", &()).await?;
        SEEN.lock().unwrap().push(ctx.is_replaying());
        let b = ctx.new_guid();
        let t1 = ctx.current_utc_datetime();
        Ok(vec![a.to_string(), b.to_string(), t0.to_string(), t1.to_string()])
    }
    let mut reg = Registry::new();
    reg.add("o", orchestrator_fn("o", orch));
    // `drive` checks the replayed execution returns exactly the same output as the live one.
    let (r, _) = drive(&reg, vec![(0, vec![started("o", ())]), (30, vec![completed(30, 0, ())])]);
    let out: Vec<String> = output(&r[1]);
    assert_ne!(out[0], out[1]);
    assert_eq!(out[2], turn_time(0).to_string());
    assert_eq!(out[3], turn_time(30).to_string());
    // Turn 1 runs live twice (cached and fresh). Turn 2: the rebuild replays turn 1 (true), then
    // the cached and the rebuilt execution each resume live (false).
    assert_eq!(*SEEN.lock().unwrap(), vec![false, false, true, false, false]);
}

#[test]
fn wait_with_timeout_returns_the_event_or_a_timeout_error() {
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
        match ctx.wait_for_external_event_with_timeout::<String>("Go", Duration::from_secs(10)).await {
            Ok(v) => Ok(v),
            Err(Error::Timeout { event }) => Ok(format!("timeout:{event}")),
            Err(e) => Err(e),
        }
    }
    let mut reg = Registry::new();
    reg.add("o", orchestrator_fn("o", orch));
    let (r, _) = drive(&reg, vec![(0, vec![started("o", ())]), (3, vec![raised(3, "Go", "yes")])]);
    assert_eq!(output::<String>(&r[1]), "yes");
    let (r, _) = drive(&reg, vec![(0, vec![started("o", ())]), (10, vec![fired(10, 0)])]);
    assert_eq!(output::<String>(&r[1]), "timeout:Go");
}

#[test]
fn join_all_and_select_all_are_deterministic() {
    async fn fan(ctx: OrchestrationContext, _: ()) -> Result<(usize, Vec<u32>), Error> {
        let calls: Vec<_> = (0..3).map(|i| ctx.call_activity::<u32, _>("A", &i)).collect();
        let all: Result<Vec<u32>, Error> = ctx.join_all(calls).await.into_iter().collect();
        let races: Vec<_> = (0..3).map(|i| ctx.call_activity::<u32, _>("B", &i)).collect();
        let (winner, _) = ctx.select_all(races).await;
        Ok((winner, all?))
    }
    let mut reg = Registry::new();
    reg.add("f", orchestrator_fn("f", fan));
    let (r, _) = drive(
        &reg,
        vec![
            (0, vec![started("f", ())]),
            (1, vec![completed(1, 2, 12), completed(1, 0, 10)]),
            (2, vec![completed(2, 1, 11)]),
            (3, vec![completed(3, 5, 0), completed(3, 4, 0)]),
        ],
    );
    assert_eq!(r[0].actions.len(), 3);
    assert_eq!(r[2].actions.len(), 3);
    assert_eq!(output::<(usize, Vec<u32>)>(&r[3]), (1, vec![10, 11, 12]));
}

#[test]
fn custom_status_is_reported_each_turn() {
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
        ctx.set_custom_status(&serde_json::json!({"step": 1}))?;
        ctx.call_activity::<(), _>("A", &()).await?;
        ctx.set_custom_status("done")?;
        Ok(())
    }
    let mut reg = Registry::new();
    reg.add("o", orchestrator_fn("o", orch));
    let (r, _) = drive(&reg, vec![(0, vec![started("o", ())]), (1, vec![completed(1, 0, ())])]);
    assert_eq!(r[0].custom_status.as_ref().unwrap().as_str(), "{\"step\":1}");
    assert_eq!(r[1].custom_status.as_ref().unwrap().as_str(), "\"done\"");
}

#[test]
fn send_event_is_recorded_and_replayed() {
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
        ctx.send_event("other", "Ping", &1)?;
        ctx.call_activity::<(), _>("A", &()).await
    }
    let mut reg = Registry::new();
    reg.add("o", orchestrator_fn("o", orch));
    let (r, _) = drive(&reg, vec![(0, vec![started("o", ())]), (1, vec![completed(1, 1, ())])]);
    assert!(
        matches!(&r[0].actions[0], Action::SendEvent { id: 0, instance_id, name, .. } if instance_id == "other" && name == "Ping")
    );
    assert_eq!(r[1].status, RuntimeStatus::Completed);
}

#[test]
fn history_and_payload_limits_fail_the_instance_with_coded_messages() {
    async fn looping(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
        loop {
            ctx.call_activity::<(), _>("A", &()).await?;
        }
    }
    async fn big(ctx: OrchestrationContext, n: usize) -> Result<(), Error> {
        ctx.call_activity::<(), _>("A", &"x".repeat(n)).await
    }
    let mut reg = Registry::new();
    reg.add("loop", orchestrator_fn("loop", looping));
    reg.add("big", orchestrator_fn("big", big));
    let resolver = reg.resolver();
    let limits = Limits { max_history_events: 12, max_payload_bytes: 2048 };

    let mut exec = Execution::new("i", "e").with_limits(limits);
    let mut r = exec.run_turn(t(0), vec![started("loop", ())], &resolver);
    let mut turn = 0;
    while r.status == RuntimeStatus::Running {
        turn += 1;
        r = exec.run_turn(t(turn), vec![completed(turn, turn as u32 - 1, ())], &resolver);
    }
    assert_eq!(r.status, RuntimeStatus::Failed);
    assert!(r.failure.unwrap().message.starts_with("[DT0009]"));
    assert!(exec.history_len() <= 12 + 3);

    let mut exec = Execution::new("i", "e").with_limits(limits);
    let r = exec.run_turn(t(0), vec![started("big", 100)], &resolver);
    assert_eq!(r.status, RuntimeStatus::Running);
    let mut exec = Execution::new("i", "e").with_limits(limits);
    let r = exec.run_turn(t(0), vec![started("big", 4096)], &resolver);
    assert_eq!(r.status, RuntimeStatus::Failed);
    let message = r.failure.unwrap().message;
    assert!(message.starts_with("[DT0008] the input of activity 'A' is 4098 bytes"), "{message}");
    assert!(r.actions.is_empty());
}

#[test]
fn an_execution_knows_which_events_it_waits_for() {
    let reg = Registry::new();
    let resolver = reg.resolver();
    let mut exec = Execution::new("inst", "exec");
    exec.run_turn(t(0), vec![started("verify", "+1")], &resolver);
    assert!(!exec.waits_for_event(ANSWER), "still waiting for the activity");
    exec.run_turn(t(1), vec![completed(1, 0, 7)], &resolver);
    assert!(exec.waits_for_event(ANSWER));
    assert!(exec.waits_for_event("smschallengeresponse"));
    assert!(!exec.waits_for_event("Other"));
    exec.run_turn(t(2), vec![raised(2, ANSWER, 7)], &resolver);
    assert!(!exec.waits_for_event(ANSWER), "finished");
}

/// A raised event carrying an id reaches the orchestrator once: a later copy (a direct delivery
/// whose commit may have landed is also queued) is dropped, in the same turn or a later one,
/// live or replayed, and while suspended. Events without an id are never merged.
#[test]
fn a_raised_event_with_a_known_id_is_recorded_once() {
    async fn two(ctx: OrchestrationContext, _: ()) -> Result<(u32, u32), Error> {
        let a: u32 = ctx.wait_for_external_event("Go").await?;
        let b: u32 = ctx.wait_for_external_event("Go").await?;
        Ok((a, b))
    }
    let mut reg = Registry::new();
    reg.add("two", orchestrator_fn("two", two));
    let with_id = |secs, value: u32, id: &str| {
        ev(
            secs,
            EventKind::EventRaised {
                name: "Go".into(),
                input: Some(Payload::from_value(&value).unwrap()),
                id: Some(id.into()),
            },
        )
    };
    let (r, history) = drive(
        &reg,
        vec![
            (0, vec![started("two", ())]),
            // The same raise twice in one turn, then again in a later turn.
            (1, vec![with_id(1, 1, "x"), with_id(1, 1, "x")]),
            (2, vec![with_id(2, 1, "x")]),
            (3, vec![with_id(3, 2, "y")]),
        ],
    );
    assert_eq!(r[1].discarded.len(), 1);
    assert_eq!(r[2].discarded.len(), 1);
    assert!(r[2].history.is_empty(), "a turn with only a duplicate leaves no turn");
    assert_eq!(output::<(u32, u32)>(&r[3]), (1, 2));
    let recorded = history.iter().filter(|e| matches!(e.kind, EventKind::EventRaised { .. })).count();
    assert_eq!(recorded, 2);

    // Without ids, two equal events are two events.
    let (r, _) =
        drive(&reg, vec![(0, vec![started("two", ())]), (1, vec![raised(1, "Go", 7), raised(1, "Go", 7)])]);
    assert_eq!(output::<(u32, u32)>(&r[1]), (7, 7));

    // While suspended, the copy is dropped on arrival too.
    let suspend = ev(1, EventKind::ExecutionSuspended { reason: None });
    let resume = ev(3, EventKind::ExecutionResumed { reason: None });
    let (r, _) = drive(
        &reg,
        vec![
            (0, vec![started("two", ())]),
            (1, vec![suspend, with_id(1, 1, "x")]),
            (2, vec![with_id(2, 1, "x")]),
            (3, vec![resume, with_id(3, 2, "y")]),
        ],
    );
    assert_eq!(r[2].discarded.len(), 1);
    assert_eq!(output::<(u32, u32)>(&r[3]), (1, 2));
}

/// Issue 9, defect 1, in the engine: an execution rebuilt on a node that lacks its
/// orchestrator must not swallow the turn's messages (it used to end up "finished", drop the
/// timer and commit the instance as Running forever). Its next turn fails the instance with
/// `[DT0002]`, which is what `unknown_functions = "fail"` asks for; the runtime's default never
/// runs such a turn at all.
#[test]
fn a_replay_without_the_orchestrator_fails_the_next_turn_instead_of_dropping_it() {
    let (_, history) =
        drive(&Registry::new(), vec![(0, vec![started("verify", "+1")]), (1, vec![completed(1, 0, 42)])]);
    let empty = Registry(HashMap::new());
    let mut exec = Execution::from_history("inst", "exec", &history, &empty.resolver());
    assert!(!exec.is_finished());
    let r = exec.run_turn(t(90), vec![fired(90, 1)], &empty.resolver());
    assert_eq!(r.status, RuntimeStatus::Failed);
    assert!(r.failure.as_ref().unwrap().message.contains("DT0002"), "{:?}", r.failure);
    assert!(matches!(
        r.history.last().map(|e| &e.kind),
        Some(EventKind::ExecutionCompleted { status: RuntimeStatus::Failed, .. })
    ));
}
