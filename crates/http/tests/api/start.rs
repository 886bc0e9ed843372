//! Starting instances: the 202 check-status response, routes, inputs, ids and waiting.

use crate::support::*;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use durable_core::RuntimeStatus;
use serde_json::json;

#[tokio::test]
async fn start_answers_202_with_location_retry_after_and_the_management_urls_in_order() {
    let app = App::start();
    let r = app.post("/orchestrators/Echo", "\"+1425\"").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("10"));
    assert_eq!(r.header("content-type"), Some("application/json; charset=utf-8"));
    let body = r.json();
    let id = body["id"].as_str().unwrap();
    assert_eq!(id.len(), 32, "random ids are 32 hex digits: {id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let q = format!("taskHub=DurableHub&connection=Storage&code={KEY}");
    let instance = format!("{BASE}/instances/{id}");
    assert_eq!(
        body,
        json!({
            "id": id,
            "statusQueryGetUri": format!("{instance}?{q}"),
            "sendEventPostUri": format!("{instance}/raiseEvent/{{eventName}}?{q}"),
            "terminatePostUri": format!("{instance}/terminate?reason={{text}}&{q}"),
            "purgeHistoryDeleteUri": format!("{instance}?{q}"),
            "restartPostUri": format!("{instance}/restart?{q}"),
            "suspendPostUri": format!("{instance}/suspend?reason={{text}}&{q}"),
            "resumePostUri": format!("{instance}/resume?reason={{text}}&{q}"),
        })
    );
    assert_eq!(r.header("location"), body["statusQueryGetUri"].as_str());
    // Field order is part of the contract (Durable Functions' serialized order).
    let text = r.text();
    let order = [
        "\"id\"",
        "statusQueryGetUri",
        "sendEventPostUri",
        "terminatePostUri",
        "purgeHistoryDeleteUri",
        "restartPostUri",
        "suspendPostUri",
        "resumePostUri",
    ]
    .map(|k| text.find(k).unwrap_or_else(|| panic!("{k} missing: {text}")));
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    let done = app.finish(id).await;
    assert_eq!(done.status, RuntimeStatus::Completed);
    assert_eq!(done.output.unwrap().as_str(), "\"+1425\"");
}

#[tokio::test]
async fn the_api_prefix_and_the_built_in_route_start_too_and_ids_are_percent_encoded() {
    let app = App::start();
    let id = app.start_instance("Echo", Some("my-id"), "1").await;
    assert_eq!(id, "my-id");
    let r = app.post("/api/orchestrators/Echo/api-id", "2").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["id"], "api-id");
    let r = app.post("/api/orchestrators/Echo", "3").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = app.post("/runtime/webhooks/durabletask/orchestrators/Echo/a%20b%3Ac", "4").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let body = r.json();
    assert_eq!(body["id"], "a b:c");
    let status_uri = body["statusQueryGetUri"].as_str().unwrap();
    assert!(status_uri.starts_with(&format!("{BASE}/instances/a%20b%3Ac?")), "{status_uri}");
    // The generated URL works as is.
    let path = status_uri.strip_prefix("http://localhost:7071").unwrap();
    app.finish("a b:c").await;
    let r = app.get(path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["instanceId"], "a b:c");
    assert_eq!(r.json()["output"], 4);
}

#[tokio::test]
async fn forwarded_headers_shape_urls_only_when_trusted() {
    async fn forwarded(app: &App) -> Resp {
        let request = App::request(Method::POST, "/orchestrators/Echo")
            .header("x-forwarded-host", "public.example.com")
            .header("x-forwarded-proto", "https")
            .body(Body::from("1"))
            .unwrap();
        app.send(request).await
    }
    let untrusted = App::start();
    let r = forwarded(&untrusted).await;
    assert!(r.header("location").unwrap().starts_with("http://localhost:7071/runtime/"), "{r:?}");
    let trusted = App::with(|o| o.trust_forwarded_headers = true);
    let r = forwarded(&trusted).await;
    assert!(r.header("location").unwrap().starts_with("https://public.example.com/runtime/"), "{r:?}");
    let body = r.json();
    for key in ["statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri"] {
        assert!(body[key].as_str().unwrap().starts_with("https://public.example.com/"), "{body}");
    }
    // A host that could smuggle something into our URLs is refused.
    let request = App::request(Method::POST, "/orchestrators/Echo")
        .header("x-forwarded-host", "evil.example/<script>")
        .body(Body::from("1"))
        .unwrap();
    trusted.send(request).await.error(400, "BadRequest");
}

