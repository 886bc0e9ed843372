//! Rate limits: charged atomically with the create, refused without writing, refunded, shared
//! by concurrent callers; and the ready backlog.

use super::*;
use crate::{Error, LimitCharge, LimitRefund, Rate};

fn charge(key: &str, max: u32, cost: u32, reference: Option<&str>) -> LimitCharge {
    LimitCharge {
        key: key.into(),
        limit: format!("{key} limit"),
        rate: Rate::new(max, Duration::from_secs(3600)),
        cost,
        reference: reference.map(str::to_owned),
    }
}

/// A limited create charges every limit and creates the instance in one transaction; a refused
/// one writes nothing (no instance, no charge on the limits that had room), and says which
/// limit refused and how long to wait.
pub async fn limited_create_is_all_or_nothing<S: Store>(store: S) {
    for id in ["l1", "l2"] {
        let charges = vec![charge("number", 2, 1, Some(id)), charge("client", 10, 1, None)];
        store.create_instance_limited(create_request(id, "V"), charges).await.unwrap();
    }
    assert_eq!(store.limit_reference("number").await.unwrap().as_deref(), Some("l2"));
    assert_eq!(store.limit_reference("client").await.unwrap(), None, "no reference given");
    assert_eq!(store.limit_reference("never-charged").await.unwrap(), None);

    let refused = store
        .create_instance_limited(
            create_request("l3", "V"),
            vec![charge("client", 10, 1, None), charge("number", 2, 1, Some("l3"))],
        )
        .await;
    match refused {
        Err(Error::RateLimited(r)) => {
            assert_eq!(r.limit, "number limit");
            assert_eq!(r.rate, Rate::new(2, Duration::from_secs(3600)));
            // One unit comes back every 30 min.
            assert!(
                r.retry_after > Duration::from_secs(1700) && r.retry_after <= Duration::from_secs(1800),
                "{r}"
            );
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(store.get_instance("l3").await.unwrap().is_none(), "a refused start creates nothing");
    assert_eq!(store.limit_reference("number").await.unwrap().as_deref(), Some("l2"));
    // "client" was not charged by the refused start: 8 of its 10 units are still there.
    let eight = (0..8).map(|i| format!("c{i}")).collect::<Vec<_>>();
    for id in &eight {
        store
            .create_instance_limited(create_request(id, "V"), vec![charge("client", 10, 1, None)])
            .await
            .unwrap();
    }
    assert!(matches!(
        store.create_instance_limited(create_request("c9", "V"), vec![charge("client", 10, 1, None)]).await,
        Err(Error::RateLimited(_))
    ));

    // A create refused for its own reason keeps no charge either.
    assert!(matches!(
        store
            .create_instance_limited(create_request("l1", "V"), vec![charge("fresh", 1, 1, Some("x"))])
            .await,
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(store.limit_reference("fresh").await.unwrap(), None, "the charge was rolled back");
    store
        .create_instance_limited(create_request("f1", "V"), vec![charge("fresh", 1, 1, None)])
        .await
        .unwrap();
}

/// Refunds give units back (never more than the full budget) to keys that used more than half
/// their budget; unknown keys are ignored.
pub async fn refunds_give_units_back<S: Store>(store: S) {
    let rate = Rate::new(4, Duration::from_secs(3600));
    let c = |cost| LimitCharge { rate, ..charge("answers", 4, cost, None) };
    store.create_instance_limited(create_request("r1", "V"), vec![c(4)]).await.unwrap();
    assert!(matches!(
        store.create_instance_limited(create_request("r2", "V"), vec![c(1)]).await,
        Err(Error::RateLimited(_))
    ));
    store
        .refund_limits(vec![
            LimitRefund { key: "answers".into(), rate, units: 1 },
            LimitRefund { key: "answers".into(), rate, units: 2 },
            LimitRefund { key: "unknown".into(), rate, units: 9 },
        ])
        .await
        .unwrap();
    store.create_instance_limited(create_request("r2", "V"), vec![c(3)]).await.unwrap();
    assert!(matches!(
        store.create_instance_limited(create_request("r3", "V"), vec![c(1)]).await,
        Err(Error::RateLimited(_))
    ));
    // A refund larger than what was used only restores the full budget.
    store.refund_limits(vec![LimitRefund { key: "answers".into(), rate, units: 100 }]).await.unwrap();
    store.create_instance_limited(create_request("r3", "V"), vec![c(4)]).await.unwrap();
    assert!(store.create_instance_limited(create_request("r4", "V"), vec![c(1)]).await.is_err());
    assert_eq!(store.limit_reference("unknown").await.unwrap(), None, "refunds create no rows");

    // With half its budget or more left, a key gets nothing back (and its row is not written).
    let half = |cost| LimitCharge { rate, ..charge("half", 4, cost, None) };
    store.create_instance_limited(create_request("h1", "V"), vec![half(2)]).await.unwrap();
    store.refund_limits(vec![LimitRefund { key: "half".into(), rate, units: 2 }]).await.unwrap();
    store.create_instance_limited(create_request("h2", "V"), vec![half(2)]).await.unwrap();
    assert!(
        matches!(
            store.create_instance_limited(create_request("h3", "V"), vec![half(1)]).await,
            Err(Error::RateLimited(_))
        ),
        "the refund was skipped: 4 of 4 used"
    );
}

/// Concurrent starts on one budget: exactly the budget is admitted (each admitted start also
/// exists, each refused one does not).
pub async fn concurrent_limited_creates_never_overspend<S: Store>(store: S) {
    let store = std::sync::Arc::new(store);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("p{i}");
                let charges = vec![charge("shared", 7, 1, Some(&id)), charge(&format!("own{i}"), 1, 1, None)];
                let result = store.create_instance_limited(create_request(&id, "V"), charges).await;
                (id, result)
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        let (id, result) = task.await.expect("task panicked");
        let exists = store.get_instance(&id).await.unwrap().is_some();
        match result {
            Ok(()) => {
                admitted += 1;
                assert!(exists, "{id} was admitted but not created");
            }
            Err(Error::RateLimited(r)) => {
                assert_eq!(r.limit, "shared limit");
                assert!(!exists, "{id} was refused but created");
            }
            Err(e) => panic!("{id}: {e}"),
        }
    }
    assert_eq!(admitted, 7);
}

/// The backlog counts instances ready for a turn (capped), not leased or parked ones.
pub async fn ready_backlog_counts_ready_instances<S: Store>(store: S) {
    let Some(empty) = store.ready_backlog(100).await.unwrap() else {
        panic!("the store must report its backlog");
    };
    assert_eq!(empty, 0);
    for id in ["b1", "b2", "b3"] {
        store.create_instance(create_request(id, "V")).await.unwrap();
    }
    assert_eq!(store.ready_backlog(100).await.unwrap(), Some(3));
    assert_eq!(store.ready_backlog(2).await.unwrap(), Some(2), "counting stops at the cap");
    for id in ["b1", "b2", "b3"] {
        fetch_for(&store, id, LONG).await;
    }
    assert_eq!(store.ready_backlog(100).await.unwrap(), Some(0), "leased work is not waiting");
}
