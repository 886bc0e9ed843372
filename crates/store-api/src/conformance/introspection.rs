//! What operators look at: newest-first paging, status counts and readiness.

use super::*;
use crate::{NewExecution, StatusCounts};
use durable_core::ParentInstance;

/// `newest_first` reverses the order (created time, then id, both descending), pages with
/// continuation tokens to the oldest instance, and combines with every filter; the id prefix
/// is an exact, byte-wise prefix (no wildcards, case-sensitive).
pub async fn query_newest_first_pages_to_the_oldest<S: Store>(store: S) {
    let base: Timestamp = "2026-04-01T00:00:00Z".parse().unwrap();
    let at = |s: i64| base.checked_add(jiff::SignedDuration::from_secs(s)).unwrap();
    // (id, name, created second); n-b and n-c share a creation time: the id breaks the tie.
    let specs = [
        ("n-a", "Alpha", 0),
        ("n-b", "Beta", 10),
        ("n-c", "Alpha", 10),
        ("n_d", "Alpha", 20),
        ("n%e", "Beta", 30),
        ("n-f", "Alpha", 40),
        ("N-g", "Alpha", 50),
        ("n-h", "Alpha", 60),
    ];
    for (id, name, sec) in specs {
        let mut req = create_request(id, name);
        req.created_at = at(sec);
        store.create_instance(req).await.unwrap();
    }
    run_turn(&store, "n-c", |c| c.status = RuntimeStatus::Completed).await;
    run_turn(&store, "n-f", |c| c.status = RuntimeStatus::Completed).await;

    let ids = |page: &InstancePage| page.instances.iter().map(|i| i.instance_id.clone()).collect::<Vec<_>>();
    let newest = |f: fn(&mut InstanceQuery)| {
        let mut q = InstanceQuery { page_size: 100, newest_first: true, ..Default::default() };
        f(&mut q);
        q
    };
    let all = store.query_instances(&newest(|_| {})).await.unwrap();
    assert_eq!(ids(&all), ["n-h", "N-g", "n-f", "n%e", "n_d", "n-c", "n-b", "n-a"]);
    assert_eq!(all.continuation, None);

    // Paging 3 at a time visits every instance once, in the same order.
    let mut query = InstanceQuery { page_size: 3, newest_first: true, ..Default::default() };
    let mut paged = Vec::new();
    for pages in 1.. {
        let page = store.query_instances(&query).await.unwrap();
        assert!(page.instances.len() <= 3);
        paged.extend(ids(&page));
        match page.continuation {
            Some(token) => query.continuation = Some(token),
            None => break,
        }
        assert!(pages < 10, "paging does not terminate");
    }
    assert_eq!(paged, ids(&all));

    let done = store.query_instances(&newest(|q| q.statuses = vec![RuntimeStatus::Completed])).await.unwrap();
    assert_eq!(ids(&done), ["n-f", "n-c"]);
    let mixed = store
        .query_instances(&newest(|q| q.statuses = vec![RuntimeStatus::Completed, RuntimeStatus::Pending]))
        .await
        .unwrap();
    assert_eq!(ids(&mixed), ids(&all), "several statuses still come out in one order");
    let mut query = InstanceQuery {
        page_size: 2,
        newest_first: true,
        statuses: vec![RuntimeStatus::Pending, RuntimeStatus::Completed],
        ..Default::default()
    };
    let mut paged = Vec::new();
    loop {
        let page = store.query_instances(&query).await.unwrap();
        paged.extend(ids(&page));
        match page.continuation {
            Some(token) => query.continuation = Some(token),
            None => break,
        }
    }
    assert_eq!(paged, ids(&all), "paging through several statuses");
    let beta = store.query_instances(&newest(|q| q.name = Some("Beta".into()))).await.unwrap();
    assert_eq!(ids(&beta), ["n%e", "n-b"]);
    let range = store
        .query_instances(&newest(|q| {
            q.created_from = Some("2026-04-01T00:00:10Z".parse().unwrap());
            q.created_to = Some("2026-04-01T00:00:30Z".parse().unwrap());
        }))
        .await
        .unwrap();
    assert_eq!(ids(&range), ["n%e", "n_d", "n-c", "n-b"]);
    let prefix = store.query_instances(&newest(|q| q.instance_id_prefix = Some("n-".into()))).await.unwrap();
    assert_eq!(ids(&prefix), ["n-h", "n-f", "n-c", "n-b", "n-a"], "exact and case-sensitive");
    let underscore = store.query_instances(&newest(|q| q.instance_id_prefix = Some("n_".into()))).await;
    assert_eq!(ids(&underscore.unwrap()), ["n_d"], "_ is not a wildcard");
    let percent = store.query_instances(&newest(|q| q.instance_id_prefix = Some("n%".into()))).await;
    assert_eq!(ids(&percent.unwrap()), ["n%e"], "% is not a wildcard");
    let whole = store.query_instances(&newest(|q| q.instance_id_prefix = Some("n-h".into()))).await;
    assert_eq!(ids(&whole.unwrap()), ["n-h"], "an id is a prefix of itself");
    let combined = store
        .query_instances(&newest(|q| {
            q.name = Some("Alpha".into());
            q.instance_id_prefix = Some("n-".into());
            q.statuses = vec![RuntimeStatus::Pending];
        }))
        .await
        .unwrap();
    assert_eq!(ids(&combined), ["n-h", "n-a"]);

    // Oldest first is unchanged.
    let oldest = store.query_instances(&InstanceQuery { page_size: 100, ..Default::default() }).await;
    let mut reversed = ids(&all);
    reversed.reverse();
    assert_eq!(ids(&oldest.unwrap()), reversed);
}