#[tokio::test]
async fn empty_bodies_mean_no_input_and_invalid_json_is_a_400_that_says_what_to_send() {
    let app = App::start();
    let request = App::request(Method::POST, "/orchestrators/Echo").body(Body::empty()).unwrap();
    let r = app.send(request).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let done = app.finish(r.json()["id"].as_str().unwrap()).await;
    assert_eq!(done.input, None);
    assert_eq!(done.output.unwrap().as_str(), "null");

    let message = app.post("/orchestrators/Echo", "0042").await.error(400, "InvalidJson");
    assert!(message.starts_with("Invalid JSON content"), "{message}");
    assert!(message.contains("send 42 or \"0042\""), "{message}");
    app.post("/orchestrators/Echo", "{\"a\":").await.error(400, "InvalidJson");
    // Content-Type is not required on start (curl -d sends a form type).
    let request = App::request(Method::POST, "/orchestrators/Echo")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("{\"a\":1}"))
        .unwrap();
    assert_eq!(app.send(request).await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn unknown_orchestrators_and_bad_ids_are_400_and_a_running_id_is_409() {
    let app = App::start();
    let message = app.post("/orchestrators/Nope", "1").await.error(400, "UnknownOrchestrator");
    assert!(message.contains("Echo") && message.contains("WaitForAnswer"), "{message}");
    app.post("/orchestrators/Echo/%40entity", "1").await.error(400, "InvalidInstanceId");
    app.post("/orchestrators/Echo/a%2Fb", "1").await.error(400, "InvalidInstanceId");
    let long = "x".repeat(257);
    app.post(&format!("/orchestrators/Echo/{long}"), "1").await.error(400, "InvalidInstanceId");

    app.start_instance("WaitForAnswer", Some("dup"), "null").await;
    let message =
        app.post("/orchestrators/WaitForAnswer/dup", "null").await.error(409, "InstanceAlreadyExists");
    assert!(message.contains("dup"), "{message}");
    // A finished instance's id may be reused: it is replaced.
    app.start_instance("Echo", Some("reuse"), "1").await;
    app.finish("reuse").await;
    app.start_instance("Echo", Some("reuse"), "2").await;
    assert_eq!(app.finish("reuse").await.output.unwrap().as_str(), "2");
}

#[tokio::test]
async fn the_built_in_start_waits_with_timeout_and_polling_interval() {
    let app = App::start();
    let base = "/runtime/webhooks/durabletask/orchestrators";
    // Completed → 200 with the raw output, not the status object.
    let r = app.post(&format!("{base}/Echo?timeout=20&pollingInterval=1"), "{\"a\":[1,2]}").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), json!({"a": [1, 2]}));
    // Failed → the status payload (200, or 500 with the flag).
    let r = app.post(&format!("{base}/Fail?timeout=20&pollingInterval=1"), "null").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["runtimeStatus"], "Failed");
    assert_eq!(r.json()["output"], "phone number is missing");
    // Still running at the deadline → the 202 check-status response.
    let r = app.post(&format!("{base}/WaitForAnswer/waiter?timeout=0.2&pollingInterval=0.1"), "null").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["id"], "waiter");
    assert_eq!(r.header("retry-after"), Some("10"));
    // Only one of the two → no wait.
    let r = app.post(&format!("{base}/WaitForAnswer?timeout=5"), "null").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // Nonsense.
    app.post(&format!("{base}/Echo?timeout=1&pollingInterval=2"), "1").await.error(400, "BadRequest");
    app.post(&format!("{base}/Echo?timeout=abc&pollingInterval=1"), "1").await.error(400, "BadRequest");
    let message =
        app.post(&format!("{base}/Echo?timeout=3600&pollingInterval=1"), "1").await.error(400, "BadRequest");
    assert!(message.contains("at most"), "{message}");
    // The sample's HttpStart ignores them (CreateCheckStatusResponse).
    let r = app.post("/orchestrators/Echo?timeout=20&pollingInterval=1", "1").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}
