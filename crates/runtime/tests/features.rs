//! Every context feature, end to end on a real SQLite file.

mod common;

use common::*;
use durable_core::RuntimeStatus;
use durable_core::{ContinueAsNewOptions, Either, Error, OrchestrationContext, RetryPolicy};
use durable_runtime::{ActivityContext, Registry};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn double() -> impl Fn(ActivityContext, u32) -> std::future::Ready<Result<u32, Error>> + Send + Sync + 'static
{
    |_ctx, n| std::future::ready(Ok(n * 2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_and_sub_orchestrations() {
    async fn child(ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
        ctx.call_activity("Double", &n).await
    }
    async fn parent(ctx: OrchestrationContext, n: u32) -> Result<(u32, u32, u32, String), Error> {
        let a: u32 = ctx.call_activity("Double", &n).await?;
        let b: u32 = ctx.call_sub_orchestrator("Child", &a).await?;
        let c: u32 =
            ctx.call_sub_orchestrator_with_id("Child", &format!("{}-named", ctx.instance_id()), &b).await?;
        Ok((a, b, c, ctx.instance_id().to_owned()))
    }
    let node = TestNode::start(
        Registry::new()
            .orchestrator("Parent", parent)
            .orchestrator("Child", child)
            .activity("Double", double()),
    );
    let client = node.client();
    let id = client.start("Parent", &1).await.unwrap();
    let (a, b, c, own) = output::<(u32, u32, u32, String)>(&node.finish(&id).await);
    assert_eq!((a, b, c), (2, 4, 8));
    assert_eq!(own, id);
    let named = client.status(&format!("{id}-named")).await.unwrap().unwrap();
    assert_eq!(named.status, RuntimeStatus::Completed);
    assert_eq!(named.parent_instance_id.as_deref(), Some(id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_retries_wait_on_durable_timers() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let flaky = move |ctx: ActivityContext, _: ()| {
        let c = c.clone();
        async move {
            if c.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(Error::msg(format!("transient failure on attempt {}", ctx.attempt)))
            } else {
                Ok("finally")
            }
        }
    };
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
        let policy = RetryPolicy::new(5, Duration::from_millis(50)).with_backoff_coefficient(2.0);
        ctx.call_activity_with_retry("Flaky", &(), policy).await
    }
    let node = TestNode::start(Registry::new().orchestrator("Retry", orch).activity("Flaky", flaky));
    let id = node.client().start("Retry", &()).await.unwrap();
    assert_eq!(output::<String>(&node.finish(&id).await), "finally");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let history = node.client().history(&id).await.unwrap();
    let count = |t: &str| history.iter().filter(|e| e.kind.type_name() == t).count();
    assert_eq!(
        (count("TaskFailed"), count("TimerCreated"), count("TimerFired"), count("TaskScheduled")),
        (2, 2, 2, 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_orchestration_retries() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let registry = Registry::new()
        .orchestrator("Outer", |ctx: OrchestrationContext, _: ()| async move {
            let policy = RetryPolicy::new(3, Duration::from_millis(20));
            ctx.call_sub_orchestrator_with_retry::<u32, _>("Inner", None, &(), policy).await
        })
        .orchestrator("Inner", |ctx: OrchestrationContext, _: ()| async move {
            ctx.call_activity::<u32, _>("Count", &()).await
        })
        .activity("Count", move |_ctx, _: ()| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move { if n == 0 { Err(Error::msg("first child fails")) } else { Ok(n) } }
        });
    let node = TestNode::start(registry);
    let id = node.client().start("Outer", &()).await.unwrap();
    assert_eq!(output::<u32>(&node.finish(&id).await), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_and_cancelled_timers_leave_nothing_behind() {
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<&'static str, Error> {
        ctx.sleep(Duration::from_millis(100)).await;
        let long = ctx.sleep(Duration::from_secs(3600));
        let result = match ctx.select(ctx.wait_for_external_event::<String>("Go"), &long).await {
            Either::Left(_) => "event",
            Either::Right(()) => "timer",
        };
        long.cancel();
        Ok(result)
    }
    let node = TestNode::start(Registry::new().orchestrator("T", orch));
    let client = node.client();
    let id = client.start("T", &()).await.unwrap();
    wait_for_history(&client, &id, "TimerFired").await;
    client.raise_event(&id, "Go", "now").await.unwrap();
    let done = node.finish(&id).await;
    assert_eq!(output::<String>(&done), "event");
    // Nothing of the instance is left queued: the hour-long timer is gone.
    let queued: i64 = node.sql().query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap();
    assert_eq!(queued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_raised_before_anyone_waits_are_buffered_in_order() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<Vec<u32>, Error> {
        ctx.call_activity::<(), _>("Slow", &()).await?;
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(ctx.wait_for_external_event::<u32>("N").await?);
        }
        Ok(seen)
    }
    let registry = Registry::new().orchestrator("B", orch).activity("Slow", move |_ctx, _: ()| {
        let g = g.clone();
        async move {
            let _permit = g.acquire().await.map_err(|e| Error::msg(e.to_string()))?;
            Ok::<_, Error>(())
        }
    });
    let node = TestNode::start(registry);
    let client = node.client();
    let id = client.start("B", &()).await.unwrap();
    for n in [1, 2, 3] {
        client.raise_event(&id, "N", &n).await.unwrap();
    }
    gate.add_permits(1);
    assert_eq!(output::<Vec<u32>>(&node.finish(&id).await), vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_waits_with_timeout_and_default() {
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<(String, String), Error> {
        let a = ctx
            .wait_for_external_event_or_default("Never", Duration::from_millis(50), "default".to_string())
            .await?;
        let b = match ctx
            .wait_for_external_event_with_timeout::<String>("Never", Duration::from_millis(50))
            .await
        {
            Err(Error::Timeout { event }) => format!("timeout {event}"),
            other => format!("{other:?}"),
        };
        Ok((a, b))
    }
    let node = TestNode::start(Registry::new().orchestrator("W", orch));
    let id = node.client().start("W", &()).await.unwrap();
    assert_eq!(
        output::<(String, String)>(&node.finish(&id).await),
        ("default".into(), "timeout Never".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_all_and_when_any() {
    async fn orch(ctx: OrchestrationContext, n: u32) -> Result<(Vec<u32>, usize), Error> {
        let all = ctx.join_all((0..n).map(|i| ctx.call_activity::<u32, _>("Double", &i))).await;
        let all: Result<Vec<u32>, Error> = all.into_iter().collect();
        let timer = ctx.sleep(Duration::from_secs(600));
        let (winner, _) = ctx
            .select_all(vec![
                Box::pin(async {
                    timer.clone().await;
                    Ok::<u32, Error>(0)
                }) as std::pin::Pin<Box<dyn Future<Output = _> + Send>>,
                Box::pin(ctx.call_activity::<u32, _>("Double", &21)),
            ])
            .await;
        timer.cancel();
        Ok((all?, winner))
    }
    let node = TestNode::start(Registry::new().orchestrator("Fan", orch).activity("Double", double()));
    let id = node.client().start("Fan", &10).await.unwrap();
    let (all, winner) = output::<(Vec<u32>, usize)>(&node.finish(&id).await);
    assert_eq!(all, (0..10).map(|i| i * 2).collect::<Vec<_>>());
    assert_eq!(winner, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_status_guids_and_time_survive_a_restart() {
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<(String, String, bool), Error> {
        let guid = ctx.new_guid().to_string();
        let started = ctx.current_utc_datetime().to_string();
        ctx.set_custom_status(&serde_json::json!({"guid": guid, "started": started}))?;
        let replaying_after_wait = {
            ctx.wait_for_external_event::<()>("Continue").await?;
            ctx.is_replaying()
        };
        Ok((guid, started, replaying_after_wait))
    }
    let registry = || Registry::new().orchestrator("G", orch);
    let node = TestNode::start(registry());
    let id = node.client().start("G", &()).await.unwrap();
    wait_for_history(&node.client(), &id, "OrchestratorStarted").await;
    eventually("custom status", || async {
        node.client().status(&id).await.unwrap().is_some_and(|st| st.custom_status.is_some())
    })
    .await;
    let status: serde_json::Value =
        node.client().status(&id).await.unwrap().unwrap().custom_status.unwrap().decode().unwrap();
    // A restart drops the cached execution: the next turn replays from history.
    let node = node.restart(registry()).await;
    node.client().raise_event(&id, "Continue", &()).await.unwrap();
    let (guid, started, replaying) = output::<(String, String, bool)>(&node.finish(&id).await);
    assert_eq!(status["guid"], guid.as_str());
    assert_eq!(status["started"], started.as_str());
    assert!(!replaying);
    assert!(node.runtime().metrics().replays >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_as_new_resets_history_and_carries_events() {
    async fn counter(ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
        if n == 3 {
            return ctx.wait_for_external_event::<u32>("Carried").await;
        }
        ctx.call_activity::<u32, _>("Double", &n).await?;
        if n == 0 {
            ctx.send_event(ctx.instance_id(), "Carried", &(7u32))?;
            ctx.wait_for_external_event::<()>("Tick").await?;
        }
        ctx.continue_as_new_with_options(&(n + 1), ContinueAsNewOptions { preserve_unprocessed_events: true })
            .await
    }
    let node = TestNode::start(Registry::new().orchestrator("C", counter).activity("Double", double()));
    let client = node.client();
    let id = client.start("C", &0u32).await.unwrap();
    wait_for_history(&client, &id, "EventSent").await;
    client.raise_event(&id, "Tick", &()).await.unwrap();
    let done = node.finish(&id).await;
    assert_eq!(output::<u32>(&done), 7);
    assert_eq!(done.input.unwrap().decode::<u32>().unwrap(), 3);
    let history = client.history(&id).await.unwrap();
    assert!(
        history.iter().all(|e| e.kind.type_name() != "TaskScheduled"),
        "history restarted with the last execution"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_instances_run_concurrently() {
    async fn orch(ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
        let a: u32 = ctx.call_activity("Double", &n).await?;
        ctx.sleep(Duration::from_millis(10)).await;
        let b: u32 = ctx.wait_for_external_event("Add").await?;
        Ok(a + b)
    }
    let node = TestNode::start(Registry::new().orchestrator("M", orch).activity("Double", double()));
    let client = node.client();
    let mut ids = Vec::new();
    for n in 0..200u32 {
        let id = client.start("M", &n).await.unwrap();
        client.raise_event(&id, "Add", &1u32).await.unwrap();
        ids.push((n, id));
    }
    for (n, id) in ids {
        assert_eq!(output::<u32>(&node.finish(&id).await), n * 2 + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_event_is_delivered_in_one_commit_and_an_early_one_is_queued() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<(u32, u32), Error> {
        ctx.call_activity::<(), _>("Slow", &()).await?;
        let a: u32 = ctx.wait_for_external_event("A").await?;
        let b: u32 = ctx.wait_for_external_event("B").await?;
        Ok((a, b))
    }
    let registry = Registry::new().orchestrator("D", orch).activity("Slow", move |_ctx, _: ()| {
        let g = g.clone();
        async move {
            let _permit = g.acquire().await.map_err(|e| Error::msg(e.to_string()))?;
            Ok::<_, Error>(())
        }
    });
    let node = TestNode::start(registry);
    let client = node.client();
    let id = client.start("D", &()).await.unwrap();
    wait_for_history(&client, &id, "TaskScheduled").await;
    // Nobody waits for B yet: queued, not delivered directly.
    client.raise_event(&id, "B", &2u32).await.unwrap();
    assert_eq!(node.runtime().metrics().direct_events, 0);
    gate.add_permits(1);
    wait_for_history(&client, &id, "TaskCompleted").await;
    eventually("the wait for A", || async { client.history(&id).await.unwrap().len() >= 6 }).await;
    // The orchestrator now waits for A: delivered straight into the turn that consumes it.
    client.raise_event(&id, "A", &1u32).await.unwrap();
    assert_eq!(node.runtime().metrics().direct_events, 1);
    // The turn already ran: the instance finished with the raise.
    let state = client.status(&id).await.unwrap().unwrap();
    assert_eq!(output::<(u32, u32)>(&state), (1, 2));
}

/// `awaited_events` tells which of the given event names a cached execution waits for, and
/// stops naming one once it has arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaited_events_follow_the_orchestrators_waits() {
    async fn orch(ctx: OrchestrationContext, _: ()) -> Result<u32, Error> {
        let first: u32 = ctx.wait_for_external_event("First").await?;
        let second: u32 = ctx.wait_for_external_event("Second").await?;
        Ok(first + second)
    }
    let node = TestNode::start(Registry::new().orchestrator("Waits", orch));
    let client = node.client();
    assert_eq!(client.awaited_events("nobody", &["First"]), None, "unknown instances are not cached");
    let id = client.start("Waits", &()).await.unwrap();
    let candidates = ["Second", "first", "Other"];
    eventually("the orchestrator to wait for First", || async {
        client.awaited_events(&id, &candidates) == Some(vec!["first".to_owned()])
    })
    .await;
    client.raise_event(&id, "First", &1).await.unwrap();
    eventually("the orchestrator to wait for Second", || async {
        client.awaited_events(&id, &candidates) == Some(vec!["Second".to_owned()])
    })
    .await;
    client.raise_event(&id, "Second", &2).await.unwrap();
    assert_eq!(output::<u32>(&node.finish(&id).await), 3);
}

/// Rewind of a failed instance: the failed activity runs again, what succeeded does not, a
/// failed sub-orchestration is rewound with its parent, and the instances complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_runs_failed_work_again_and_keeps_what_succeeded() {
    use durable_runtime::client::Error as ClientError;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    async fn parent(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
        let once: u32 = ctx.call_activity("Once", &()).await?;
        let flaky: String = ctx.call_activity("Flaky", &()).await?;
        let child_id = format!("{}-child", ctx.instance_id());
        let child: String = ctx.call_sub_orchestrator_with_id("Child", &child_id, &()).await?;
        Ok(format!("{once} {flaky} {child}"))
    }
    async fn child(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
        ctx.call_activity("ChildFlaky", &()).await
    }
    let flaky = |broken: Arc<AtomicBool>| {
        move |_ctx, _: ()| {
            let fail = broken.load(Ordering::SeqCst);
            async move { if fail { Err(Error::msg("downstream is down")) } else { Ok("ok".to_owned()) } }
        }
    };
    let once = Arc::new(AtomicU32::new(0));
    let (broken, child_broken) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(true)));
    let counter = once.clone();
    let registry = Registry::new()
        .orchestrator("Parent", parent)
        .orchestrator("Child", child)
        .activity("Once", move |_ctx, _: ()| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok::<_, Error>(n) }
        })
        .activity("Flaky", flaky(broken.clone()))
        .activity("ChildFlaky", flaky(child_broken.clone()));
    let node = TestNode::start(registry);
    let client = node.client();
    let id = client.start("Parent", &()).await.unwrap();
    assert_eq!(node.finish(&id).await.status, RuntimeStatus::Failed);
    assert!(matches!(client.rewind("nope", None).await, Err(ClientError::NotFound(_))));
    let rewinds = |id: String| {
        let client = client.clone();
        async move {
            let h = client.history(&id).await.unwrap();
            h.iter().filter(|e| e.kind.type_name() == "ExecutionRewound").count()
        }
    };

    // Rewound while the activity still fails: Failed again, after running it again.
    client.rewind(&id, Some("try again")).await.unwrap();
    eventually("the rewound instance to fail again", || async {
        rewinds(id.clone()).await == 1
            && client.status(&id).await.unwrap().unwrap().status == RuntimeStatus::Failed
    })
    .await;

    // The activity is fixed: the parent gets to its child, whose own activity fails.
    broken.store(false, Ordering::SeqCst);
    client.rewind(&id, None).await.unwrap();
    let child_id = format!("{id}-child");
    eventually("the child to fail and the parent with it", || async {
        rewinds(id.clone()).await == 2
            && client.status(&child_id).await.unwrap().is_some_and(|c| c.status == RuntimeStatus::Failed)
            && client.status(&id).await.unwrap().unwrap().status == RuntimeStatus::Failed
    })
    .await;

    // Everything fixed: rewinding the parent rewinds the child too.
    child_broken.store(false, Ordering::SeqCst);
    client.rewind(&id, None).await.unwrap();
    assert_eq!(output::<String>(&node.finish(&id).await), "1 ok ok");
    assert_eq!(output::<String>(&node.finish(&child_id).await), "ok");
    assert_eq!(rewinds(child_id.clone()).await, 1, "the child was rewound, not started again");
    assert_eq!(once.load(Ordering::SeqCst), 1, "what succeeded ran once");
    assert!(matches!(
        client.rewind(&id, None).await,
        Err(ClientError::NotFailed { status: RuntimeStatus::Completed, .. })
    ));
}
