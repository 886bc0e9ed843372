//! Rewind of a failed instance.

use super::*;
use crate::{Error, NewActivity, NewTimer, RewindCommit};
use durable_core::{FailureDetails, ParentInstance};

/// Ends `instance_id` Failed through a turn that consumes its messages.
async fn fail<S: Store>(store: &S, instance_id: &str) -> Vec<HistoryEvent> {
    run_turn(store, instance_id, |c| {
        c.status = RuntimeStatus::Failed;
        c.failure = Some(FailureDetails::new("Error", "it broke"));
        c.history.push(HistoryEvent::new(
            c.now,
            EventKind::ExecutionCompleted { status: RuntimeStatus::Failed, result: None, failure: None },
        ));
    })
    .await;
    store.read_history(instance_id).await.unwrap()
}

fn rewind_of(instance_id: &str, history: &[HistoryEvent], keep: usize) -> RewindCommit {
    RewindCommit {
        instance_id: instance_id.into(),
        execution_id: "e1".into(),
        expected_history_len: history.len() as u64,
        history: history[..keep].to_vec(),
        messages: vec![HistoryEvent::new(
            now(),
            EventKind::ExecutionRewound { reason: Some("fixed".into()) },
        )],
        activities: Vec::new(),
        timers: Vec::new(),
        new_instances: Vec::new(),
        now: now(),
    }
}

/// A rewind replaces the history, makes the instance Running again with no output, failure or
/// completion time, and queues its messages, activities (not twice: one still leased by a worker
/// is kept and its completion counts), timers and sub-orchestrations (a taken id makes the
/// instance receive `SubOrchestrationFailed`), all at once.
pub async fn rewind_replaces_history_and_queues_the_work<S: Store>(store: S) {
    start(&store, "held").await;
    start(&store, "rw").await;
    store.send_message("rw", raised("go", "1")).await.unwrap();
    let activity = |task_id, name: &str| NewActivity { task_id, name: name.into(), input: Some(json("1")) };
    run_turn(&store, "rw", |c| c.activities.extend([activity(0, "A"), activity(1, "B")])).await;
    let running = store.fetch_activity_work(10, LONG).await.unwrap();
    assert_eq!(running.len(), 2);
    let (a, b) = (&running[0], &running[1]);
    store
        .complete_activity(&a.lease, ActivityOutcome::Failed(FailureDetails::new("ActivityError", "no")))
        .await
        .unwrap();
    let history = fail(&store, "rw").await;
    assert_eq!(store.get_instance("rw").await.unwrap().unwrap().status, RuntimeStatus::Failed);
    let before = store.count_instances().await.unwrap();
    assert_eq!(before.get(RuntimeStatus::Failed), 1);
    store.set_stall("rw", Some("no node has 'Orch'")).await.unwrap();

    let keep = 4; // the first two turns: start, then "go" (which scheduled the two activities)
    let mut rewind = rewind_of("rw", &history, keep);
    rewind.messages.push(raised("again", "2"));
    rewind.activities = vec![activity(0, "A"), activity(1, "B")];
    let timer = NewTimer { timer_id: 2, fire_at: now() };
    rewind.timers.push(timer.clone());
    let child = |id: &str, task_id| CreateInstance {
        parent: Some(ParentInstance { instance_id: "rw".into(), execution_id: "e1".into(), task_id }),
        ..create_request(id, "Child")
    };
    let (kid, taken) = (child("rw:kid", 3), child("held", 4));
    rewind.new_instances = vec![kid.clone(), taken.clone()];
    store.rewind_instance(rewind.clone()).await.unwrap();

    let st = store.get_instance("rw").await.unwrap().unwrap();
    assert_eq!((st.status, st.history_len), (RuntimeStatus::Running, keep as u64));
    assert_eq!((st.output, st.failure, st.completed_at), (None, None, None));
    assert_eq!(st.stall, None, "a rewind is progress: it clears the stall");
    let counts = store.count_instances().await.unwrap();
    assert_eq!(
        (counts.get(RuntimeStatus::Failed), counts.get(RuntimeStatus::Running)),
        (0, before.get(RuntimeStatus::Running) + 1),
        "the counts follow the rewind"
    );
    assert_eq!(store.read_history("rw").await.unwrap(), rewind.history);

    let item = fetch_for(&store, "rw", LONG).await;
    let mut expected: Vec<EventKind> = rewind.messages.iter().map(|e| e.kind.clone()).collect();
    expected.push(timer.fired_event().kind);
    expected.push(taken.collision_message(now()).unwrap().event.kind);
    let got = kinds(&item);
    assert_eq!(&got[..2], &expected[..2], "the rewind's messages first, in order");
    for kind in &expected[2..] {
        assert!(got.contains(kind), "{kind:?} missing from {got:?}");
    }
    assert_eq!(item.messages[0].execution_id.as_deref().unwrap_or("e1"), "e1");
    store.abandon_orchestration_work(&item.lease, Duration::ZERO).await.unwrap();

    let again = store.fetch_activity_work(10, LONG).await.unwrap();
    assert_eq!(
        again.iter().map(|a| a.task_id).collect::<Vec<_>>(),
        [0],
        "B is still leased: not added twice"
    );
    store.complete_activity(&b.lease, ActivityOutcome::Completed(Some(json("2")))).await.unwrap();
    let item = fetch_for(&store, "rw", LONG).await;
    assert!(
        kinds(&item).contains(&EventKind::TaskCompleted { task_id: 1, result: Some(json("2")) }),
        "the leased activity's result reaches the rewound execution"
    );

    let child_state = store.get_instance("rw:kid").await.unwrap().expect("child started again");
    assert_eq!(
        (child_state.status, child_state.parent_instance_id.as_deref()),
        (RuntimeStatus::Pending, Some("rw"))
    );
    assert_eq!(store.get_instance("held").await.unwrap().unwrap().name, "Orch", "the holder is untouched");
}

