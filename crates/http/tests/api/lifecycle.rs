//! Raise event, terminate, suspend, resume, restart, rewind and purge.

use crate::support::*;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use durable_core::RuntimeStatus;
use serde_json::json;
use std::time::Duration;

async fn raise(app: &App, id: &str, content_type: Option<&str>, body: &str) -> Resp {
    let mut request = App::request(Method::POST, &format!("{}/raiseEvent/Answer", instance_path(id)));
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    app.send(request.body(Body::from(body.to_owned())).unwrap()).await
}

#[tokio::test]
async fn raise_event_checks_404_then_410_then_content_type_then_json() {
    let app = App::start();
    // 404 wins over a bad content type and bad JSON.
    raise(&app, "missing", Some("text/plain"), "0042").await.error(404, "InstanceNotFound");
    // 410 wins over them too.
    let done = app.start_instance("Echo", Some("done"), "1").await;
    app.finish(&done).await;
    raise(&app, &done, Some("text/plain"), "0042").await.error(410, "InstanceFinished");

    let id = app.start_instance("WaitForAnswer", Some("r1"), "null").await;
    let message = raise(&app, &id, Some("text/plain"), "42").await.error(400, "UnsupportedContentType");
    assert!(message.contains("application/json"), "{message}");
    raise(&app, &id, None, "42").await.error(400, "UnsupportedContentType");
    let message =
        raise(&app, &id, Some("application/json; charset=utf-8"), "0042").await.error(400, "InvalidJson");
    assert!(message.contains("send 42 or \"0042\""), "{message}");
    raise(&app, &id, Some("application/json"), "{").await.error(400, "InvalidJson");

    // The instance was still waiting: none of the rejected events reached it.
    let r = raise(&app, &id, Some("application/json; charset=utf-8"), "\"0042\"").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert!(r.body.is_empty(), "202 has an empty body: {}", r.text());
    let state = app.finish(&id).await;
    assert_eq!(state.status, RuntimeStatus::Completed);
    assert_eq!(state.output.unwrap().as_str(), "\"0042\"");
}

#[tokio::test]
async fn event_hooks_reject_data_with_400() {
    let app = App::start();
    let id = app.start_instance("Hooked", Some("h1"), "null").await;
    let uri = format!("{}/raiseEvent/Guess", instance_path(&id));
    let message = app.post(&uri, "\"1234\"").await.error(400, "InvalidInput");
    assert!(message.contains("must be a number"), "{message}");
    assert_eq!(app.post(&uri, "1234").await.status, StatusCode::ACCEPTED);
    assert_eq!(app.finish(&id).await.output.unwrap().as_str(), "1234");
}

#[tokio::test]
async fn pending_instances_accept_events_and_early_events_are_buffered() {
    let app = App::start();
    // Raised right after the start, probably before the first turn: buffered, not lost.
    let id = app.start_instance("WaitForAnswer", None, "null").await;
    let r = raise(&app, &id, Some("application/json"), "{\"code\":1234}").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(app.finish(&id).await.output.unwrap().as_str(), "{\"code\":1234}");
}

#[tokio::test]
async fn terminate_is_404_202_then_410() {
    let app = App::start();
    app.post(&format!("{}/terminate", instance_path("nope")), "").await.error(404, "InstanceNotFound");
    let id = app.start_instance("LongTimer", Some("t1"), "null").await;
    let r = app.post(&format!("{}/terminate?reason=enough", instance_path(&id)), "").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let state = app.finish(&id).await;
    assert_eq!(state.status, RuntimeStatus::Terminated);
    app.post(&format!("{}/terminate", instance_path(&id)), "").await.error(410, "InstanceFinished");
}

/// Suspend and resume are queued and applied in the order accepted; one that finds the
/// instance already in that state changes nothing (202, not Durable Functions' 500).
#[tokio::test]
async fn suspend_and_resume_apply_in_order_and_redundant_ones_change_nothing() {
    let app = App::start();
    let path = |op: &str| format!("{}/{op}?reason=maintenance", instance_path("s1"));
    app.post(&path("suspend"), "").await.error(404, "InstanceNotFound");
    app.start_instance("WaitForAnswer", Some("s1"), "null").await;
    app.reach("s1", RuntimeStatus::Running).await;
    assert_eq!(app.post(&path("resume"), "").await.status, StatusCode::ACCEPTED);
    assert_eq!(app.post(&path("suspend"), "").await.status, StatusCode::ACCEPTED);
    app.reach("s1", RuntimeStatus::Suspended).await;
    assert_eq!(app.post(&path("suspend"), "").await.status, StatusCode::ACCEPTED);
    // Events raised while suspended are kept until resumed.
    assert_eq!(raise(&app, "s1", Some("application/json"), "5").await.status, StatusCode::ACCEPTED);
    assert_eq!(app.post(&path("resume"), "").await.status, StatusCode::ACCEPTED);
    let state = app.finish("s1").await;
    assert_eq!(state.output.unwrap().as_str(), "5");
    app.post(&path("suspend"), "").await.error(410, "InstanceFinished");
    app.post(&path("resume"), "").await.error(410, "InstanceFinished");
}

