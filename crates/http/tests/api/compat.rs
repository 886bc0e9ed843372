//! What the official Durable Functions client SDKs (`azure-functions-durable` for Python,
//! `durable-functions` for JavaScript) rely on: Durable Functions' error fields, purge answers
//! they accept, entity routes reported as unsupported, and the key-less local RPC routes.
//! `crates/cli/tests/sdk_clients.rs` drives the SDKs themselves against the binary.

use crate::support::*;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use durable_core::RuntimeStatus;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Asserts Durable Functions' `HttpError` fields next to ours: `Message` and `ExceptionMessage`
/// carry our message, `ExceptionType` names the .NET exception Durable Functions would report,
/// and no stack trace is sent.
#[track_caller]
fn assert_df_fields(r: &Resp, exception_type: &str) {
    let v = r.json();
    let message = v["message"].as_str().unwrap_or_else(|| panic!("no message: {v}"));
    assert_eq!(v["Message"], message, "{v}");
    assert_eq!(v["ExceptionMessage"], message, "{v}");
    assert_eq!(v["ExceptionType"], exception_type, "{v}");
    assert!(v.get("StackTrace").is_none(), "{v}");
}

#[tokio::test]
async fn error_bodies_carry_durable_functions_exception_fields_next_to_ours() {
    let app = App::start();
    // The Python SDK reads `ExceptionMessage` of a 400 answered to a start (KeyError before).
    let r = app.post("/runtime/webhooks/durabletask/orchestrators/Nope", "null").await;
    let message = r.error(400, "UnknownOrchestrator");
    assert!(message.contains("Echo"), "names the registered orchestrators: {message}");
    assert_df_fields(&r, "System.ArgumentException");

    let bare = |method: &str, uri: &str| {
        Request::builder().method(method).uri(uri).header("host", HOST).body(Body::empty()).unwrap()
    };
    let cases = [
        (app.get(&instance_path("nope")).await, 404, "InstanceNotFound", "System.ArgumentException"),
        (app.get("/no/such/route").await, 404, "NotFound", "System.ArgumentException"),
        (app.get("/orchestrators/Echo").await, 405, "MethodNotAllowed", "System.ArgumentException"),
        (
            app.send(bare("GET", "/runtime/webhooks/durabletask/instances")).await,
            401,
            "Unauthorized",
            "System.UnauthorizedAccessException",
        ),
        (app.post("/orchestrators/Echo", "{").await, 400, "InvalidJson", "System.ArgumentException"),
    ];
    for (r, status, kind, exception_type) in &cases {
        r.error(*status, kind);
        assert_df_fields(r, exception_type);
    }

    app.start_instance("WaitForAnswer", Some("dup"), "null").await;
    let r = app.post("/orchestrators/WaitForAnswer/dup", "null").await;
    r.error(409, "InstanceAlreadyExists");
    assert_df_fields(&r, "System.InvalidOperationException");
}

#[tokio::test]
async fn purging_an_unfinished_instance_answers_200_with_nothing_deleted_and_keeps_it() {
    let app = App::start();
    let running = app.start_instance("WaitForAnswer", Some("keep-me"), "null").await;
    app.reach(&running, RuntimeStatus::Running).await;
    let r = app.delete(&instance_path(&running)).await;
    assert_eq!(r.status, StatusCode::OK, "the SDKs accept only 200 and 404 from purge: {}", r.text());
    let v = r.json();
    assert_eq!(v["instancesDeleted"], 0, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("Running") && message.contains("force=true"), "{message}");

    // Nothing of it was deleted: it still answers its event and completes.
    assert_eq!(app.get(&instance_path(&running)).await.status, StatusCode::ACCEPTED);
    let r = app.post(&format!("{}/raiseEvent/Answer", instance_path(&running)), "7").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(app.finish(&running).await.output.unwrap().as_str(), "7");
    assert!(!app.client.history(&running).await.unwrap().is_empty());
}

