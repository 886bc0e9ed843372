//! Rewind plans: what a failed execution keeps, queues again and runs again, and that the
//! rewound execution then runs on from there (the plan is replayed the way a runtime would).

use durable_core::*;
use std::collections::HashMap;
use std::time::Duration;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn ev(secs: i64, kind: EventKind) -> HistoryEvent {
    HistoryEvent::new(t(secs), kind)
}

fn started(name: &str) -> HistoryEvent {
    ev(0, EventKind::ExecutionStarted { name: name.into(), input: None, parent: None, trace: None })
}

fn completed(secs: i64, task_id: u32, value: impl serde::Serialize) -> HistoryEvent {
    ev(secs, EventKind::TaskCompleted { task_id, result: Some(Payload::from_value(&value).unwrap()) })
}

fn failed(secs: i64, task_id: u32) -> HistoryEvent {
    ev(secs, EventKind::TaskFailed { task_id, failure: FailureDetails::new("ActivityError", "no") })
}

fn raised(secs: i64, name: &str) -> HistoryEvent {
    ev(
        secs,
        EventKind::EventRaised { name: name.into(), input: Some(Payload::from_value(&1).unwrap()), id: None },
    )
}

fn fired(secs: i64, timer_id: u32, fire_at: Timestamp) -> HistoryEvent {
    ev(secs, EventKind::TimerFired { timer_id, fire_at })
}

struct Code(HashMap<String, OrchestratorFn>);

impl Code {
    fn of(name: &'static str, f: OrchestratorFn) -> Code {
        Code(HashMap::from([(name.to_owned(), f)]))
    }
    fn resolver(&self) -> impl OrchestratorResolver + '_ {
        move |name: &str| self.0.get(name).cloned()
    }
}

/// Runs `turns` on a fresh execution of `code`, returning the recorded history and the last
/// result.
fn run(code: &Code, turns: Vec<(i64, Vec<HistoryEvent>)>) -> (Vec<HistoryEvent>, TurnResult) {
    continue_from(code, Vec::new(), turns)
}

/// Rebuilds the execution from `history` (as a runtime does after a rewind) and runs `turns`.
fn continue_from(
    code: &Code,
    mut history: Vec<HistoryEvent>,
    turns: Vec<(i64, Vec<HistoryEvent>)>,
) -> (Vec<HistoryEvent>, TurnResult) {
    let mut exec = Execution::from_history("i", "e", &history, &code.resolver());
    let mut last = None;
    for (secs, events) in turns {
        let r = exec.run_turn(t(secs), events, &code.resolver());
        history.extend(r.history.iter().cloned());
        last = Some(r);
    }
    (history, last.expect("at least one turn"))
}

fn types(events: &[HistoryEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.type_name()).collect()
}

fn rewind(code: &Code, history: &[HistoryEvent]) -> Rewind {
    plan_rewind("i", "e", history, &code.resolver(), t(1000), Some("fixed".into())).unwrap()
}

#[test]
fn a_failed_activity_runs_again_and_what_succeeded_is_kept() {
    async fn two_steps(ctx: OrchestrationContext, _: ()) -> Result<u32, Error> {
        let a: u32 = ctx.call_activity("A", &()).await?;
        let b: u32 = ctx.call_activity("B", &a).await?;
        Ok(a + b)
    }
    let code = Code::of("o", orchestrator_fn("o", two_steps));
    let (history, r) =
        run(&code, vec![(0, vec![started("o")]), (1, vec![completed(1, 0, 1)]), (2, vec![failed(2, 1)])]);
    assert_eq!(r.status, RuntimeStatus::Failed);

    let plan = rewind(&code, &history);
    assert_eq!(
        types(&plan.history),
        [
            "OrchestratorStarted",
            "ExecutionStarted",
            "TaskScheduled",
            "OrchestratorStarted",
            "TaskCompleted",
            "TaskScheduled"
        ],
        "A's result is kept; the failed turn is cut"
    );
    assert_eq!(
        plan.activities,
        [RewoundTask { task_id: 1, name: "B".into(), input: Some(Payload::from_value(&1).unwrap()) }]
    );
    assert_eq!(plan.messages.len(), 1);
    assert_eq!(plan.messages[0].kind, EventKind::ExecutionRewound { reason: Some("fixed".into()) });
    assert!(plan.timers.is_empty() && plan.sub_orchestrations.is_empty());

    // The rewound execution records the rewind, then finishes when B succeeds.
    let (history, r) =
        continue_from(&code, plan.history, vec![(10, plan.messages), (11, vec![completed(11, 1, 41)])]);
    assert_eq!(r.status, RuntimeStatus::Completed);
    assert_eq!(r.output.unwrap().decode::<u32>().unwrap(), 42);
    assert!(types(&history).contains(&"ExecutionRewound"));
}

