//! Keys, limits, error bodies, headers and logs.

use crate::support::*;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every route, with a method it accepts.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/orchestrators/Echo"),
    ("POST", "/orchestrators/Echo/id1"),
    ("POST", "/api/orchestrators/Echo"),
    ("POST", "/api/orchestrators/Echo/id1"),
    ("POST", "/runtime/webhooks/durabletask/orchestrators/Echo"),
    ("POST", "/runtime/webhooks/durabletask/orchestrators/Echo/id1"),
    ("GET", "/runtime/webhooks/durabletask/instances"),
    ("DELETE", "/runtime/webhooks/durabletask/instances?createdTimeFrom=2000-01-01"),
    ("GET", "/runtime/webhooks/durabletask/instances/id1"),
    ("DELETE", "/runtime/webhooks/durabletask/instances/id1"),
    ("POST", "/runtime/webhooks/durabletask/instances/id1/raiseEvent/Answer"),
    ("POST", "/runtime/webhooks/durabletask/instances/id1/terminate"),
    ("POST", "/runtime/webhooks/durabletask/instances/id1/suspend"),
    ("POST", "/runtime/webhooks/durabletask/instances/id1/resume"),
    ("POST", "/runtime/webhooks/durabletask/instances/id1/restart"),
    ("POST", "/runtime/webhooks/durabletask/instances/id1/rewind"),
    ("GET", "/runtime/webhooks/durableTask/instances/id1"),
];

fn bare(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap()).uri(uri).header("host", HOST)
}

fn with_query(uri: &str, query: &str) -> String {
    if uri.contains('?') { format!("{uri}&{query}") } else { format!("{uri}?{query}") }
}

#[tokio::test]
async fn every_route_requires_the_key_in_the_query_or_the_header() {
    let app = App::start();
    for (method, uri) in ROUTES {
        let message =
            app.send(bare(method, uri).body(Body::empty()).unwrap()).await.error(401, "Unauthorized");
        assert!(message.contains("code") && message.contains("x-functions-key"), "{method} {uri}: {message}");
        let wrong = with_query(uri, "code=wrong");
        app.send(bare(method, &wrong).body(Body::empty()).unwrap()).await.error(401, "Unauthorized");
        let request = bare(method, uri).header("x-functions-key", "wrong").body(Body::empty()).unwrap();
        app.send(request).await.error(401, "Unauthorized");
        let request = bare(method, uri).header("x-functions-key", KEY).body(Body::empty()).unwrap();
        let r = app.send(request).await;
        assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}: {}", r.text());
        let right = with_query(uri, &format!("code={KEY}"));
        let r = app.send(bare(method, &right).body(Body::empty()).unwrap()).await;
        assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}: {}", r.text());
    }
}

#[tokio::test]
async fn a_second_key_is_accepted_for_rotation_and_urls_carry_the_first() {
    let app = App::with(|o| o.system_keys = vec!["new-key".into(), "old-key".into()]);
    let request = bare("POST", "/orchestrators/Echo?code=old-key").body(Body::from("1")).unwrap();
    let r = app.send(request).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert!(r.header("location").unwrap().ends_with("&code=new-key"), "{r:?}");
}

