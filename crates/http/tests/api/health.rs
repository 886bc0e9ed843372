//! `/healthz` and `/readyz`: no key, no details, 503 once the store cannot serve.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use durable_http::health_router;
use durable_store::Store;
use durable_store_sqlite::{SqliteStore, SqliteStoreOptions};
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

async fn get(router: &axum::Router, path: &str) -> (StatusCode, String, Option<String>) {
    let request = Request::builder().uri(path).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let cache = response.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), cache)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_while_the_store_serves_and_not_ready_once_it_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(SqliteStoreOptions::new(dir.path().join("durable.db"))).unwrap());
    let router = health_router(store.clone());

    assert_eq!(get(&router, "/healthz").await, (StatusCode::OK, "ok\n".into(), Some("no-store".into())));
    assert_eq!(get(&router, "/readyz").await, (StatusCode::OK, "ready\n".into(), Some("no-store".into())));

    store.close().await.unwrap();
    let (status, body, _) = get(&router, "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "no details for clients"
    );
    assert_eq!(get(&router, "/healthz").await.0, StatusCode::OK, "the process is still alive");
}
