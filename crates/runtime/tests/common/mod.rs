//! A test node: a real SQLite file in a temp dir with a runtime on it, which can be restarted.
#![allow(dead_code)]

pub(crate) mod faulty;

use durable_core::RuntimeStatus;
use durable_runtime::{Client, Registry, Runtime, RuntimeOptions};
use durable_store::{InstanceState, Store};
use durable_store_sqlite::{SqliteStore, SqliteStoreOptions};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Generous: CI machines are small and shared.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

pub(crate) struct TestNode {
    pub dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
    pub runtime: Option<Runtime>,
}

pub(crate) fn options() -> RuntimeOptions {
    RuntimeOptions { shutdown_grace: Duration::from_millis(200), ..RuntimeOptions::default() }
}

impl TestNode {
    pub(crate) fn db_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("durable.db")
    }

    pub(crate) fn start(registry: Registry) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, registry, options())
    }

    pub(crate) fn start_in(dir: tempfile::TempDir, registry: Registry, options: RuntimeOptions) -> TestNode {
        let store = Arc::new(SqliteStore::open(SqliteStoreOptions::new(Self::db_path(&dir))).unwrap());
        let runtime = Runtime::start(store.clone(), registry, options).unwrap();
        TestNode { dir, store, runtime: Some(runtime) }
    }

    pub(crate) fn client(&self) -> Client {
        self.runtime.as_ref().unwrap().client()
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().unwrap()
    }

    /// Stops the runtime and closes the store, then opens the same file with a new runtime
    /// (new registry), as a process restart would.
    pub(crate) async fn restart(mut self, registry: Registry) -> TestNode {
        self.runtime.take().unwrap().shutdown().await;
        self.store.close().await.unwrap();
        let TestNode { dir, store, .. } = self;
        drop(store);
        Self::start_in(dir, registry, options())
    }

    /// Waits for the instance to finish.
    pub(crate) async fn finish(&self, id: &str) -> InstanceState {
        self.client().wait_for_completion(id, DEADLINE).await.unwrap()
    }

    /// Opens the database read-only, for assertions on what is stored.
    pub(crate) fn sql(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            Self::db_path(&self.dir),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }
}

/// Re-checks `condition` until it holds, failing after the deadline.
pub(crate) async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the instance's history contains an event of type `event_type`.
pub(crate) async fn wait_for_history(client: &Client, id: &str, event_type: &str) {
    eventually(&format!("{id} to record {event_type}"), || async {
        client.history(id).await.map(|h| h.iter().any(|e| e.kind.type_name() == event_type)).unwrap_or(false)
    })
    .await;
}

pub(crate) fn output<T: serde::de::DeserializeOwned>(state: &InstanceState) -> T {
    assert_eq!(state.status, RuntimeStatus::Completed, "instance failed: {:?}", state.failure);
    state.output.as_ref().expect("an output").decode().unwrap()
}
