//! Status, history rendering and listing.

use crate::support::*;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use durable_core::RuntimeStatus;
use serde_json::{Value, json};

#[tokio::test]
async fn status_codes_follow_the_runtime_status() {
    let app = App::start();
    // Unfinished → 202 with Location = the request URL and Retry-After: 5.
    let id = app.start_instance("WaitForAnswer", Some("w1"), "\"in\"").await;
    app.reach(&id, RuntimeStatus::Running).await;
    let uri = format!("{}?taskHub=DurableHub&code={KEY}", instance_path(&id));
    let r = app.get(&uri).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.header("location"), Some(format!("http://{HOST}{uri}").as_str()));
    assert_eq!(r.header("retry-after"), Some("5"));
    let v = r.json();
    assert_eq!(v["runtimeStatus"], "Running");
    assert_eq!(v["customStatus"], "waiting for Answer");
    assert_eq!(v["input"], "in");
    assert!(v.get("historyEvents").is_none(), "{v}");
    let created = v["createdTime"].as_str().unwrap();
    assert_eq!(created.len(), "2026-01-01T00:00:00Z".len(), "second precision: {created}");
    assert!(created.ends_with('Z'));

    // Suspended → 202 too.
    let s = app.post(&format!("{}/suspend?reason=x", instance_path(&id)), "").await;
    assert_eq!(s.status, StatusCode::ACCEPTED, "{}", s.text());
    app.reach(&id, RuntimeStatus::Suspended).await;
    let r = app.get(&instance_path(&id)).await;
    assert_eq!((r.status, r.json()["runtimeStatus"].clone()), (StatusCode::ACCEPTED, json!("Suspended")));

    // Completed → 200.
    let done = app.start_instance("Echo", Some("c1"), "[1]").await;
    app.finish(&done).await;
    let r = app.get(&instance_path(&done)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("location").is_none());
    assert_eq!(r.json()["output"], json!([1]));

    // Failed → 200 with the message as output, or 500 when asked (flag parsed case-insensitively).
    let failed = app.start_instance("Fail", Some("f1"), "null").await;
    app.finish(&failed).await;
    let r = app.get(&instance_path(&failed)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["runtimeStatus"], "Failed");
    assert_eq!(r.json()["output"], "phone number is missing");
    let r = app.get(&format!("{}?returnInternalServerErrorOnFailure=TRUE", instance_path(&failed))).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json()["runtimeStatus"], "Failed");
    let r = app.get(&format!("{}?returnInternalServerErrorOnFailure=maybe", instance_path(&failed))).await;
    assert_eq!(r.status, StatusCode::OK, "unparsable flags keep their default");

    // Terminated → 200 with the reason as output.
    let t = app.start_instance("LongTimer", Some("t1"), "null").await;
    let r = app.post(&format!("{}/terminate?reason=user%20quit", instance_path(&t)), "").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    app.finish(&t).await;
    let r = app.get(&instance_path(&t)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["runtimeStatus"], "Terminated");
    assert_eq!(r.json()["output"], "user quit");

    // Unknown → 404.
    app.get(&instance_path("nope")).await.error(404, "InstanceNotFound");
}

fn events(v: &Value) -> &Vec<Value> {
    v["historyEvents"].as_array().unwrap_or_else(|| panic!("no historyEvents: {v}"))
}