fn counts(pairs: &[(RuntimeStatus, u64)]) -> StatusCounts {
    StatusCounts::from_pairs(pairs.iter().copied())
}

/// `count_instances` follows every way a status changes: create, turns, continue-as-new,
/// sub-orchestrations, replacing a finished instance, purging one or many.
pub async fn count_instances_follows_every_status_change<S: Store>(store: S) {
    use RuntimeStatus::*;
    assert_eq!(store.count_instances().await.unwrap(), StatusCounts::default());
    for id in ["k1", "k2", "k3", "k4"] {
        store.create_instance(create_request(id, "Orch")).await.unwrap();
    }
    assert_eq!(store.count_instances().await.unwrap(), counts(&[(Pending, 4)]));

    run_turn(&store, "k1", |_| {}).await;
    run_turn(&store, "k2", |c| {
        c.new_instances.push(CreateInstance {
            parent: Some(ParentInstance { instance_id: "k2".into(), execution_id: "e1".into(), task_id: 0 }),
            ..create_request("k2:0", "Child")
        });
    })
    .await;
    run_turn(&store, "k3", |c| c.status = Completed).await;
    assert_eq!(store.count_instances().await.unwrap(), counts(&[(Pending, 2), (Running, 2), (Completed, 1)]));

    // Continue-as-new, then the new execution's first turn.
    store.send_message("k1", raised("again", "1")).await.unwrap();
    run_turn(&store, "k1", |c| {
        c.status = ContinuedAsNew;
        let start = HistoryEvent::new(
            c.now,
            EventKind::ExecutionStarted { name: "Orch".into(), input: None, parent: None, trace: None },
        );
        c.continue_as_new =
            Some(NewExecution { execution_id: "e2".into(), input: None, start, carried_events: Vec::new() });
    })
    .await;
    assert_eq!(store.count_instances().await.unwrap().get(ContinuedAsNew), 1);
    run_turn(&store, "k1", |_| {}).await;
    terminate(&store, "k2", Failed).await;
    assert_eq!(
        store.count_instances().await.unwrap(),
        counts(&[(Pending, 2), (Running, 1), (Completed, 1), (Failed, 1)])
    );

    // Replacing a finished instance moves it back to Pending.
    let mut again = create_request("k3", "Orch");
    again.execution_id = "e2".into();
    store.create_instance(again).await.unwrap();
    assert_eq!(store.count_instances().await.unwrap(), counts(&[(Pending, 3), (Running, 1), (Failed, 1)]));

    // Purging one (recursively: k2's child goes too) and many.
    assert_eq!(store.purge_instance("k2").await.unwrap(), 2);
    assert_eq!(store.count_instances().await.unwrap(), counts(&[(Pending, 2), (Running, 1)]));
    run_turn(&store, "k4", |c| c.status = Terminated).await;
    let purged = store.purge_instances(&PurgeFilter::default()).await.unwrap();
    assert_eq!(purged, 1);
    assert_eq!(store.count_instances().await.unwrap(), counts(&[(Pending, 1), (Running, 1)]));
    let listed = store.query_instances(&InstanceQuery::default()).await.unwrap().instances.len();
    assert_eq!(store.count_instances().await.unwrap().total(), listed as u64, "counts match the rows");
}

/// `check_ready` answers `Ok` while the store is open and an error once it is closed.
pub async fn check_ready_until_closed<S: Store>(store: S) {
    store.check_ready().await.expect("an open store is ready");
    store.close().await.unwrap();
    assert!(store.check_ready().await.is_err(), "a closed store is not ready");
    assert!(matches!(store.count_instances().await, Err(crate::Error::Unavailable(_))));
}
