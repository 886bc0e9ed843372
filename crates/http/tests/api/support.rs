//! A test app: a real runtime on a real SQLite file in a temp dir, with the router on top,
//! driven through `oneshot` (no sockets).
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use durable_core::{Error, OrchestrationContext, RuntimeStatus};
use durable_http::{HttpOptions, HttpState, router};
use durable_runtime::{Client, EventHook, Registry, Runtime, RuntimeOptions};
use durable_store::InstanceState;
use durable_store_sqlite::{SqliteStore, SqliteStoreOptions};
use http_body_util::BodyExt;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// The system key of test apps.
pub(crate) const KEY: &str = "test-key-0123456789";
/// The Host the test requests carry.
pub(crate) const HOST: &str = "localhost:7071";
/// Generous: CI machines are small and shared.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);
/// Base of the management URLs the app generates.
pub(crate) const BASE: &str = "http://localhost:7071/runtime/webhooks/durabletask";

/// Waits for an event named "Answer" and returns its data.
async fn wait_for_answer(ctx: OrchestrationContext, _input: Value) -> Result<Value, Error> {
    ctx.set_custom_status("waiting for Answer")?;
    ctx.wait_for_external_event::<Value>("Answer").await
}

/// Fails with a known message.
async fn fail(_ctx: OrchestrationContext, _input: Value) -> Result<(), Error> {
    Err(Error::msg("phone number is missing"))
}

/// Waits on a long durable timer: stays Running.
async fn long_timer(ctx: OrchestrationContext, _input: Value) -> Result<(), Error> {
    ctx.sleep(Duration::from_secs(3600)).await;
    Ok(())
}

/// Returns its input.
async fn echo(_ctx: OrchestrationContext, input: Value) -> Result<Value, Error> {
    Ok(input)
}

/// Calls activity "DoubleIt" with its input.
async fn double(ctx: OrchestrationContext, n: i64) -> Result<i64, Error> {
    ctx.call_activity("DoubleIt", &n).await
}

/// Waits for an event named "Guess", which an event hook only lets through as a number.
async fn hooked(ctx: OrchestrationContext, _input: Value) -> Result<Value, Error> {
    ctx.wait_for_external_event::<Value>("Guess").await
}

fn guess_hook() -> EventHook {
    Arc::new(|_instance, data| match data {
        Some(p) if p.decode::<u32>().is_ok() => Ok(Some(p)),
        _ => Err("a guess must be a number from 0 to 4294967295".into()),
    })
}

pub(crate) fn registry() -> Registry {
    Registry::new()
        .orchestrator("WaitForAnswer", wait_for_answer)
        .orchestrator("Fail", fail)
        .orchestrator("LongTimer", long_timer)
        .orchestrator("Echo", echo)
        .orchestrator("Double", double)
        .orchestrator("Hooked", hooked)
        .with_event_hook("Hooked", "Guess", guess_hook())
        .activity("DoubleIt", |_ctx, n: i64| async move { Ok::<_, Error>(n * 2) })
}

pub(crate) struct App {
    pub router: Router,
    pub state: HttpState,
    pub client: Client,
    pub runtime: Runtime,
    _dir: tempfile::TempDir,
}

/// A response with its body read.
#[derive(Debug)]
pub(crate) struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts the status and our JSON error shape; returns the message.
    #[track_caller]
    pub(crate) fn error(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        let v = self.json();
        assert_eq!(v["error"], kind, "{v}");
        v["message"].as_str().expect("message").to_owned()
    }
}

impl App {
    pub(crate) fn start() -> App {
        App::with(|_| {})
    }

    pub(crate) fn with(configure: impl FnOnce(&mut HttpOptions)) -> App {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(SqliteStore::open(SqliteStoreOptions::new(dir.path().join("durable.db"))).unwrap());
        let options =
            RuntimeOptions { shutdown_grace: Duration::from_millis(200), ..RuntimeOptions::default() };
        let runtime = Runtime::start(store, registry(), options).unwrap();
        let mut http = HttpOptions { system_keys: vec![KEY.into()], ..HttpOptions::default() };
        configure(&mut http);
        let state = HttpState::new(runtime.client(), http).unwrap();
        App { router: router(state.clone()), state, client: runtime.client(), runtime, _dir: dir }
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> Resp {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes().to_vec();
        Resp { status: parts.status, headers: parts.headers, body }
    }

    /// A request with the Host header and the key in `x-functions-key`.
    pub(crate) fn request(method: Method, uri: &str) -> axum::http::request::Builder {
        Request::builder().method(method).uri(uri).header("host", HOST).header("x-functions-key", KEY)
    }

    pub(crate) async fn get(&self, uri: &str) -> Resp {
        self.send(App::request(Method::GET, uri).body(Body::empty()).unwrap()).await
    }

    pub(crate) async fn delete(&self, uri: &str) -> Resp {
        self.send(App::request(Method::DELETE, uri).body(Body::empty()).unwrap()).await
    }

    /// POST with an `application/json` body.
    pub(crate) async fn post(&self, uri: &str, body: &str) -> Resp {
        let request = App::request(Method::POST, uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.send(request).await
    }

    /// Starts `name` through the HTTP API and returns the instance id.
    pub(crate) async fn start_instance(&self, name: &str, id: Option<&str>, input: &str) -> String {
        let uri = match id {
            Some(id) => format!("/orchestrators/{name}/{id}"),
            None => format!("/orchestrators/{name}"),
        };
        let r = self.post(&uri, input).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        r.json()["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn finish(&self, id: &str) -> InstanceState {
        self.client.wait_for_completion(id, DEADLINE).await.unwrap()
    }

    /// Waits until the instance has `status`.
    pub(crate) async fn reach(&self, id: &str, status: RuntimeStatus) {
        let client = self.client.clone();
        eventually(&format!("{id} is {status}"), || {
            let client = client.clone();
            async move { client.status(id).await.unwrap().is_some_and(|s| s.status == status) }
        })
        .await;
    }
}

/// Re-checks `condition` until it holds; fails after [`DEADLINE`].
pub(crate) async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Management URL path of an instance (no query).
pub(crate) fn instance_path(id: &str) -> String {
    format!("/runtime/webhooks/durabletask/instances/{id}")
}