/// A rewind of a missing instance is `NotFound`; of one that is not Failed, or whose execution
/// or history changed since the plan was made, a `Conflict` that writes nothing.
pub async fn rewind_refuses_unfailed_missing_and_changed_instances<S: Store>(store: S) {
    assert!(matches!(store.rewind_instance(rewind_of("nope", &[], 0)).await, Err(Error::NotFound { .. })));

    start(&store, "run").await;
    let history = store.read_history("run").await.unwrap();
    assert!(matches!(store.rewind_instance(rewind_of("run", &history, 1)).await, Err(Error::Conflict(_))));

    start(&store, "ok").await;
    terminate(&store, "ok", RuntimeStatus::Completed).await;
    let history = store.read_history("ok").await.unwrap();
    assert!(matches!(store.rewind_instance(rewind_of("ok", &history, 1)).await, Err(Error::Conflict(_))));

    start(&store, "bad").await;
    store.send_message("bad", raised("x", "1")).await.unwrap();
    let history = fail(&store, "bad").await;
    let mut stale = rewind_of("bad", &history, 2);
    stale.expected_history_len -= 1;
    assert!(matches!(store.rewind_instance(stale).await, Err(Error::Conflict(_))));
    let mut other = rewind_of("bad", &history, 2);
    other.execution_id = "e9".into();
    other.activities.push(NewActivity { task_id: 0, name: "A".into(), input: None });
    assert!(matches!(store.rewind_instance(other).await, Err(Error::Conflict(_))));
    let st = store.get_instance("bad").await.unwrap().unwrap();
    assert_eq!((st.status, st.history_len), (RuntimeStatus::Failed, history.len() as u64), "nothing written");
    assert!(store.fetch_activity_work(10, LONG).await.unwrap().is_empty());
    assert!(fetch_all(&store, LONG).await.is_empty());
}
