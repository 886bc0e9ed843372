//! Client operations: create, send, status, history, query, purge, completion listeners, close.

use super::*;
use crate::{Cursor, Error, NewTimer};
use durable_core::ParentInstance;

/// `create_instance` writes a Pending status row and enqueues exactly its `ExecutionStarted`.
pub async fn create_instance_enqueues_start_and_reads_back<S: Store>(store: S) {
    let req = create_request("c1", "Greeter");
    store.create_instance(req.clone()).await.unwrap();

    let st = store.get_instance("c1").await.unwrap().expect("instance exists");
    assert_eq!(st.instance_id, "c1");
    assert_eq!(st.name, "Greeter");
    assert_eq!(st.execution_id, "e1");
    assert_eq!(st.status, RuntimeStatus::Pending);
    assert_eq!(st.input, req.input);
    assert_eq!((st.output, st.failure, st.custom_status), (None, None, None));
    assert_eq!(st.created_at, req.created_at);
    assert_eq!(st.completed_at, None);
    assert_eq!(st.parent_instance_id, None);
    assert_eq!(st.history_len, 0);
    assert!(store.read_history("c1").await.unwrap().is_empty());
    assert!(store.get_instance("nope").await.unwrap().is_none());
    assert!(matches!(store.read_history("nope").await, Err(Error::NotFound { .. })));

    let item = fetch_for(&store, "c1", LONG).await;
    assert_eq!(item.instance.status, RuntimeStatus::Pending);
    assert_eq!(item.messages.len(), 1);
    assert_eq!(item.messages[0].event, req.start_event());
    assert_eq!(item.messages[0].execution_id.as_deref().unwrap_or("e1"), "e1");
}

