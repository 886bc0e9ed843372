//! Failure modes and client operations, end to end on a real SQLite file.

mod common;

use common::*;
use durable_core::{Error, OrchestrationContext, Payload, RuntimeStatus};
use durable_runtime::Registry;
use durable_runtime::client::Error as ClientError;
use durable_store::{CreateInstance, InstanceQuery, PurgeFilter, Store};
use std::sync::Arc;
use std::time::Duration;

async fn waits(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    ctx.wait_for_external_event("Go").await
}

fn registry() -> Registry {
    Registry::new()
        .orchestrator("Waits", waits)
        .orchestrator("Panics", |_ctx: OrchestrationContext, _: ()| async move {
            if true {
                panic!("the orchestrator exploded");
            }
            Ok::<(), Error>(())
        })
        .orchestrator("CallsMissing", |ctx: OrchestrationContext, _: ()| async move {
            ctx.call_activity::<(), _>("NoSuchActivity", &()).await
        })
        .orchestrator("NeedsNumber", |_ctx: OrchestrationContext, n: u32| async move { Ok::<u32, Error>(n) })
        .orchestrator("ActivityFails", |ctx: OrchestrationContext, _: ()| async move {
            ctx.call_activity::<(), _>("Fails", &()).await
        })
        .orchestrator("ActivityPanics", |ctx: OrchestrationContext, _: ()| async move {
            ctx.call_activity::<(), _>("Panics", &()).await
        })
        .orchestrator("Parent", |ctx: OrchestrationContext, _: ()| async move {
            ctx.call_sub_orchestrator_with_id::<String, _>(
                "Waits",
                &format!("{}-child", ctx.instance_id()),
                &(),
            )
            .await
        })
        .activity("Fails", |_ctx, _: ()| async move { Err::<(), _>(Error::msg("the activity said no")) })
        .activity("Panics", |_ctx, _: ()| async move {
            if true {
                panic!("activity exploded");
            }
            Ok::<(), Error>(())
        })
}

fn failure(state: &durable_store::InstanceState) -> String {
    assert_eq!(state.status, RuntimeStatus::Failed, "{state:?}");
    state.failure.as_ref().unwrap().message.clone()
}