#[tokio::test]
async fn without_keys_auth_is_off_and_urls_carry_no_code() {
    let app = App::with(|o| o.system_keys.clear());
    let r = app.send(bare("POST", "/orchestrators/Echo").body(Body::from("1")).unwrap()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let location = r.header("location").unwrap();
    assert!(location.ends_with("?taskHub=DurableHub&connection=Storage"), "{location}");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_with_or_without_content_length() {
    let app = App::with(|o| o.max_body_bytes = 64);
    let big = format!("\"{}\"", "x".repeat(100));
    let message = app.post("/orchestrators/Echo", &big).await.error(413, "PayloadTooLarge");
    assert!(message.contains("64 bytes"), "{message}");
    // Chunked: no Content-Length, the limit is hit while streaming.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..10).map(|_| Ok(Bytes::from(vec![b' '; 20]))).collect();
    let request = App::request(Method::POST, "/runtime/webhooks/durabletask/instances/x/raiseEvent/Answer")
        .header("content-type", "application/json")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    assert!(request.headers().get("content-length").is_none());
    app.start_instance("WaitForAnswer", Some("x"), "null").await;
    app.send(request).await.error(413, "PayloadTooLarge");
    // At the limit is fine.
    let ok = format!("\"{}\"", "x".repeat(62));
    assert_eq!(app.post("/orchestrators/Echo", &ok).await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn errors_are_json_and_every_response_has_the_security_headers() {
    let app = App::start();
    let responses = [
        (app.get("/nope").await, 404, "NotFound"),
        (app.get("/orchestrators/Echo").await, 405, "MethodNotAllowed"),
        (
            app.send(bare("GET", "/runtime/webhooks/durabletask/instances").body(Body::empty()).unwrap())
                .await,
            401,
            "Unauthorized",
        ),
        (app.get("/runtime/webhooks/durabletask/instances?taskHub=OtherHub").await, 400, "BadRequest"),
    ];
    for (r, status, kind) in &responses {
        r.error(*status, kind);
        assert_eq!(r.header("content-type"), Some("application/json; charset=utf-8"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    assert_eq!(responses[1].0.header("allow"), Some("POST"));
    let ok = app.get("/runtime/webhooks/durabletask/instances?taskHub=durablehub").await;
    assert_eq!(ok.status, StatusCode::OK, "the hub name is case-insensitive");
    assert_eq!(ok.header("cache-control"), Some("no-store"));
    assert_eq!(ok.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn a_request_that_outlives_the_timeout_gets_408() {
    let app = App::with(|o| o.request_timeout = Duration::from_secs(1));
    // A body that never ends.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tx.send(Ok(Bytes::from_static(b"{"))).await.unwrap();
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let request = App::request(Method::POST, "/orchestrators/Echo").body(Body::from_stream(stream)).unwrap();
    let message = app.send(request).await.error(408, "RequestTimeout");
    assert!(message.contains("1000 ms"), "{message}");
    drop(tx);
}

#[tokio::test]
async fn a_panicking_handler_gets_a_json_500_and_the_server_keeps_serving() {
    let mut app = App::start();
    let extra = axum::Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            panic!("a handler bug");
            #[allow(unreachable_code)]
            ""
        }),
    );
    app.router = durable_http::router_with(app.state.clone(), extra);
    let r = app.send(App::request(Method::GET, "/boom").body(Body::empty()).unwrap()).await;
    r.error(500, "InternalServerError");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(!String::from_utf8_lossy(&r.body).contains("a handler bug"), "no panic message leaks");
    let ok = app.get("/runtime/webhooks/durabletask/instances").await;
    assert_eq!(ok.status, StatusCode::OK);
}

/// Collects everything logged, at every level.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_never_contain_keys_or_query_strings() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = App::with(|o| o.system_keys = vec!["SECRET-KEY-1".into()]);
    let requests = [
        bare("POST", "/orchestrators/WaitForAnswer/log1?code=SECRET-KEY-1")
            .body(Body::from("\"+1425\""))
            .unwrap(),
        bare("GET", "/runtime/webhooks/durabletask/instances/log1?code=SECRET-KEY-1&showHistory=true")
            .body(Body::empty())
            .unwrap(),
        bare("POST", "/runtime/webhooks/durabletask/instances/log1/raiseEvent/Answer?code=SECRET-WRONG")
            .header("content-type", "application/json")
            .body(Body::from("1"))
            .unwrap(),
        bare("POST", "/runtime/webhooks/durabletask/instances/log1/raiseEvent/Answer")
            .header("x-functions-key", "SECRET-KEY-1")
            .header("content-type", "application/json")
            .body(Body::from("1"))
            .unwrap(),
        bare("GET", "/nope?code=SECRET-KEY-1").body(Body::empty()).unwrap(),
        bare("GET", "/runtime/webhooks/durabletask/instances?code=SECRET-KEY-1&instanceIdPrefix=SECRET")
            .body(Body::empty())
            .unwrap(),
    ];
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(app.send(request).await.status.as_u16());
    }
    assert_eq!(statuses, [202, 202, 401, 202, 404, 200]);
    app.finish("log1").await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("status=202") && logs.contains("latency_ms"), "the requests were logged:\n{logs}");
    assert!(logs.contains("path=/runtime/webhooks/durabletask/instances/log1"), "{logs}");
    assert!(!logs.contains("SECRET"), "a key or query string leaked into the logs:\n{logs}");
    assert!(!logs.contains("code="), "{logs}");
}