#[tokio::test]
async fn restart_answers_the_check_status_response_of_the_new_instance() {
    let app = App::start();
    app.post(&format!("{}/restart", instance_path("nope")), "").await.error(404, "InstanceNotFound");
    let id = app.start_instance("Echo", Some("orig"), "{\"n\":1}").await;
    app.finish(&id).await;

    let r = app.post(&format!("{}/restart", instance_path(&id)), "").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let new_id = r.json()["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id, "restart defaults to a new id");
    assert_eq!(r.header("location"), r.json()["statusQueryGetUri"].as_str());
    assert_eq!(app.finish(&new_id).await.output.unwrap().as_str(), "{\"n\":1}");

    let r = app.post(&format!("{}/restart?restartWithNewInstanceId=false", instance_path(&id)), "").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["id"], "orig");
    app.finish("orig").await;

    // Restarting a running instance under its own id conflicts.
    app.start_instance("WaitForAnswer", Some("busy"), "null").await;
    let uri = format!("{}/restart?restartWithNewInstanceId=false", instance_path("busy"));
    app.post(&uri, "").await.error(409, "InstanceAlreadyExists");
}

/// Rewind: 404 for an unknown instance, 412 for one that is not Failed (what the JavaScript SDK
/// expects), 202 for a Failed one,
/// which then runs its failed turn again (here it fails again: the code is unchanged) and
/// records the rewind in its history.
#[tokio::test]
async fn rewind_runs_a_failed_instance_again() {
    let app = App::start();
    let path = |id: &str| format!("{}/rewind?reason=fixed", instance_path(id));
    app.post(&path("nope"), "").await.error(404, "InstanceNotFound");
    let running = app.start_instance("WaitForAnswer", Some("rw-run"), "null").await;
    app.reach(&running, RuntimeStatus::Running).await;
    let message = app.post(&path(&running), "").await.error(412, "NotFailed");
    assert!(message.contains("only Failed instances can be rewound"), "{message}");

    let failed = app.start_instance("Fail", Some("rw-fail"), "null").await;
    assert_eq!(app.finish(&failed).await.status, RuntimeStatus::Failed);
    let r = app.post(&path(&failed), "").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let status = app.get(&format!("{}?showHistory=true", instance_path(&failed))).await.json();
        let events = status["historyEvents"].as_array().cloned().unwrap_or_default();
        let rewound = events.iter().find(|e| e["EventType"] == "ExecutionRewound");
        if let Some(rewound) = rewound.filter(|_| status["runtimeStatus"] == "Failed") {
            assert_eq!(rewound["Reason"], "fixed");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not rewound: {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn purge_deletes_finished_instances_and_unfinished_ones_only_when_forced() {
    let app = App::start();
    app.delete(&instance_path("nope")).await.error(404, "InstanceNotFound");
    let running = app.start_instance("WaitForAnswer", Some("p-run"), "null").await;
    let r = app.delete(&instance_path(&running)).await;
    assert_eq!((r.status, r.json()["instancesDeleted"].clone()), (StatusCode::OK, json!(0)), "{}", r.text());
    let r = app.delete(&format!("{}?force=true", instance_path(&running))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), json!({"instancesDeleted": 1}));
    app.get(&instance_path(&running)).await.error(404, "InstanceNotFound");

    let done = app.start_instance("Echo", Some("p-done"), "1").await;
    app.finish(&done).await;
    let r = app.delete(&instance_path(&done)).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"instancesDeleted": 1})));
    app.delete(&instance_path(&done)).await.error(404, "InstanceNotFound");
}

#[tokio::test]
async fn bulk_purge_needs_created_time_from_and_404s_when_nothing_matched() {
    let app = App::start();
    let purge = "/runtime/webhooks/durabletask/instances";
    let message = app.delete(purge).await.error(400, "BadRequest");
    assert!(message.starts_with("Please provide value for 'createdTimeFrom' parameter."), "{message}");
    app.delete(&format!("{purge}?createdTimeFrom=soon")).await.error(400, "BadRequest");
    app.delete(&format!("{purge}?createdTimeFrom=2000-01-01T00:00:00Z")).await.error(404, "NotFound");

    for i in 0..3 {
        let id = app.start_instance("Echo", Some(&format!("b{i}")), "1").await;
        app.finish(&id).await;
    }
    let failed = app.start_instance("Fail", Some("bf"), "null").await;
    app.finish(&failed).await;
    app.start_instance("WaitForAnswer", Some("b-running"), "null").await;

    // Unfinished statuses are skipped without force.
    let message = app
        .delete(&format!("{purge}?createdTimeFrom=2000-01-01&runtimeStatus=Running"))
        .await
        .error(404, "NotFound");
    assert!(message.contains("force=true"), "{message}");
    // Only Failed.
    let r = app.delete(&format!("{purge}?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Failed")).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"instancesDeleted": 1})));
    // Nothing but finished instances by default; the running one survives.
    let r = app.delete(&format!("{purge}/?createdTimeFrom=2000-01-01T00:00:00Z")).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"instancesDeleted": 3})));
    assert_eq!(app.get(&instance_path("b-running")).await.status, StatusCode::ACCEPTED);
    app.delete(&format!("{purge}?createdTimeFrom=2000-01-01T00:00:00Z")).await.error(404, "NotFound");
}