#[tokio::test]
async fn purge_by_filter_skips_unfinished_statuses_unless_forced() {
    let app = App::start();
    let purge = "/runtime/webhooks/durabletask/instances?createdTimeFrom=2000-01-01T00:00:00Z";
    let failed = app.start_instance("Fail", Some("pf"), "null").await;
    app.finish(&failed).await;
    app.start_instance("WaitForAnswer", Some("pr"), "null").await;
    app.reach("pr", RuntimeStatus::Running).await;

    // Only unfinished statuses asked: nothing to purge, Durable Functions' 404 (which the SDKs
    // read as "0 deleted"), with a message that says why and how to force it.
    let r = app.delete(&format!("{purge}&runtimeStatus=Running")).await;
    let message = r.error(404, "NotFound");
    assert!(message.contains("Running") && message.contains("force=true"), "{message}");
    assert_eq!(app.get(&instance_path("pr")).await.status, StatusCode::ACCEPTED);

    // Mixed: the finished ones go, the running one stays.
    let r = app.delete(&format!("{purge}&runtimeStatus=Running,Failed")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["instancesDeleted"], 1);
    assert!(r.json()["message"].as_str().unwrap().contains("Running"), "{}", r.text());
    app.get(&instance_path("pf")).await.error(404, "InstanceNotFound");
    assert_eq!(app.get(&instance_path("pr")).await.status, StatusCode::ACCEPTED);

    // Operators who really mean it.
    let r = app.delete(&format!("{purge}&runtimeStatus=Running&force=true")).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"instancesDeleted": 1})));
    app.get(&instance_path("pr")).await.error(404, "InstanceNotFound");
}

#[tokio::test]
async fn entity_routes_answer_501_not_implemented_for_every_method() {
    let app = App::start();
    let routes = [
        (Method::GET, "/runtime/webhooks/durabletask/entities/counter/k1"),
        (Method::GET, "/runtime/webhooks/durabletask/entities/counter"),
        (Method::GET, "/runtime/webhooks/durabletask/entities"),
        (Method::GET, "/runtime/webhooks/durabletask/entities/"),
        (Method::POST, "/runtime/webhooks/durabletask/entities/counter/k1?op=add"),
        (Method::DELETE, "/runtime/webhooks/durabletask/entities/counter/k1"),
        (Method::PUT, "/runtime/webhooks/durableTask/entities/counter/k1"),
    ];
    for (method, uri) in routes {
        let request = App::request(method.clone(), uri)
            .header("content-type", "application/json")
            .body(Body::from("1"))
            .unwrap();
        let r = app.send(request).await;
        let message = r.error(501, "NotImplemented");
        assert!(message.contains("entities are not supported"), "{method} {uri}: {message}");
        assert_df_fields(&r, "System.NotImplementedException");
        // The key is checked first, as on every other route.
        let request = Request::builder().method(method).uri(uri).header("host", HOST).body(Body::empty());
        app.send(request.unwrap()).await.error(401, "Unauthorized");
    }
}

async fn send(router: &Router, method: Method, uri: &str, body: &str) -> Resp {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1:17071")
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

#[tokio::test]
async fn the_local_rpc_router_serves_the_whole_api_without_a_key_and_hands_out_no_key() {
    let app = App::start();
    let local = durable_http::local_rpc_router(app.state.clone());

    // Durable Functions' local RPC base path (`rpcBaseUrl` = http://127.0.0.1:17071/durabletask/)
    // and the usual one, without any key.
    let r = send(&local, Method::POST, "/durabletask/orchestrators/WaitForAnswer/loc1", "null").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let urls: Value = r.json();
    for (name, url) in urls.as_object().unwrap() {
        assert!(!url.as_str().unwrap().contains("code="), "{name} carries a key: {url}");
    }
    assert!(urls["statusQueryGetUri"].as_str().unwrap().starts_with("http://127.0.0.1:17071/"), "{urls}");
    let r = send(&local, Method::GET, "/durabletask/instances/loc1?showHistory=true", "").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let r = send(&local, Method::GET, "/runtime/webhooks/durabletask/instances/loc1", "").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let r = send(&local, Method::GET, "/durabletask/instances?runtimeStatus=Pending,Running", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let r = send(&local, Method::POST, "/durabletask/instances/loc1/raiseEvent/Answer", "3").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(app.finish("loc1").await.output.unwrap().as_str(), "3");
    send(&local, Method::GET, "/durabletask/entities/counter/k", "").await.error(501, "NotImplemented");
    send(&local, Method::GET, "/durabletask/nope", "").await.error(404, "NotFound");

    // The main router still wants the key, for the same requests.
    let request = Request::builder()
        .uri("/runtime/webhooks/durabletask/instances/loc1")
        .header("host", HOST)
        .body(Body::empty())
        .unwrap();
    app.send(request).await.error(401, "Unauthorized");
    // And it does not serve the local base path.
    app.get("/durabletask/instances/loc1").await.error(404, "NotFound");
}