/// Creating over an unfinished instance fails with `AlreadyExists` (nothing changes); over a
/// finished one it replaces the instance, its history and its queues.
pub async fn create_rejects_running_and_replaces_finished<S: Store>(store: S) {
    store.create_instance(create_request("c2", "A")).await.unwrap();
    match store.create_instance(create_request("c2", "B")).await {
        Err(Error::AlreadyExists { instance_id, status }) => {
            assert_eq!(instance_id, "c2");
            assert_eq!(status, RuntimeStatus::Pending);
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(store.get_instance("c2").await.unwrap().unwrap().name, "A");

    // Running, with a pending timer, then finished.
    run_turn(&store, "c2", |c| {
        c.timers.push(NewTimer { timer_id: 0, fire_at: after(Duration::from_secs(3600)) });
    })
    .await;
    assert!(matches!(
        store.create_instance(create_request("c2", "B")).await,
        Err(Error::AlreadyExists { status: RuntimeStatus::Running, .. })
    ));
    terminate(&store, "c2", RuntimeStatus::Completed).await;

    let mut again = create_request("c2", "B");
    again.execution_id = "e2".into();
    again.input = Some(json("2"));
    store.create_instance(again.clone()).await.unwrap();
    let st = store.get_instance("c2").await.unwrap().unwrap();
    assert_eq!((st.name.as_str(), st.execution_id.as_str()), ("B", "e2"));
    assert_eq!(st.status, RuntimeStatus::Pending);
    assert_eq!((st.history_len, st.output, st.completed_at), (0, None, None));
    assert!(store.read_history("c2").await.unwrap().is_empty());
    let item = fetch_for(&store, "c2", LONG).await;
    assert_eq!(kinds(&item), vec![again.start_event().kind], "only the new start is queued");
}

/// `send_message` fails with `NotFound` / `InstanceFinished`, and otherwise enqueues.
pub async fn send_message_checks_existence_and_status<S: Store>(store: S) {
    match store.send_message("ghost", raised("x", "1")).await {
        Err(Error::NotFound { instance_id }) => assert_eq!(instance_id, "ghost"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(store.get_instance("ghost").await.unwrap().is_none(), "sending must not create");

    start(&store, "s1").await;
    let ev = raised("Answer", "42");
    store.send_message("s1", ev.clone()).await.unwrap();
    let item = fetch_for(&store, "s1", LONG).await;
    assert_eq!(item.messages.len(), 1);
    assert_eq!(item.messages[0].event, ev);
    assert_eq!(item.messages[0].execution_id, None, "client messages address the current execution");
    let mut c = turn_of(&item);
    c.status = RuntimeStatus::Failed;
    c.failure = Some(durable_core::FailureDetails::new("Boom", "it broke"));
    store.commit_turn(c).await.unwrap();

    match store.send_message("s1", raised("late", "1")).await {
        Err(Error::InstanceFinished { instance_id, status }) => {
            assert_eq!(instance_id, "s1");
            assert_eq!(status, RuntimeStatus::Failed);
        }
        other => panic!("expected InstanceFinished, got {other:?}"),
    }
    let st = store.get_instance("s1").await.unwrap().unwrap();
    assert_eq!(st.failure.unwrap().error_type, "Boom");
    assert!(st.completed_at.is_some());
}

/// Filters (status, name, created range, id prefix), ordering by (created, id) and paging
/// with continuation tokens until exhausted.
pub async fn query_filters_and_pages<S: Store>(store: S) {
    let base: Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
    let at = |s: i64| base.checked_add(jiff::SignedDuration::from_secs(s)).unwrap();
    // (id, name, created second); q-b-2 and q-a-3 share a creation time: the id breaks the tie.
    let specs = [
        ("q-a-1", "Alpha", 0),
        ("q-a-2", "Beta", 10),
        ("q-a-3", "Alpha", 20),
        ("q-b-2", "Alpha", 20),
        ("q-b-1", "Beta", 30),
        ("q-b-3", "Alpha", 40),
        ("q-c-1", "Gamma", 50),
        ("q-c-2", "Alpha", 60),
        ("q-a-4", "Beta", 70),
        ("q-a-5", "Alpha", 80),
        ("zz", "Alpha", 90),
    ];
    for (id, name, sec) in specs {
        let mut req = create_request(id, name);
        req.created_at = at(sec);
        store.create_instance(req).await.unwrap();
    }
    for id in ["q-a-2", "q-b-1"] {
        run_turn(&store, id, |c| c.status = RuntimeStatus::Completed).await;
    }
    run_turn(&store, "q-c-1", |_| {}).await;

    let ids = |page: &InstancePage| page.instances.iter().map(|i| i.instance_id.clone()).collect::<Vec<_>>();
    let q = |f: fn(&mut InstanceQuery)| {
        let mut q = InstanceQuery { page_size: 100, include_input: true, ..Default::default() };
        f(&mut q);
        q
    };

    let all = store.query_instances(&q(|_| {})).await.unwrap();
    assert_eq!(
        ids(&all),
        ["q-a-1", "q-a-2", "q-a-3", "q-b-2", "q-b-1", "q-b-3", "q-c-1", "q-c-2", "q-a-4", "q-a-5", "zz"]
    );
    assert_eq!(all.continuation, None);
    assert!(all.instances.iter().all(|i| i.input.is_some()));
    assert_eq!(all.instances[0].created_at, at(0));

    let done = store.query_instances(&q(|q| q.statuses = vec![RuntimeStatus::Completed])).await.unwrap();
    assert_eq!(ids(&done), ["q-a-2", "q-b-1"]);
    let mixed = store
        .query_instances(&q(|q| q.statuses = vec![RuntimeStatus::Running, RuntimeStatus::Completed]))
        .await
        .unwrap();
    assert_eq!(ids(&mixed), ["q-a-2", "q-b-1", "q-c-1"]);
    let beta = store.query_instances(&q(|q| q.name = Some("Beta".into()))).await.unwrap();
    assert_eq!(ids(&beta), ["q-a-2", "q-b-1", "q-a-4"]);
    let range = store
        .query_instances(&q(|q| {
            q.created_from = Some("2026-03-01T00:00:20Z".parse().unwrap());
            q.created_to = Some("2026-03-01T00:00:40Z".parse().unwrap());
        }))
        .await
        .unwrap();
    assert_eq!(ids(&range), ["q-a-3", "q-b-2", "q-b-1", "q-b-3"], "both bounds are inclusive");
    let prefix = store.query_instances(&q(|q| q.instance_id_prefix = Some("q-a-".into()))).await.unwrap();
    assert_eq!(ids(&prefix), ["q-a-1", "q-a-2", "q-a-3", "q-a-4", "q-a-5"]);
    let none = store.query_instances(&q(|q| q.instance_id_prefix = Some("Q-A".into()))).await.unwrap();
    assert!(none.instances.is_empty(), "the prefix is case-sensitive");
    let combined = store
        .query_instances(&q(|q| {
            q.name = Some("Alpha".into());
            q.instance_id_prefix = Some("q-".into());
            q.statuses = vec![RuntimeStatus::Pending];
        }))
        .await
        .unwrap();
    assert_eq!(ids(&combined), ["q-a-1", "q-a-3", "q-b-2", "q-b-3", "q-c-2", "q-a-5"]);

    // Paging: 4 per page, inputs left out, until the continuation runs out.
    let mut query = InstanceQuery { page_size: 4, ..Default::default() };
    let mut paged = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.query_instances(&query).await.unwrap();
        pages += 1;
        assert!(page.instances.len() <= 4);
        assert!(page.instances.iter().all(|i| i.input.is_none()), "include_input=false leaves inputs out");
        paged.extend(ids(&page));
        match page.continuation {
            Some(token) => query.continuation = Some(token),
            None => break,
        }
        assert!(pages < 10, "paging does not terminate");
    }
    assert_eq!(paged, ids(&all));
    assert_eq!(pages, 3);

    // Filters and paging combine; a page that ends exactly at the end has no continuation.
    let mut query = InstanceQuery { page_size: 3, name: Some("Beta".into()), ..Default::default() };
    let page = store.query_instances(&query).await.unwrap();
    assert_eq!(ids(&page), ["q-a-2", "q-b-1", "q-a-4"]);
    if let Some(token) = page.continuation {
        query.continuation = Some(token);
        assert!(store.query_instances(&query).await.unwrap().instances.is_empty());
    }

    let bad = InstanceQuery { continuation: Some("not-a-token".into()), ..Default::default() };
    assert!(matches!(store.query_instances(&bad).await, Err(Error::Invalid(_))));
    // A well-formed cursor past the end gives an empty last page.
    let past = Cursor { created_at: at(1000), instance_id: String::new() }.encode();
    let page = store.query_instances(&InstanceQuery { continuation: Some(past), ..Default::default() }).await;
    let page = page.unwrap();
    assert!(page.instances.is_empty() && page.continuation.is_none());
}

/// Purging an instance deletes it, its history and queues, and recursively the
/// sub-orchestrations it started, whatever their status.
pub async fn purge_instance_is_recursive<S: Store>(store: S) {
    start(&store, "root").await;
    start(&store, "bystander").await;
    let child = |id: &str, parent: &str, task_id| CreateInstance {
        parent: Some(ParentInstance { instance_id: parent.into(), execution_id: "e1".into(), task_id }),
        ..create_request(id, "Child")
    };
    store.send_message("root", raised("go", "1")).await.unwrap();
    run_turn(&store, "root", |c| {
        c.new_instances.push(child("root:0", "root", 0));
        c.new_instances.push(child("root:1", "root", 1));
    })
    .await;
    run_turn(&store, "root:0", |c| c.new_instances.push(child("root:0:0", "root:0", 0))).await;
    assert_eq!(
        store.get_instance("root:0:0").await.unwrap().unwrap().parent_instance_id.as_deref(),
        Some("root:0")
    );

    assert_eq!(store.purge_instance("root").await.unwrap(), 4);
    for id in ["root", "root:0", "root:1", "root:0:0"] {
        assert!(store.get_instance(id).await.unwrap().is_none(), "{id} is purged");
        assert!(matches!(store.read_history(id).await, Err(Error::NotFound { .. })));
        assert!(matches!(store.send_message(id, raised("x", "1")).await, Err(Error::NotFound { .. })));
    }
    // Nothing of theirs is dispatched any more (root:0:0 had its start queued).
    for item in fetch_all(&store, LONG).await {
        assert!(!item.lease.instance_id.starts_with("root"), "purged work was dispatched: {item:?}");
    }
    assert_eq!(store.get_instance("bystander").await.unwrap().unwrap().history_len, 2);
    assert_eq!(store.purge_instance("root").await.unwrap(), 0);
    assert_eq!(store.purge_instance("never-was").await.unwrap(), 0);
}

/// `purge_instances` deletes what matches (terminal statuses by default) and nothing else.
pub async fn purge_instances_by_filter<S: Store>(store: S) {
    let base: Timestamp = "2026-04-01T00:00:00Z".parse().unwrap();
    let at = |s: i64| base.checked_add(jiff::SignedDuration::from_secs(s)).unwrap();
    for (id, sec) in [("p1", 10), ("p2", 20), ("p3", 30), ("p4", 40), ("p5", 50), ("p6", 500)] {
        let mut req = create_request(id, "P");
        req.created_at = at(sec);
        store.create_instance(req).await.unwrap();
    }
    for id in ["p1", "p2", "p6"] {
        run_turn(&store, id, |c| c.status = RuntimeStatus::Completed).await;
    }
    run_turn(&store, "p3", |c| c.status = RuntimeStatus::Failed).await;
    run_turn(&store, "p4", |_| {}).await; // Running; p5 stays Pending

    let in_range = PurgeFilter { created_from: Some(at(0)), created_to: Some(at(100)), statuses: vec![] };
    assert_eq!(store.purge_instances(&in_range).await.unwrap(), 3, "p1, p2 (Completed) and p3 (Failed)");
    for (id, exists) in
        [("p1", false), ("p2", false), ("p3", false), ("p4", true), ("p5", true), ("p6", true)]
    {
        assert_eq!(store.get_instance(id).await.unwrap().is_some(), exists, "{id}");
    }
    let running = PurgeFilter { statuses: vec![RuntimeStatus::Running], ..Default::default() };
    assert_eq!(store.purge_instances(&running).await.unwrap(), 1);
    assert!(store.get_instance("p4").await.unwrap().is_none());
    assert_eq!(store.purge_instances(&PurgeFilter::default()).await.unwrap(), 1, "p6, any time");
    assert_eq!(store.purge_instances(&PurgeFilter::default()).await.unwrap(), 0);
    assert!(store.get_instance("p5").await.unwrap().is_some());
}

/// Payloads of 1 MiB go through inputs, events, history, activities and outputs unchanged.
pub async fn large_payloads_round_trip<S: Store>(store: S) {
    let big = |c: char| Payload::from_value(&c.to_string().repeat(1 << 20)).unwrap();
    let mut req = create_request("big", "Big");
    req.input = Some(big('i'));
    store.create_instance(req.clone()).await.unwrap();
    assert_eq!(store.get_instance("big").await.unwrap().unwrap().input, req.input);

    let item = fetch_for(&store, "big", LONG).await;
    assert_eq!(item.messages[0].event, req.start_event());
    let mut c = turn_of(&item);
    c.activities.push(crate::NewActivity { task_id: 0, name: "Echo".into(), input: Some(big('a')) });
    c.custom_status = Some(big('s'));
    store.commit_turn(c.clone()).await.unwrap();
    assert_eq!(store.read_history("big").await.unwrap(), c.history);

    let act = poll!("the activity", store.wait_for_activity_work(POLL).await, {
        store.fetch_activity_work(1, LONG).await.unwrap().pop()
    });
    assert_eq!(act.input, Some(big('a')));
    store.complete_activity(&act.lease, ActivityOutcome::Completed(Some(big('r')))).await.unwrap();
    let ev = HistoryEvent::new(
        now(),
        EventKind::EventRaised { name: "E".into(), input: Some(big('e')), id: None },
    );
    store.send_message("big", ev.clone()).await.unwrap();

    let item = fetch_for(&store, "big", LONG).await;
    assert_eq!(item.instance.custom_status, Some(big('s')));
    assert_eq!(item.messages.len(), 2);
    assert!(
        matches!(&item.messages[0].event.kind, EventKind::TaskCompleted { task_id: 0, result } if *result == Some(big('r')))
    );
    assert_eq!(item.messages[1].event, ev);
    let mut c = turn_of(&item);
    c.status = RuntimeStatus::Completed;
    c.output = Some(big('o'));
    store.commit_turn(c).await.unwrap();
    assert_eq!(store.get_instance("big").await.unwrap().unwrap().output, Some(big('o')));
}

/// A listener registered before the terminal commit resolves after it.
pub async fn listen_for_completion_fires_on_terminal_commit<S: Store>(store: S) {
    start(&store, "l1").await;
    let rx = store.listen_for_completion("l1");
    let other = store.listen_for_completion("l-other");
    assert_eq!(store.get_instance("l1").await.unwrap().unwrap().status, RuntimeStatus::Running);
    terminate(&store, "l1", RuntimeStatus::Terminated).await;
    tokio::time::timeout(DEADLINE, rx).await.expect("listener fired").expect("sender kept until fired");
    assert_eq!(store.get_instance("l1").await.unwrap().unwrap().status, RuntimeStatus::Terminated);
    drop(other);
}

/// After `close`, operations fail with `Unavailable`; accepted writes were kept.
pub async fn close_rejects_further_calls<S: Store>(store: S) {
    store.create_instance(create_request("x1", "X")).await.unwrap();
    store.close().await.unwrap();
    assert!(matches!(store.create_instance(create_request("x2", "X")).await, Err(Error::Unavailable(_))));
    assert!(matches!(store.send_message("x1", raised("a", "1")).await, Err(Error::Unavailable(_))));
    assert!(matches!(store.fetch_orchestration_work(1, LONG).await, Err(Error::Unavailable(_))));
    // Waiting on a closed store returns instead of hanging.
    tokio::time::timeout(DEADLINE, store.wait_for_orchestration_work(Duration::from_secs(3600)))
        .await
        .expect("wait returns on a closed store");
}
