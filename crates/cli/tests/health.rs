//! `/healthz`, `/readyz` and the dashboard switch, on the real binary.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_key_and_the_dashboard_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let durable = Durable::start(&dir.path().join("on"), &Launch::default());
    for (path, body) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let response = durable.http.get(durable.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} needs no key");
        assert_eq!(response.text().await.unwrap(), body);
    }
    let page = durable.http.get(durable.url("/sign-in")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Sign in to durable"));
    // The API is unchanged: its routes still want the key.
    let api = durable.http.get(durable.url("/runtime/webhooks/durabletask/instances")).send().await.unwrap();
    assert_eq!(api.status(), 401);
    durable.terminate();

    let off = Launch { args: vec!["--no-dashboard".into()], twilio: None };
    let durable = Durable::start(&dir.path().join("off"), &off);
    let root = durable.http.get(durable.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 404, "no dashboard");
    assert!(root.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let ready = durable.http.get(durable.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "health checks stay");
}