#[tokio::test]
async fn history_is_rendered_durable_functions_style() {
    let app = App::start();
    let id = app.start_instance("Double", Some("d1"), "21").await;
    assert_eq!(app.finish(&id).await.output.unwrap().as_str(), "42");

    let r = app.get(&format!("{}?showHistory=true", instance_path(&id))).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    let types: Vec<&str> = events(&v).iter().map(|e| e["EventType"].as_str().unwrap()).collect();
    assert_eq!(types, ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"], "{v}");
    let started = &events(&v)[0];
    assert_eq!(started["FunctionName"], "Double");
    assert_eq!(started["Input"], 21);
    let task = &events(&v)[1];
    assert_eq!(task["FunctionName"], "DoubleIt");
    assert_eq!(task["Input"], 21);
    assert!(task["ScheduledTime"].is_string() && task["Timestamp"].is_string(), "{task}");
    assert!(task.get("Result").is_none(), "results only with showHistoryOutput: {task}");
    assert!(task.get("TaskScheduledId").is_none() && task.get("EventId").is_none());
    let completed = &events(&v)[2];
    assert_eq!(completed["OrchestrationStatus"], "Completed");
    assert!(completed.get("Result").is_none());

    let r = app.get(&format!("{}?showHistory=true&showHistoryOutput=true", instance_path(&id))).await;
    let v = r.json();
    assert_eq!(events(&v)[1]["Result"], 42);
    assert_eq!(events(&v)[2]["Result"], 42);

    let r = app
        .get(&format!("{}?showHistory=True&showHistoryOutput=true&showInput=false", instance_path(&id)))
        .await;
    let v = r.json();
    assert_eq!(v["input"], Value::Null);
    assert!(events(&v).iter().all(|e| e.get("Input").is_none()), "{v}");
    assert_eq!(events(&v)[1]["Result"], 42);
}

#[tokio::test]
async fn event_data_appears_in_history_only_with_show_input() {
    let app = App::start();
    let id = app.start_instance("WaitForAnswer", Some("e1"), "null").await;
    let r = app.post(&format!("{}/raiseEvent/Answer", instance_path(&id)), "7").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    app.finish(&id).await;
    let v = app.get(&format!("{}?showHistory=true", instance_path(&id))).await.json();
    let raised = events(&v).iter().find(|e| e["EventType"] == "EventRaised").unwrap();
    assert_eq!((raised["Name"].clone(), raised["Input"].clone()), (json!("Answer"), json!(7)));
    let v = app.get(&format!("{}?showHistory=true&showInput=false", instance_path(&id))).await.json();
    let raised = events(&v).iter().find(|e| e["EventType"] == "EventRaised").unwrap();
    assert!(raised.get("Input").is_none(), "{raised}");
}

#[tokio::test]
async fn lists_page_with_the_continuation_header_and_filter() {
    let app = App::start();
    for i in 0..5 {
        let id = app.start_instance("Echo", Some(&format!("page-{i}")), &i.to_string()).await;
        app.finish(&id).await;
    }
    app.start_instance("WaitForAnswer", Some("other-1"), "null").await;

    let list = "/runtime/webhooks/durabletask/instances";
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let mut request = App::request(Method::GET, &format!("{list}?instanceIdPrefix=page-&top=2"));
        if !token.is_empty() {
            request = request.header("x-ms-continuation-token", &token);
        }
        let r = app.send(request.body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        token = r.header("x-ms-continuation-token").expect("header always present").to_owned();
        let items = r.json();
        let items = items.as_array().unwrap();
        assert!(items.len() <= 2);
        for item in items {
            assert!(item.get("historyEvents").is_none());
            assert_eq!(item["runtimeStatus"], "Completed");
            seen.push(item["instanceId"].as_str().unwrap().to_owned());
        }
        pages += 1;
        if token.is_empty() {
            break;
        }
        assert!(pages < 10, "paging does not end");
    }
    seen.sort();
    assert_eq!(seen, ["page-0", "page-1", "page-2", "page-3", "page-4"]);
    assert_eq!(pages, 3);

    // Status filters: comma-separated and repeated.
    let r = app.get(&format!("{list}?runtimeStatus=Pending,Running&runtimeStatus=Suspended")).await;
    let ids: Vec<Value> = r.json().as_array().unwrap().iter().map(|i| i["instanceId"].clone()).collect();
    assert_eq!(ids, [json!("other-1")]);
    assert_eq!(r.header("x-ms-continuation-token"), Some(""));
    let r = app.get(&format!("{list}?runtimeStatus=Canceled")).await;
    assert_eq!(r.json(), json!([]));
    // Time filters and showInput.
    let r = app
        .get(&format!(
            "{list}/?createdTimeFrom=2000-01-01T00:00:00Z&createdTimeTo=2000-01-02&showInput=FALSE"
        ))
        .await;
    assert_eq!(r.json(), json!([]));
    let r = app.get(&format!("{list}?instanceIdPrefix=page-0&showInput=false")).await;
    assert_eq!(r.json()[0]["input"], Value::Null);
    assert_eq!(r.json()[0]["output"], 0);
    let r = app.get(&format!("{list}?instanceIdPrefix=page-0")).await;
    assert_eq!(r.json()[0]["input"], 0);
    // Bad filters are 400s, not silently ignored.
    app.get(&format!("{list}?runtimeStatus=Runing")).await.error(400, "BadRequest");
    app.get(&format!("{list}?createdTimeFrom=last-week")).await.error(400, "BadRequest");
    app.get(&format!("{list}?top=0")).await.error(400, "BadRequest");
    app.get(&format!("{list}?top=many")).await.error(400, "BadRequest");
    let r = app.get(&format!("{list}?top=100000")).await;
    assert_eq!(r.status, StatusCode::OK, "oversized pages are capped, not refused");
    let request =
        App::request(Method::GET, list).header("x-ms-continuation-token", "zz").body(Body::empty()).unwrap();
    app.send(request).await.error(400, "BadRequest");
}
