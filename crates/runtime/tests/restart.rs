//! Dropping the runtime while instances wait on timers, events and activities, then reopening
//! the same SQLite file, finishes every instance exactly once.

mod common;

use common::*;
use durable_core::{Error, OrchestrationContext, RuntimeStatus};
use durable_runtime::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

async fn on_timer(ctx: OrchestrationContext, _: ()) -> Result<&'static str, Error> {
    ctx.sleep(Duration::from_millis(1500)).await;
    Ok("timer fired")
}

async fn on_event(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    ctx.wait_for_external_event("Go").await
}

async fn on_activity(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    ctx.call_activity("Work", &()).await
}

fn registry(runs: Arc<AtomicU32>, activity_blocks: bool) -> Registry {
    Registry::new()
        .orchestrator("OnTimer", on_timer)
        .orchestrator("OnEvent", on_event)
        .orchestrator("OnActivity", on_activity)
        .activity("Work", move |ctx, _: ()| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                if activity_blocks {
                    // Still running when the node goes down.
                    std::future::pending::<()>().await;
                }
                Ok::<_, Error>(format!("done on attempt {}", ctx.attempt))
            }
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_resume_after_the_runtime_is_dropped_and_reopened() {
    let runs = Arc::new(AtomicU32::new(0));
    let node = TestNode::start(registry(runs.clone(), true));
    let client = node.client();
    let mut timers = Vec::new();
    let mut events = Vec::new();
    let mut activities = Vec::new();
    for _ in 0..10 {
        timers.push(client.start("OnTimer", &()).await.unwrap());
        events.push(client.start("OnEvent", &()).await.unwrap());
        activities.push(client.start("OnActivity", &()).await.unwrap());
    }
    for id in timers.iter().chain(&events).chain(&activities) {
        wait_for_history(&client, id, "OrchestratorStarted").await;
    }
    eventually("every activity to be running", || async { runs.load(Ordering::SeqCst) >= 10 }).await;
    // An event raised before the restart must survive it.
    client.raise_event(&events[0], "Go", "before restart").await.unwrap();

    let node = node.restart(registry(runs.clone(), false)).await;
    let client = node.client();
    for (i, id) in events.iter().enumerate().skip(1) {
        client.raise_event(id, "Go", &format!("after restart {i}")).await.unwrap();
    }
    for id in &timers {
        assert_eq!(output::<String>(&node.finish(id).await), "timer fired");
    }
    assert_eq!(output::<String>(&node.finish(&events[0]).await), "before restart");
    for id in &events[1..] {
        assert!(output::<String>(&node.finish(id).await).starts_with("after restart"));
    }
    for id in &activities {
        // Each activity ran once before the restart and again after it (at least once); the
        // store counts the interrupted run as an attempt.
        assert_eq!(output::<String>(&node.finish(id).await), "done on attempt 2");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 20);
    // No history was duplicated: exactly one completion per instance, one TimerFired per timer.
    for id in timers.iter().chain(&events).chain(&activities) {
        let history = client.history(id).await.unwrap();
        let count = |t: &str| history.iter().filter(|e| e.kind.type_name() == t).count();
        assert_eq!(count("ExecutionCompleted"), 1, "{id}");
        assert_eq!(count("ExecutionStarted"), 1, "{id}");
        assert!(count("TimerFired") <= 1 && count("TaskCompleted") <= 1, "{id}: {history:?}");
        assert_eq!(client.status(id).await.unwrap().unwrap().status, RuntimeStatus::Completed);
    }
}

/// Issue 9, defect 1: a node that lacks an instance's orchestrator (or an activity) never
/// consumes its messages. The work waits, the status says why, and once a node with the
/// function runs, the instance continues where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_for_unregistered_functions_waits_for_a_node_that_has_them() {
    async fn sleeper(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
        ctx.sleep(Duration::from_millis(300)).await;
        ctx.call_activity("Greet", &()).await
    }
    let full = || {
        Registry::new()
            .orchestrator("Sleeper", sleeper)
            .activity("Greet", |_ctx, _: ()| async move { Ok::<_, Error>("hello".to_owned()) })
    };
    let node = TestNode::start(full());
    let client = node.client();
    let id = client.start("Sleeper", &()).await.unwrap();
    wait_for_history(&client, &id, "TimerCreated").await;
    let before = client.history(&id).await.unwrap();

    // A node without the orchestrator: the timer comes due and is left alone.
    let node = node.restart(Registry::new().orchestrator("Other", sleeper)).await;
    let client = node.client();
    eventually("the node to leave the work and say why", || async {
        client.status(&id).await.unwrap().unwrap().stall.is_some()
    })
    .await;
    assert!(node.runtime().metrics().stalls > 0);
    let state = client.status(&id).await.unwrap().unwrap();
    assert_eq!(state.status, RuntimeStatus::Running);
    let stall = state.stall.expect("the status says why it waits");
    assert!(stall.reason.contains("[DT0002]") && stall.reason.contains("'Sleeper'"), "{}", stall.reason);
    assert_eq!(client.history(&id).await.unwrap(), before, "nothing was recorded");
    let queued: i64 = node.sql().query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap();
    assert_eq!(queued, 1, "the timer message is kept");

    // A node with the orchestrator but without the activity: the activity waits too.
    let node = node.restart(Registry::new().orchestrator("Sleeper", sleeper)).await;
    let client = node.client();
    wait_for_history(&client, &id, "TaskScheduled").await;
    eventually("the activity to be left", || async {
        client.status(&id).await.unwrap().unwrap().stall.is_some_and(|s| s.reason.contains("[DT0003]"))
    })
    .await;
    let activities: i64 = node.sql().query_row("SELECT count(*) FROM activities", [], |r| r.get(0)).unwrap();
    assert_eq!(activities, 1, "the activity work item is kept");

    // A node with everything: the instance continues where it was, and the note is gone.
    let node = node.restart(full()).await;
    let done = node.finish(&id).await;
    assert_eq!(output::<String>(&done), "hello");
    assert_eq!(done.stall, None);
    let history = node.client().history(&id).await.unwrap();
    let fired = history.iter().filter(|e| e.kind.type_name() == "TimerFired").count();
    assert_eq!(fired, 1);
}