#[test]
fn only_the_last_attempt_of_a_retried_activity_runs_again() {
    async fn retried(ctx: OrchestrationContext, _: ()) -> Result<u32, Error> {
        ctx.call_activity_with_retry("Flaky", &(), RetryPolicy::new(2, Duration::from_secs(1))).await
    }
    let code = Code::of("o", orchestrator_fn("o", retried));
    // Attempt 1 (task 0) fails, the retry timer (task 1) fires, attempt 2 (task 2) fails.
    let (history, r) = run(
        &code,
        vec![
            (0, vec![started("o")]),
            (1, vec![failed(1, 0)]),
            (3, vec![fired(3, 1, t(2))]),
            (4, vec![failed(4, 2)]),
        ],
    );
    assert_eq!(r.status, RuntimeStatus::Failed);
    let plan = rewind(&code, &history);
    assert_eq!(plan.activities.iter().map(|a| a.task_id).collect::<Vec<_>>(), [2]);
    assert!(types(&plan.history).contains(&"TaskFailed"), "the first failure, followed by a retry, is kept");
    let (_, r) =
        continue_from(&code, plan.history, vec![(10, plan.messages), (11, vec![completed(11, 2, 7)])]);
    assert_eq!(r.output.unwrap().decode::<u32>().unwrap(), 7);
}

#[test]
fn a_failure_nobody_reacted_to_runs_again_and_the_failed_turns_events_come_back() {
    async fn both(ctx: OrchestrationContext, _: ()) -> Result<(u32, u32), Error> {
        let (a, b) =
            ctx.join(ctx.call_activity::<u32, _>("A", &()), ctx.call_activity::<u32, _>("B", &())).await;
        Ok((a?, b?))
    }
    let code = Code::of("o", orchestrator_fn("o", both));
    // A fails first (the join keeps waiting for B), then B's result ends it Failed.
    let (history, r) =
        run(&code, vec![(0, vec![started("o")]), (1, vec![failed(1, 0)]), (2, vec![completed(2, 1, 2)])]);
    assert_eq!(r.status, RuntimeStatus::Failed);
    let plan = rewind(&code, &history);
    assert_eq!(
        plan.activities.iter().map(|a| a.task_id).collect::<Vec<_>>(),
        [0],
        "A runs again, B does not"
    );
    assert_eq!(types(&plan.messages), ["ExecutionRewound", "TaskCompleted"], "B's result is delivered again");
    assert!(!types(&plan.history).contains(&"TaskFailed"));
    let (_, r) =
        continue_from(&code, plan.history, vec![(10, plan.messages), (11, vec![completed(11, 0, 1)])]);
    assert_eq!(r.output.unwrap().decode::<(u32, u32)>().unwrap(), (1, 2));
}