/// With `unknown_functions = "fail"`, unknown orchestrators and activities fail the instance at
/// once (the default waits for a node that has them: see `restart.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_end_the_instance_with_a_clear_message_and_nothing_else() {
    let fail = durable_runtime::RuntimeOptions {
        unknown_functions: durable_runtime::UnknownFunctions::Fail,
        ..options()
    };
    let node = TestNode::start_in(tempfile::tempdir().unwrap(), registry(), fail);
    let client = node.client();
    let healthy = client.start("Waits", &()).await.unwrap();

    let id = client.start("Panics", &()).await.unwrap();
    assert_eq!(
        failure(&node.finish(&id).await),
        "[DT0005] the orchestrator panicked: the orchestrator exploded"
    );

    let id = client.start("CallsMissing", &()).await.unwrap();
    assert!(failure(&node.finish(&id).await).starts_with("[DT0003] no activity named 'NoSuchActivity'"));

    let id = client.start("NeedsNumber", &"not a number").await.unwrap();
    assert!(failure(&node.finish(&id).await).starts_with("[DT0004] the input of orchestrator 'NeedsNumber'"));

    let id = client.start("ActivityFails", &()).await.unwrap();
    let done = node.finish(&id).await;
    assert_eq!(failure(&done), "the activity said no");
    assert_eq!(done.failure.unwrap().error_type, "ActivityError");

    let id = client.start("ActivityPanics", &()).await.unwrap();
    assert_eq!(failure(&node.finish(&id).await), "[DT0007] the activity panicked: activity exploded");

    // An instance of an orchestrator this node does not know (started by another node).
    node.store
        .create_instance(CreateInstance {
            instance_id: "foreign".into(),
            name: "Unknown".into(),
            execution_id: "e1".into(),
            input: None,
            parent: None,
            created_at: jiff::Timestamp::now(),
            trace: None,
        })
        .await
        .unwrap();
    assert!(failure(&node.finish("foreign").await).starts_with("[DT0002] no orchestrator named 'Unknown'"));

    // The node kept working through all of it.
    client.raise_event(&healthy, "Go", "fine").await.unwrap();
    assert_eq!(output::<String>(&node.finish(&healthy).await), "fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_code_is_detected_as_nondeterminism_after_a_restart() {
    async fn v1(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
        ctx.call_activity::<(), _>("A", &()).await?;
        ctx.wait_for_external_event("Go").await
    }
    async fn v2(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
        ctx.call_activity::<(), _>("B", &()).await?;
        ctx.wait_for_external_event("Go").await
    }
    let ok = |_ctx, _: ()| async move { Ok::<(), Error>(()) };
    let node = TestNode::start(Registry::new().orchestrator("V", v1).activity("A", ok).activity("B", ok));
    let id = node.client().start("V", &()).await.unwrap();
    wait_for_history(&node.client(), &id, "TaskCompleted").await;
    let node = node.restart(Registry::new().orchestrator("V", v2).activity("A", ok).activity("B", ok)).await;
    node.client().raise_event(&id, "Go", "x").await.unwrap();
    let done = node.finish(&id).await;
    assert_eq!(
        failure(&done),
        "[DT0001] nondeterminism: expected ScheduleActivity(\"A\") at position 0, got ScheduleActivity(\"B\")"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_dedupes_and_restart_reuses_finished_ids() {
    let node = TestNode::start(registry());
    let client = node.client();
    client.start_with_id("Waits", "single", &()).await.unwrap();
    let err = client.start_with_id("Waits", "single", &()).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::AlreadyExists { status: RuntimeStatus::Pending | RuntimeStatus::Running, .. }
        ),
        "{err}"
    );
    client.raise_event("single", "Go", "one").await.unwrap();
    assert_eq!(output::<String>(&node.finish("single").await), "one");
    // A finished instance may be started again under the same id.
    client.start_with_id("Waits", "single", &()).await.unwrap();
    client.raise_event("single", "Go", "two").await.unwrap();
    assert_eq!(output::<String>(&node.finish("single").await), "two");
    // Restart: same orchestrator and input under a new id.
    let again = client.restart("single", true).await.unwrap();
    assert_ne!(again, "single");
    assert_eq!(client.status(&again).await.unwrap().unwrap().name, "Waits");

    assert!(matches!(client.start("Nope", &()).await.unwrap_err(), ClientError::UnknownOrchestrator { .. }));
    assert!(matches!(
        client.start_with_id("Waits", "a/b", &()).await.unwrap_err(),
        ClientError::InvalidInstanceId(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_events_checks_the_instance() {
    let node = TestNode::start(registry());
    let client = node.client();
    assert!(matches!(client.raise_event("missing", "Go", &1).await.unwrap_err(), ClientError::NotFound(_)));
    let id = client.start("Waits", &()).await.unwrap();
    client.raise_event(&id, "Go", "x").await.unwrap();
    node.finish(&id).await;
    let err = client.raise_event(&id, "Go", "late").await.unwrap_err();
    assert!(matches!(err, ClientError::InstanceFinished { status: RuntimeStatus::Completed, .. }), "{err}");
    assert!(matches!(client.raise_event(&id, "", "x").await.unwrap_err(), ClientError::InvalidEventName(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_is_recursive_and_suspend_resume_work() {
    let node = TestNode::start(registry());
    let client = node.client();
    let parent = client.start("Parent", &()).await.unwrap();
    let child = format!("{parent}-child");
    eventually("the child to run", || async {
        client.status(&child).await.unwrap().is_some_and(|s| s.status == RuntimeStatus::Running)
    })
    .await;
    client.terminate(&parent, Some("enough")).await.unwrap();
    let done = node.finish(&parent).await;
    assert_eq!(done.status, RuntimeStatus::Terminated);
    assert_eq!(done.output.unwrap().decode::<String>().unwrap(), "enough");
    assert_eq!(node.finish(&child).await.status, RuntimeStatus::Terminated);
    assert!(matches!(
        client.terminate(&parent, None).await.unwrap_err(),
        ClientError::InstanceFinished { .. }
    ));

    let id = client.start("Waits", &()).await.unwrap();
    client.suspend(&id, Some("hold on")).await.unwrap();
    eventually("suspended", || async {
        client.status(&id).await.unwrap().unwrap().status == RuntimeStatus::Suspended
    })
    .await;
    client.suspend(&id, None).await.expect("a redundant suspend is accepted and changes nothing");
    client.raise_event(&id, "Go", "while suspended").await.unwrap();
    wait_for_history(&client, &id, "EventRaised").await;
    assert_eq!(client.status(&id).await.unwrap().unwrap().status, RuntimeStatus::Suspended);
    client.resume(&id, None).await.unwrap();
    assert_eq!(output::<String>(&node.finish(&id).await), "while suspended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_and_list() {
    let node = TestNode::start(registry());
    let client = node.client();
    let mut finished = Vec::new();
    for i in 0..5 {
        let id = client.start_with_id("Waits", &format!("batch-{i}"), &()).await.unwrap();
        client.raise_event(&id, "Go", &i.to_string()).await.unwrap();
        finished.push(id);
    }
    for id in &finished {
        node.finish(id).await;
    }
    let running = client.start_with_id("Waits", "other-running", &()).await.unwrap();

    // Paging through everything with a continuation token.
    let mut seen = Vec::new();
    let mut query = InstanceQuery { page_size: 2, include_input: true, ..Default::default() };
    loop {
        let page = client.list(&query).await.unwrap();
        seen.extend(page.instances.into_iter().map(|s| s.instance_id));
        match page.continuation {
            Some(token) => query.continuation = Some(token),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    let prefixed = client
        .list(&InstanceQuery {
            instance_id_prefix: Some("batch-".into()),
            statuses: vec![RuntimeStatus::Completed],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(prefixed.instances.len(), 5);

    assert!(matches!(client.purge(&running, false).await.unwrap_err(), ClientError::Conflict(_)));
    assert_eq!(client.purge(&finished[0], false).await.unwrap(), 1);
    assert!(client.status(&finished[0]).await.unwrap().is_none());
    assert!(matches!(client.purge(&finished[0], false).await.unwrap_err(), ClientError::NotFound(_)));
    assert_eq!(client.purge_by(&PurgeFilter::default()).await.unwrap(), 4);
    assert!(client.status(&running).await.unwrap().is_some(), "running instances are not purged by default");
    assert_eq!(client.purge(&running, true).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_limits_are_enforced_with_clear_errors() {
    let registry = Registry::new()
        .orchestrator("Big", |ctx: OrchestrationContext, n: usize| async move {
            ctx.call_activity::<String, _>("Make", &n).await
        })
        .activity("Make", |_ctx, n: usize| async move { Ok::<_, Error>("x".repeat(n)) });
    let options = durable_runtime::RuntimeOptions { max_payload_bytes: 4096, ..options() };
    let node = TestNode::start_in(tempfile::tempdir().unwrap(), registry, options);
    let client = node.client();
    let id = client.start("Big", &10usize).await.unwrap();
    assert_eq!(output::<String>(&node.finish(&id).await).len(), 10);
    let id = client.start("Big", &5000usize).await.unwrap();
    let message = failure(&node.finish(&id).await);
    assert!(message.starts_with("[DT0008] the output of activity 'Make' is 5002 bytes"), "{message}");
    let err = client.start("Big", &"y".repeat(5000)).await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidInput(ref m) if m.contains("DT0008")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_completion_times_out_and_large_payloads_round_trip() {
    let node = TestNode::start(registry());
    let client = node.client();
    let id = client.start("Waits", &()).await.unwrap();
    let err = client.wait_for_completion(&id, Duration::from_millis(100)).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }));
    let big = "x".repeat(1 << 20);
    client.raise_event_raw(&id, "Go", Some(Payload::from_value(&big).unwrap())).await.unwrap();
    assert_eq!(output::<String>(&node.finish(&id).await).len(), 1 << 20);
}

/// An event hook's output is what gets stored, so it must fit the payload limit as well: too
/// large is refused with a clear error whether the event is queued or delivered directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_hook_output_over_the_limit_is_refused() {
    let inflate: durable_runtime::EventHook = Arc::new(|_id: &str, _data: Option<Payload>| {
        Ok(Some(Payload::from_value(&"x".repeat(5000)).unwrap()))
    });
    let registry = Registry::new()
        .orchestrator("Hooked", |ctx: OrchestrationContext, _: ()| async move {
            ctx.wait_for_external_event::<String>("Other").await?;
            ctx.wait_for_external_event::<String>("Guess").await
        })
        .with_event_hook("Hooked", "Guess", inflate);
    let options = durable_runtime::RuntimeOptions { max_payload_bytes: 4096, ..options() };
    let node = TestNode::start_in(tempfile::tempdir().unwrap(), registry, options);
    let client = node.client();
    let id = client.start("Hooked", &()).await.unwrap();
    let guess = || Some(Payload::from_value("1").unwrap());
    let refused = |err: ClientError| {
        assert!(
            matches!(err, ClientError::InvalidInput(ref m) if m.contains("after its hook") && m.contains("DT0008")),
            "{err}"
        );
    };
    // Not awaited yet: the event would be queued.
    wait_for_history(&client, &id, "ExecutionStarted").await;
    refused(client.raise_event_raw(&id, "Guess", guess()).await.unwrap_err());
    // Awaited by the cached execution: the event would be delivered directly.
    client.raise_event_raw(&id, "Other", Some(Payload::from_value("ok").unwrap())).await.unwrap();
    wait_for_history(&client, &id, "EventRaised").await;
    refused(client.raise_event_raw(&id, "Guess", guess()).await.unwrap_err());
    let state = client.status(&id).await.unwrap().unwrap();
    assert_eq!(state.status, RuntimeStatus::Running, "no Guess was delivered");
}

/// Event names compare case-insensitively everywhere, with one normalisation: an event raised
/// under a name that differs from the hooked one only in the case of a non-ASCII letter still
/// goes through the hook (it would otherwise reach the orchestrator, which matches it, with its
/// raw data stored in history).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_name_in_another_case_cannot_bypass_its_hook() {
    let hook: durable_runtime::EventHook =
        Arc::new(|_id: &str, _data: Option<Payload>| Ok(Some(Payload::from_value("hooked").unwrap())));
    let registry = Registry::new()
        .orchestrator("Hooked", |ctx: OrchestrationContext, _: ()| async move {
            ctx.wait_for_external_event::<String>("Ärger").await
        })
        .with_event_hook("Hooked", "Ärger", hook);
    let node = TestNode::start(registry);
    let client = node.client();
    let id = client.start("Hooked", &()).await.unwrap();
    // Queued before anyone waits (not delivered directly), under an upper-case Ä.
    client.raise_event_raw(&id, "ÄRGER", Some(Payload::from_value("secret").unwrap())).await.unwrap();
    assert_eq!(output::<String>(&node.finish(&id).await), "hooked");
    let history = serde_json::to_string(&client.history(&id).await.unwrap()).unwrap();
    assert!(!history.contains("secret"), "the raw data reached history: {history}");
}

/// An event reaches history exactly once even when the direct delivery's commit landed but was
/// reported as failed (a connection lost during COMMIT): the client then queues the event too,
/// and the execution drops the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_delivery_whose_commit_landed_but_failed_is_recorded_once() {
    use common::faulty::LandedButFailed;
    use std::sync::atomic::Ordering;
    async fn two(ctx: OrchestrationContext, _: ()) -> Result<(u32, u32), Error> {
        let a: u32 = ctx.wait_for_external_event("Go").await?;
        let b: u32 = ctx.wait_for_external_event("Go").await?;
        Ok((a, b))
    }
    let dir = tempfile::tempdir().unwrap();
    let sqlite = durable_store_sqlite::SqliteStore::open(durable_store_sqlite::SqliteStoreOptions::new(
        dir.path().join("durable.db"),
    ))
    .unwrap();
    let store = Arc::new(LandedButFailed::new(Arc::new(sqlite)));
    let runtime =
        durable_runtime::Runtime::start(store.clone(), Registry::new().orchestrator("Two", two), options())
            .unwrap();
    let client = runtime.client();
    let id = client.start("Two", &()).await.unwrap();
    wait_for_history(&client, &id, "ExecutionStarted").await;

    store.armed.store(true, Ordering::SeqCst);
    client.raise_event(&id, "Go", &1).await.unwrap();
    assert!(
        !store.armed.load(Ordering::SeqCst),
        "the event went the direct way (its commit was the armed one)"
    );
    // The copy was queued before `raise_event` returned, so it is ahead of the second event in
    // the inbox: had it been recorded, the second wait would have taken it.
    client.raise_event(&id, "Go", &2).await.unwrap();
    let done = client.wait_for_completion(&id, DEADLINE).await.unwrap();
    assert_eq!(output::<(u32, u32)>(&done), (1, 2), "the first event was delivered twice");
    let history = client.history(&id).await.unwrap();
    let raised = history.iter().filter(|e| e.kind.type_name() == "EventRaised").count();
    assert_eq!(raised, 2, "{history:?}");
    runtime.shutdown().await;
}

/// Lifecycle requests apply in the order they were accepted: a resume sent right after a
/// suspend (before the suspend was processed) is accepted and applied after it, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_then_resume_back_to_back_apply_in_order() {
    let node = TestNode::start(registry());
    let client = node.client();
    for trial in 0..20 {
        let id = client.start("Waits", &()).await.unwrap();
        wait_for_history(&client, &id, "ExecutionStarted").await;
        client.suspend(&id, None).await.unwrap();
        client.resume(&id, None).await.unwrap_or_else(|e| panic!("trial {trial}: resume refused: {e}"));
        wait_for_history(&client, &id, "ExecutionResumed").await;
        client.raise_event(&id, "Go", "on").await.unwrap();
        assert_eq!(output::<String>(&node.finish(&id).await), "on", "trial {trial}");
    }
    // Redundant requests are accepted and change nothing.
    let id = client.start("Waits", &()).await.unwrap();
    client.resume(&id, None).await.unwrap();
    client.raise_event(&id, "Go", "still running").await.unwrap();
    assert_eq!(output::<String>(&node.finish(&id).await), "still running");
}
