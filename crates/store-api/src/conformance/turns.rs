//! Orchestration dispatch: turn commits, leases, queue order, timers, continue-as-new,
//! sub-orchestrations and waiting for work.

use super::*;
use crate::{Error, NewActivity, NewExecution, NewMessage, NewTimer};
use durable_core::ParentInstance;
use std::sync::Arc;

fn history_of(n: u32) -> HistoryEvent {
    HistoryEvent::new(now(), EventKind::TaskScheduled { id: n, name: format!("T{n}"), input: None })
}

/// Every effect of a turn becomes visible with its commit; a rejected commit writes nothing
/// and keeps the lease.
pub async fn turn_commit_is_atomic<S: Store>(store: S) {
    start(&store, "t-peer").await;
    store.create_instance(create_request("t1", "Orch")).await.unwrap();
    let item = fetch_for(&store, "t1", LONG).await;
    let mut c = turn_of(&item);
    c.history.push(history_of(0));
    c.custom_status = Some(json(r#""busy""#));
    c.activities.push(NewActivity { task_id: 0, name: "Act".into(), input: Some(json("7")) });
    c.timers.push(NewTimer { timer_id: 1, fire_at: now() });
    c.new_instances.push(CreateInstance {
        parent: Some(ParentInstance { instance_id: "t1".into(), execution_id: "e1".into(), task_id: 2 }),
        ..create_request("t1:2", "Child")
    });
    c.messages.push(NewMessage {
        instance_id: "t-peer".into(),
        execution_id: None,
        event: raised("hi", "1"),
    });

    let mut stale = c.clone();
    stale.expected_history_len = 5;
    assert!(matches!(store.commit_turn(stale).await, Err(Error::Conflict(_))));
    let st = store.get_instance("t1").await.unwrap().unwrap();
    assert_eq!((st.status, st.history_len, st.custom_status), (RuntimeStatus::Pending, 0, None));
    assert!(store.read_history("t1").await.unwrap().is_empty());
    assert!(store.get_instance("t1:2").await.unwrap().is_none(), "no child from a rejected commit");
    assert!(
        store.fetch_activity_work(10, LONG).await.unwrap().is_empty(),
        "no activity from a rejected commit"
    );
    assert!(fetch_all(&store, LONG).await.is_empty(), "no message or timer from a rejected commit");

    store.commit_turn(c.clone()).await.unwrap();
    assert_eq!(store.read_history("t1").await.unwrap(), c.history);
    let st = store.get_instance("t1").await.unwrap().unwrap();
    assert_eq!(st.status, RuntimeStatus::Running);
    assert_eq!(st.history_len, c.history.len() as u64);
    assert_eq!(st.custom_status, c.custom_status);
    assert_eq!(st.last_updated_at, c.now);
    let act = poll!("the activity", store.wait_for_activity_work(POLL).await, {
        store.fetch_activity_work(10, LONG).await.unwrap().pop()
    });
    assert_eq!((act.instance_id.as_str(), act.execution_id.as_str()), ("t1", "e1"));
    assert_eq!((act.task_id, act.name.as_str(), act.attempt), (0, "Act", 1));
    assert_eq!(act.input, Some(json("7")));
    let child = store.get_instance("t1:2").await.unwrap().expect("child created");
    assert_eq!((child.status, child.parent_instance_id.as_deref()), (RuntimeStatus::Pending, Some("t1")));
    let peer = fetch_for(&store, "t-peer", LONG).await;
    assert_eq!(kinds(&peer), vec![c.messages[0].event.kind.clone()]);
    let own = fetch_for(&store, "t1", LONG).await;
    assert_eq!(kinds(&own), vec![c.timers[0].fired_event().kind], "the due timer, not the consumed start");
}

/// A commit whose history length or execution differs from the stored one fails with
/// `Conflict`, writes nothing and leaves the lease usable.
pub async fn commit_conflicts_on_history_len_or_execution<S: Store>(store: S) {
    start(&store, "k1").await;
    store.send_message("k1", raised("a", "1")).await.unwrap();
    let item = fetch_for(&store, "k1", LONG).await;
    assert_eq!(item.instance.history_len, 2);
    for (len, exec) in [(1, "e1"), (3, "e1"), (0, "e1"), (2, "e9")] {
        let mut c = turn_of(&item);
        c.expected_history_len = len;
        c.execution_id = exec.into();
        assert!(matches!(store.commit_turn(c).await, Err(Error::Conflict(_))), "len {len}, execution {exec}");
    }
    assert_eq!(store.read_history("k1").await.unwrap().len(), 2);
    store.commit_turn(turn_of(&item)).await.unwrap();
    assert_eq!(store.get_instance("k1").await.unwrap().unwrap().history_len, 4);
}

/// Histories of successive turns concatenate in order; a turn may append nothing.
pub async fn history_accumulates_across_turns<S: Store>(store: S) {
    store.create_instance(create_request("h1", "Orch")).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..5 {
        if i > 0 {
            store.send_message("h1", raised("n", &i.to_string())).await.unwrap();
        }
        let item = fetch_for(&store, "h1", LONG).await;
        assert_eq!(item.instance.history_len, expected.len() as u64);
        let mut c = turn_of(&item);
        c.history.push(history_of(i));
        expected.extend(c.history.clone());
        store.commit_turn(c).await.unwrap();
    }
    store.send_message("h1", raised("dup", "0")).await.unwrap();
    let item = fetch_for(&store, "h1", LONG).await;
    let mut c = turn_of(&item);
    c.history.clear();
    store.commit_turn(c).await.unwrap();
    assert_eq!(store.read_history("h1").await.unwrap(), expected);
    assert_eq!(store.get_instance("h1").await.unwrap().unwrap().history_len, expected.len() as u64);
}

/// Concurrent fetchers never get the same instance; a leased instance is not handed out again
/// even when new messages arrive for it.
pub async fn one_lease_at_a_time<S: Store>(store: S) {
    const N: usize = 40;
    for i in 0..N {
        store.create_instance(create_request(&format!("ol-{i:02}"), "Orch")).await.unwrap();
    }
    let store = Arc::new(store);
    let got = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (store, got) = (store.clone(), got.clone());
        tasks.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + DEADLINE;
            while got.lock().len() < N && tokio::time::Instant::now() < deadline {
                let items = store.fetch_orchestration_work(3, LONG).await.unwrap();
                if items.is_empty() {
                    store.wait_for_orchestration_work(Duration::from_millis(20)).await;
                }
                got.lock().extend(items.into_iter().map(|i| i.lease.instance_id));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut ids = got.lock().clone();
    ids.sort();
    let expected: Vec<String> = (0..N).map(|i| format!("ol-{i:02}")).collect();
    assert_eq!(ids, expected, "each instance leased exactly once");
    store.send_message("ol-00", raised("more", "1")).await.unwrap();
    assert!(fetch_all(&*store, LONG).await.is_empty(), "leased instances are not fetchable");
}

/// An unrenewed lease expires and the work is redelivered under a new token; the old token is
/// then rejected with `LeaseLost` everywhere, so the history is appended once.
pub async fn expired_lease_is_redelivered_and_stale_token_fenced<S: Store>(store: S) {
    store.create_instance(create_request("x1", "Orch")).await.unwrap();
    let first = fetch_for(&store, "x1", Duration::from_millis(300)).await;
    let second = fetch_for(&store, "x1", LONG).await;
    assert!(now() >= first.lease.expires_at, "redelivered before the lease expired");
    assert_ne!(second.lease.token, first.lease.token);
    assert_eq!(second.messages, first.messages, "the same messages are redelivered");

    let stale = turn_of(&first);
    assert!(matches!(store.commit_turn(stale.clone()).await, Err(Error::LeaseLost)));
    assert!(matches!(store.renew_orchestration_lease(&first.lease, LONG).await, Err(Error::LeaseLost)));
    assert!(matches!(
        store.abandon_orchestration_work(&first.lease, Duration::ZERO).await,
        Err(Error::LeaseLost)
    ));
    assert!(store.read_history("x1").await.unwrap().is_empty(), "a rejected commit writes nothing");

    store.commit_turn(turn_of(&second)).await.unwrap();
    assert!(matches!(store.commit_turn(stale).await, Err(Error::LeaseLost)));
    assert!(matches!(store.commit_turn(turn_of(&second)).await, Err(Error::LeaseLost)), "a commit releases");
    assert_eq!(store.read_history("x1").await.unwrap().len(), 2, "appended exactly once");
    assert_eq!(store.get_instance("x1").await.unwrap().unwrap().history_len, 2);
}

/// A renewed lease outlives its original expiry and still commits.
pub async fn renewed_lease_is_kept<S: Store>(store: S) {
    for id in ["r1", "r2"] {
        store.create_instance(create_request(id, "Orch")).await.unwrap();
    }
    let a = fetch_for(&store, "r1", Duration::from_millis(300)).await;
    let renewed = store.renew_orchestration_lease(&a.lease, LONG).await.unwrap();
    assert_eq!(renewed.instance_id, "r1");
    assert!(renewed.expires_at > a.lease.expires_at);
    // r2's lease ends after r1's original one: its redelivery proves that time has passed.
    let b = fetch_for(&store, "r2", Duration::from_millis(600)).await;
    assert!(b.lease.expires_at > a.lease.expires_at);
    poll!("r2's redelivery", store.wait_for_orchestration_work(POLL).await, {
        let items = fetch_all(&store, LONG).await;
        assert!(items.iter().all(|i| i.lease.instance_id != "r1"), "a renewed lease was taken over");
        items.into_iter().find(|i| i.lease.instance_id == "r2")
    });
    let mut c = turn_of(&a);
    c.lease = renewed;
    store.commit_turn(c).await.unwrap();
    assert_eq!(store.get_instance("r1").await.unwrap().unwrap().history_len, 2);
}

/// Abandoned work is fetchable again at once (zero delay) or not before `retry_after`.
pub async fn abandon_respects_retry_after<S: Store>(store: S) {
    store.create_instance(create_request("ab", "Orch")).await.unwrap();
    let first = fetch_for(&store, "ab", LONG).await;
    store.abandon_orchestration_work(&first.lease, Duration::ZERO).await.unwrap();
    let second = fetch_for(&store, "ab", LONG).await;
    assert_eq!(second.messages, first.messages);

    let t0 = now();
    let delay = Duration::from_millis(500);
    store.abandon_orchestration_work(&second.lease, delay).await.unwrap();
    let third = poll!("the retry", store.wait_for_orchestration_work(POLL).await, {
        fetch_all(&store, LONG).await.pop()
    });
    assert!(now() >= t0.checked_add(delay).unwrap(), "fetchable before retry_after");
    assert_eq!(third.messages, first.messages);
    assert!(matches!(store.commit_turn(turn_of(&second)).await, Err(Error::LeaseLost)));
    store.commit_turn(turn_of(&third)).await.unwrap();
}

/// Messages enqueued while a turn runs are not consumed by it: they survive its commit and
/// make the instance ready again.
pub async fn messages_arriving_during_a_turn_survive_the_commit<S: Store>(store: S) {
    start(&store, "m1").await;
    store.send_message("m1", raised("early", "1")).await.unwrap();
    let item = fetch_for(&store, "m1", LONG).await;
    let late = raised("late", "2");
    store.send_message("m1", late.clone()).await.unwrap();
    store.commit_turn(turn_of(&item)).await.unwrap();
    let next = fetch_for(&store, "m1", LONG).await;
    assert_eq!(next.messages.iter().map(|m| &m.event).collect::<Vec<_>>(), [&late]);
}

/// An instance's messages come out in enqueue order, with increasing ids; a turn may consume
/// a prefix and the rest keeps its order.
pub async fn per_instance_fifo_order<S: Store>(store: S) {
    start(&store, "f1").await;
    start(&store, "f2").await;
    let mut sent = Vec::new();
    for i in 0..20 {
        let ev = raised(&format!("e{i}"), &i.to_string());
        store.send_message("f1", ev.clone()).await.unwrap();
        store.send_message("f2", raised("noise", "0")).await.unwrap();
        sent.push(ev);
    }
    let item = fetch_for(&store, "f1", LONG).await;
    assert_eq!(item.messages.iter().map(|m| m.event.clone()).collect::<Vec<_>>(), sent);
    assert!(item.messages.windows(2).all(|w| w[0].id < w[1].id), "ids increase with enqueue order");
    let mut c = turn_of(&item);
    c.consumed.truncate(10);
    c.history.truncate(11);
    store.commit_turn(c).await.unwrap();
    let rest = fetch_for(&store, "f1", LONG).await;
    assert_eq!(rest.messages.iter().map(|m| m.event.clone()).collect::<Vec<_>>(), sent[10..]);
    assert_eq!(rest.messages, item.messages[10..], "same ids");
}

/// Events sent before the instance's first turn wait behind its start, in order, and stay
/// queued in order until consumed (buffering them is the engine's job).
pub async fn events_queued_before_consumption_stay_in_order<S: Store>(store: S) {
    let req = create_request("b1", "Orch");
    store.create_instance(req.clone()).await.unwrap();
    let events: Vec<HistoryEvent> = (0..5).map(|i| raised("Answer", &i.to_string())).collect();
    for e in &events {
        store.send_message("b1", e.clone()).await.unwrap();
    }
    let item = fetch_for(&store, "b1", LONG).await;
    let mut expected = vec![req.start_event()];
    expected.extend(events.clone());
    assert_eq!(item.messages.iter().map(|m| m.event.clone()).collect::<Vec<_>>(), expected);
    let mut c = turn_of(&item);
    c.consumed.truncate(1);
    c.history.truncate(2);
    store.commit_turn(c).await.unwrap();
    let again = fetch_for(&store, "b1", LONG).await;
    assert_eq!(again.messages.iter().map(|m| m.event.clone()).collect::<Vec<_>>(), events);
    store.abandon_orchestration_work(&again.lease, Duration::ZERO).await.unwrap();
    let once_more = fetch_for(&store, "b1", LONG).await;
    assert_eq!(once_more.messages, again.messages);
}

/// A timer is not delivered before its due time, then it is, as its `TimerFired` event.
pub async fn timers_are_invisible_until_due<S: Store>(store: S) {
    start(&store, "tm").await;
    store.send_message("tm", raised("go", "1")).await.unwrap();
    let timer = NewTimer { timer_id: 3, fire_at: after(Duration::from_millis(600)) };
    run_turn(&store, "tm", |c| c.timers.push(timer.clone())).await;
    // Work fetched for another reason must not carry the timer early either.
    let ev = raised("meanwhile", "1");
    store.send_message("tm", ev.clone()).await.unwrap();
    let item = fetch_for(&store, "tm", LONG).await;
    let fired = item.messages.iter().any(|m| m.event == timer.fired_event());
    assert!(!fired || now() >= timer.fire_at, "timer delivered before it was due");
    let mut c = turn_of(&item);
    if !fired {
        assert_eq!(item.messages.len(), 1);
        assert_eq!(item.messages[0].event, ev);
    } else {
        // A very slow machine: the timer came due already. Leave it queued for the check below.
        c.consumed.retain(|id| item.messages.iter().any(|m| m.id == *id && m.event == ev));
        c.history.truncate(2);
    }
    store.commit_turn(c).await.unwrap();
    let item = poll!("the timer", store.wait_for_orchestration_work(POLL).await, {
        let item = fetch_all(&store, LONG).await.pop();
        // Checked on every fetch: whenever it shows up, it must be due.
        assert!(item.is_none() || now() >= timer.fire_at, "timer delivered before it was due");
        item
    });
    assert_eq!(kinds(&item), vec![timer.fired_event().kind]);
    assert_eq!(item.messages[0].event, timer.fired_event());
}

/// A timer cancelled by a later turn is never delivered.
pub async fn cancelled_timers_never_fire<S: Store>(store: S) {
    start(&store, "ct").await;
    store.send_message("ct", raised("go", "1")).await.unwrap();
    // Timer 1 is cancelled long before it is due; timer 2, due just after it, shows when
    // timer 1 would have fired.
    let t1 = NewTimer { timer_id: 1, fire_at: after(Duration::from_millis(2000)) };
    let t2 = NewTimer { timer_id: 2, fire_at: after(Duration::from_millis(2300)) };
    run_turn(&store, "ct", |c| c.timers.extend([t1.clone(), t2.clone()])).await;
    store.send_message("ct", raised("cancel", "1")).await.unwrap();
    let item = run_turn(&store, "ct", |c| c.cancelled_timers.push(1)).await;
    assert!(
        now() < t1.fire_at,
        "the machine is too slow for this test: the cancelling turn ran after the timer"
    );
    assert_eq!(item.messages.len(), 1);
    let fired =
        poll!("timer 2", store.wait_for_orchestration_work(POLL).await, fetch_all(&store, LONG).await.pop());
    assert!(now() >= t1.fire_at);
    assert_eq!(kinds(&fired), vec![t2.fired_event().kind], "only the uncancelled timer fires");
}

/// A terminal commit deletes the instance's remaining messages, timers and unleased
/// activities; a leased activity may still complete but enqueues nothing.
pub async fn terminal_commit_deletes_remaining_work<S: Store>(store: S) {
    start(&store, "tc").await;
    start(&store, "tc-s").await;
    store.send_message("tc", raised("go", "1")).await.unwrap();
    run_turn(&store, "tc", |c| {
        c.activities.push(NewActivity { task_id: 0, name: "A".into(), input: None });
        c.activities.push(NewActivity { task_id: 1, name: "B".into(), input: None });
        c.timers.push(NewTimer { timer_id: 2, fire_at: after(Duration::from_millis(400)) });
    })
    .await;
    let a = poll!("activity A", store.wait_for_activity_work(POLL).await, {
        store.fetch_activity_work(1, LONG).await.unwrap().pop()
    });
    assert_eq!(a.task_id, 0);
    store.send_message("tc-s", raised("go", "1")).await.unwrap();
    let sentinel = NewTimer { timer_id: 0, fire_at: after(Duration::from_millis(700)) };
    run_turn(&store, "tc-s", |c| c.timers.push(sentinel.clone())).await;

    store.send_message("tc", raised("stop", "1")).await.unwrap();
    let item = fetch_for(&store, "tc", LONG).await;
    store.send_message("tc", raised("after-fetch", "1")).await.unwrap();
    let mut c = turn_of(&item);
    c.status = RuntimeStatus::Completed;
    c.output = Some(json("42"));
    store.commit_turn(c.clone()).await.unwrap();
    let st = store.get_instance("tc").await.unwrap().unwrap();
    assert_eq!((st.status, st.output), (RuntimeStatus::Completed, Some(json("42"))));
    assert_eq!(st.completed_at, Some(c.now));

    assert!(store.fetch_activity_work(10, LONG).await.unwrap().is_empty(), "unleased activity B was deleted");
    poll!("the sentinel timer", store.wait_for_orchestration_work(POLL).await, {
        let items = fetch_all(&store, LONG).await;
        assert!(items.iter().all(|i| i.lease.instance_id != "tc"), "work of a finished instance: {items:?}");
        items.into_iter().find(|i| i.lease.instance_id == "tc-s")
    });
    store.complete_activity(&a.lease, ActivityOutcome::Completed(None)).await.unwrap();
    assert!(
        fetch_all(&store, LONG).await.is_empty(),
        "a completion for a finished instance enqueues nothing"
    );
    assert_eq!(store.get_instance("tc").await.unwrap().unwrap().status, RuntimeStatus::Completed);
}

/// `continue_as_new` resets the history, deletes the old execution's timers and activities,
/// and queues the new start, then the carried events, then the execution-less messages that
/// arrived meanwhile.
pub async fn continue_as_new_switches_execution<S: Store>(store: S) {
    start(&store, "can").await;
    store.send_message("can", raised("go", "1")).await.unwrap();
    let old_timer = NewTimer { timer_id: 0, fire_at: after(Duration::from_millis(300)) };
    run_turn(&store, "can", |c| {
        c.timers.push(old_timer.clone());
        c.activities.push(NewActivity { task_id: 1, name: "Old".into(), input: None });
    })
    .await;
    store.send_message("can", raised("restart", "1")).await.unwrap();
    let item = fetch_for(&store, "can", LONG).await;
    let late = raised("late", "3");
    store.send_message("can", late.clone()).await.unwrap();
    let carried = vec![raised("carried", "1"), raised("carried", "2")];
    let mut c = turn_of(&item);
    c.status = RuntimeStatus::ContinuedAsNew;
    c.history.push(HistoryEvent::new(
        c.now,
        EventKind::ExecutionCompleted {
            status: RuntimeStatus::ContinuedAsNew,
            result: Some(json("2")),
            failure: None,
        },
    ));
    // The store writes the start the engine built, as given (a made-up parent proves that it
    // does not rebuild it from the instance row).
    let parent =
        ParentInstance { instance_id: "from-the-engine".into(), execution_id: "p".into(), task_id: 7 };
    let start = HistoryEvent::new(
        c.now,
        EventKind::ExecutionStarted {
            name: "Orch".into(),
            input: Some(json("2")),
            parent: Some(parent),
            trace: None,
        },
    );
    c.continue_as_new = Some(NewExecution {
        execution_id: "e2".into(),
        input: Some(json("2")),
        start: start.clone(),
        carried_events: carried.clone(),
    });
    store.commit_turn(c).await.unwrap();

    let st = store.get_instance("can").await.unwrap().unwrap();
    assert_eq!((st.execution_id.as_str(), st.status), ("e2", RuntimeStatus::ContinuedAsNew));
    assert_eq!((st.input, st.history_len), (Some(json("2")), 0));
    assert!(store.read_history("can").await.unwrap().is_empty());
    assert!(store.fetch_activity_work(10, LONG).await.unwrap().is_empty(), "old activities are deleted");

    let next = fetch_for(&store, "can", LONG).await;
    assert_eq!(next.messages[0].event, start, "the start exactly as the engine built it");
    let mut expected = vec![start.kind.clone()];
    expected.extend(carried.iter().map(|e| e.kind.clone()));
    expected.push(late.kind.clone());
    assert_eq!(kinds(&next), expected, "start, carried events, then messages that arrived meanwhile");
    assert_eq!(next.messages[1].event, carried[0]);
    for m in &next.messages[..3] {
        assert_eq!(m.execution_id.as_deref().unwrap_or("e2"), "e2");
    }
    assert_eq!(next.instance.execution_id, "e2");
    let new_timer =
        NewTimer { timer_id: 0, fire_at: old_timer.fire_at.checked_add(Duration::from_millis(300)).unwrap() };
    let mut c = turn_of(&next);
    c.timers.push(new_timer.clone());
    store.commit_turn(c).await.unwrap();
    assert_eq!(store.get_instance("can").await.unwrap().unwrap().history_len, 5);
    let fired = poll!("the new timer", store.wait_for_orchestration_work(POLL).await, {
        fetch_all(&store, LONG).await.pop()
    });
    assert_eq!(fired.messages.len(), 1, "the old execution's timer was deleted: {fired:?}");
    assert_eq!(fired.messages[0].event, new_timer.fired_event());
}

/// Sub-orchestrations are created with the turn; an id held by an unfinished instance makes
/// the parent receive `SubOrchestrationFailed` instead of failing the commit; a finished
/// holder is replaced.
pub async fn sub_orchestration_created_or_failed_to_parent<S: Store>(store: S) {
    start(&store, "busy").await;
    start(&store, "done").await;
    terminate(&store, "done", RuntimeStatus::Completed).await;
    start(&store, "par").await;
    store.send_message("par", raised("go", "1")).await.unwrap();
    let child = |id: &str, task_id| CreateInstance {
        parent: Some(ParentInstance { instance_id: "par".into(), execution_id: "e1".into(), task_id }),
        input: Some(json(&task_id.to_string())),
        ..create_request(id, "Child")
    };
    let (fresh, taken, reused) = (child("par:0", 0), child("busy", 1), child("done", 2));
    run_turn(&store, "par", |c| c.new_instances.extend([fresh.clone(), taken.clone(), reused.clone()])).await;

    let st = store.get_instance("par:0").await.unwrap().expect("child created");
    assert_eq!((st.name.as_str(), st.status), ("Child", RuntimeStatus::Pending));
    assert_eq!(st.parent_instance_id.as_deref(), Some("par"));
    let start = fetch_for(&store, "par:0", LONG).await;
    assert_eq!(kinds(&start), vec![fresh.start_event().kind], "the start names the parent");

    let busy = store.get_instance("busy").await.unwrap().unwrap();
    assert_eq!((busy.name.as_str(), busy.status, busy.history_len), ("Orch", RuntimeStatus::Running, 2));
    let done = store.get_instance("done").await.unwrap().unwrap();
    assert_eq!(
        (done.name.as_str(), done.status),
        ("Child", RuntimeStatus::Pending),
        "finished holder replaced"
    );

    let parent = fetch_for(&store, "par", LONG).await;
    assert_eq!(parent.messages.len(), 1);
    let expected = taken.collision_message(parent.messages[0].event.timestamp).expect("a child has a parent");
    assert_eq!(parent.messages[0].event, expected.event, "exactly the failure store-api builds");
    assert!(matches!(
        &parent.messages[0].event.kind,
        EventKind::SubOrchestrationFailed { task_id: 1, failure } if failure.error_type == "InstanceAlreadyExists"
    ));
    assert_eq!(parent.messages[0].execution_id.as_deref().unwrap_or("e1"), "e1");
}

/// Messages of a turn to instances that do not exist or have finished are dropped; the commit
/// succeeds and delivers the others.
pub async fn messages_to_missing_or_finished_instances_are_dropped<S: Store>(store: S) {
    start(&store, "src").await;
    start(&store, "dst").await;
    start(&store, "fin").await;
    terminate(&store, "fin", RuntimeStatus::Terminated).await;
    store.send_message("src", raised("go", "1")).await.unwrap();
    let to = |id: &str| NewMessage { instance_id: id.into(), execution_id: None, event: raised("x", "1") };
    run_turn(&store, "src", |c| c.messages.extend([to("missing"), to("fin"), to("dst")])).await;
    assert!(store.get_instance("missing").await.unwrap().is_none(), "a message does not create an instance");
    let fin = store.get_instance("fin").await.unwrap().unwrap();
    assert_eq!((fin.status, fin.history_len), (RuntimeStatus::Terminated, 4));
    // Everything the commit enqueued is visible at once, so the first non-empty fetch has it all.
    let items = poll!("the delivered message", store.wait_for_orchestration_work(POLL).await, {
        Some(fetch_all(&store, LONG).await).filter(|items| !items.is_empty())
    });
    let ids: Vec<&str> = items.iter().map(|i| i.lease.instance_id.as_str()).collect();
    assert_eq!(ids, ["dst"], "only the running target gets the message");
    assert_eq!(items[0].messages.len(), 1);
}

/// Fetches in a loop, waiting up to a minute between attempts, until `instance_id` has work:
/// only prompt wake-ups make this finish within the deadline.
async fn consume_with_long_waits<S: Store>(
    store: Arc<S>,
    instance_id: &'static str,
) -> OrchestrationWorkItem {
    loop {
        let items = store.fetch_orchestration_work(10, LONG).await.unwrap();
        if let Some(item) = items.into_iter().find(|i| i.lease.instance_id == instance_id) {
            return item;
        }
        store.wait_for_orchestration_work(Duration::from_secs(60)).await;
    }
}

/// A waiter wakes up when a message is enqueued.
pub async fn wait_for_orchestration_work_wakes_on_enqueue<S: Store>(store: S) {
    start(&store, "w1").await;
    let store = Arc::new(store);
    let consumer = tokio::spawn(consume_with_long_waits(store.clone(), "w1"));
    store.send_message("w1", raised("wake", "1")).await.unwrap();
    let item = tokio::time::timeout(DEADLINE, consumer).await.expect("the waiter woke up").unwrap();
    assert_eq!(item.messages.len(), 1);
}

/// A waiter wakes up when a timer comes due.
pub async fn wait_for_orchestration_work_wakes_on_timer_due<S: Store>(store: S) {
    start(&store, "w2").await;
    store.send_message("w2", raised("go", "1")).await.unwrap();
    let timer = NewTimer { timer_id: 0, fire_at: after(Duration::from_millis(300)) };
    run_turn(&store, "w2", |c| c.timers.push(timer.clone())).await;
    let store = Arc::new(store);
    let item = tokio::time::timeout(DEADLINE, consume_with_long_waits(store, "w2"))
        .await
        .expect("woke for the timer");
    assert!(now() >= timer.fire_at);
    assert_eq!(item.messages[0].event, timer.fired_event());
}

/// `lease_instance` on an idle instance: the lease comes with the instance's visible messages,
/// excludes fetches, and a commit under it may carry an event that never went through the inbox.
pub async fn lease_instance_takes_an_idle_instance_exclusively<S: Store>(store: S) {
    start(&store, "li1").await;
    store.send_message("li1", raised("queued", "1")).await.unwrap();
    let item = store.lease_instance("li1", LONG).await.unwrap().expect("an idle instance can be leased");
    assert_eq!(item.instance.status, RuntimeStatus::Running);
    assert_eq!(kinds(&item).len(), 1, "the queued event comes with the lease");
    assert!(fetch_all(&store, LONG).await.is_empty(), "a fetch does not get a leased instance");
    assert!(store.lease_instance("li1", LONG).await.unwrap().is_none(), "one lease at a time");

    let mut c = turn_of(&item);
    let inline = raised("inline", "2");
    c.history.push(inline.clone());
    store.send_message("li1", raised("later", "3")).await.unwrap();
    store.commit_turn(c.clone()).await.unwrap();
    let history = store.read_history("li1").await.unwrap();
    assert_eq!(history.last(), Some(&inline), "the inline event is recorded in the turn");
    // What arrived during the lease is delivered after the commit.
    let next = fetch_for(&store, "li1", LONG).await;
    assert_eq!(kinds(&next), vec![raised("later", "3").kind]);
}

/// `lease_instance` refuses an instance leased by a fetch (`None`), a missing instance
/// (`NotFound`) and a finished one (`InstanceFinished`), and holds no lease afterwards.
pub async fn lease_instance_refuses_leased_missing_and_finished_instances<S: Store>(store: S) {
    start(&store, "li2").await;
    let probe = store.lease_instance("li2", LONG).await.unwrap().expect("an idle instance can be leased");
    store.abandon_orchestration_work(&probe.lease, Duration::ZERO).await.unwrap();

    store.send_message("li2", raised("e", "1")).await.unwrap();
    let fetched = fetch_for(&store, "li2", LONG).await;
    assert!(store.lease_instance("li2", LONG).await.unwrap().is_none(), "leased by the fetch");
    store.abandon_orchestration_work(&fetched.lease, Duration::ZERO).await.unwrap();

    assert!(matches!(store.lease_instance("nope", LONG).await, Err(Error::NotFound { .. })));

    store.create_instance(create_request("li3", "Orch")).await.unwrap();
    let item = fetch_for(&store, "li3", LONG).await;
    let mut c = turn_of(&item);
    c.status = RuntimeStatus::Completed;
    store.commit_turn(c).await.unwrap();
    assert!(matches!(
        store.lease_instance("li3", LONG).await,
        Err(Error::InstanceFinished { status: RuntimeStatus::Completed, .. })
    ));
    // The refusals left nothing leased: the queued event of li2 is still fetchable.
    let again = fetch_for(&store, "li2", LONG).await;
    assert_eq!(kinds(&again).len(), 1);
}

/// `set_stall` records why an instance waits (shown by `get_instance`, `since` kept while the
/// same reason is reported again), and it goes away when cleared or when the instance makes
/// progress (a turn that changes its history or status), without a write of the caller.
pub async fn stall_is_shown_until_cleared_or_progress<S: Store>(store: S) {
    start(&store, "st").await;
    assert_eq!(store.get_instance("st").await.unwrap().unwrap().stall, None);
    assert!(matches!(store.set_stall("nope", Some("x")).await, Err(Error::NotFound { .. })));

    store.set_stall("st", Some("no orchestrator 'X' here")).await.unwrap();
    let first = store.get_instance("st").await.unwrap().unwrap().stall.expect("stall recorded");
    assert_eq!(first.reason, "no orchestrator 'X' here");
    store.set_stall("st", Some("no orchestrator 'X' here")).await.unwrap();
    let again = store.get_instance("st").await.unwrap().unwrap().stall.unwrap();
    assert_eq!(again.since, first.since, "the same reason keeps its start");
    let listed = store.query_instances(&InstanceQuery::default()).await.unwrap();
    assert_eq!(
        listed.instances[0].stall.as_ref().map(|s| s.reason.as_str()),
        Some("no orchestrator 'X' here")
    );

    store.set_stall("st", None).await.unwrap();
    assert_eq!(store.get_instance("st").await.unwrap().unwrap().stall, None);

    // Progress clears it: a turn that appends history.
    store.set_stall("st", Some("waiting")).await.unwrap();
    store.send_message("st", raised("go", "1")).await.unwrap();
    let item = fetch_for(&store, "st", LONG).await;
    store.commit_turn(turn_of(&item)).await.unwrap();
    assert_eq!(store.get_instance("st").await.unwrap().unwrap().stall, None, "progress clears the stall");

    // A turn that changes nothing (e.g. only dropped duplicates) does not.
    store.set_stall("st", Some("waiting")).await.unwrap();
    store.send_message("st", raised("dup", "1")).await.unwrap();
    let item = fetch_for(&store, "st", LONG).await;
    let mut c = turn_of(&item);
    c.history.clear();
    store.commit_turn(c).await.unwrap();
    assert!(store.get_instance("st").await.unwrap().unwrap().stall.is_some(), "no progress, still stalled");
}