#[test]
fn a_code_failure_meets_its_events_again_and_open_timers_are_created_again() {
    async fn strict(ctx: OrchestrationContext, _: ()) -> Result<&'static str, Error> {
        let timer = ctx.sleep(Duration::from_secs(60));
        match ctx.select(ctx.wait_for_external_event::<u32>("Go"), &timer).await {
            Either::Left(_) => Err(Error::msg("bug")),
            Either::Right(()) => Ok("timed out"),
        }
    }
    let code = Code::of("o", orchestrator_fn("o", strict));
    let (history, r) = run(&code, vec![(0, vec![started("o")]), (5, vec![raised(5, "Go")])]);
    assert_eq!(r.status, RuntimeStatus::Failed);
    let plan = rewind(&code, &history);
    assert_eq!(plan.timers, [(0, t(60))], "the timer the execution waits for is created again");
    assert_eq!(types(&plan.messages), ["ExecutionRewound", "EventRaised"]);
    assert!(plan.activities.is_empty());
    // An unchanged bug fails again, with its own message.
    let (_, r) = continue_from(&code, plan.history, vec![(10, plan.messages)]);
    assert_eq!(r.failure.unwrap().message, "bug");
}

#[test]
fn a_first_turn_failure_starts_over_and_code_that_no_longer_fits_is_refused() {
    async fn needs_input(_ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
        Ok(n)
    }
    let code = Code::of("o", orchestrator_fn("o", needs_input));
    let (history, r) = run(&code, vec![(0, vec![started("o")])]);
    assert_eq!(r.status, RuntimeStatus::Failed, "no input to decode");
    let plan = rewind(&code, &history);
    assert!(plan.history.is_empty());
    assert_eq!(types(&plan.messages), ["ExecutionRewound", "ExecutionStarted"]);

    // Not failed: refused.
    async fn done(_ctx: OrchestrationContext, _: ()) -> Result<u32, Error> {
        Ok(1)
    }
    let ok = Code::of("o", orchestrator_fn("o", done));
    let (history, _) = run(&ok, vec![(0, vec![started("o")])]);
    assert!(
        plan_rewind("i", "e", &history, &ok.resolver(), t(9), None).unwrap_err().contains("only a Failed")
    );

    // Code that no longer matches the kept history: refused with the replay's message.
    async fn v1(ctx: OrchestrationContext, _: ()) -> Result<u32, Error> {
        let a: u32 = ctx.call_activity("A", &()).await?;
        ctx.call_activity("B", &a).await
    }
    async fn v2(ctx: OrchestrationContext, _: ()) -> Result<u32, Error> {
        ctx.call_activity("Renamed", &()).await
    }
    let old = Code::of("o", orchestrator_fn("o", v1));
    let (history, _) =
        run(&old, vec![(0, vec![started("o")]), (1, vec![completed(1, 0, 1)]), (2, vec![failed(2, 1)])]);
    let new = Code::of("o", orchestrator_fn("o", v2));
    let err = plan_rewind("i", "e", &history, &new.resolver(), t(9), None).unwrap_err();
    assert!(err.contains("DT0001"), "{err}");
}

#[test]
fn a_failed_sub_orchestration_is_handed_back_to_the_caller() {
    async fn parent(ctx: OrchestrationContext, _: ()) -> Result<u32, Error> {
        ctx.call_sub_orchestrator_with_id("Child", "kid", &5).await
    }
    let code = Code::of("o", orchestrator_fn("o", parent));
    let child_failed = ev(
        3,
        EventKind::SubOrchestrationFailed {
            task_id: 0,
            failure: FailureDetails::new("Error", "child broke"),
        },
    );
    let (history, r) = run(&code, vec![(0, vec![started("o")]), (3, vec![child_failed])]);
    assert_eq!(r.status, RuntimeStatus::Failed);
    let plan = rewind(&code, &history);
    assert_eq!(
        plan.sub_orchestrations,
        [RewoundChild {
            task_id: 0,
            name: "Child".into(),
            instance_id: "kid".into(),
            input: Some(Payload::from_value(&5).unwrap())
        }]
    );
}
