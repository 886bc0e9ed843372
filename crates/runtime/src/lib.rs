//! The **durable** runtime: runs registered orchestrators and activities against a
//! [`Store`], and offers the [`Client`] to start and manage instances.
//!
//! - The orchestration dispatcher fetches instances with new messages (woken by the store's
//!   notifications, never by polling), runs their turns concurrently, one at a time per
//!   instance, and commits each turn atomically. Executions stay cached between turns.
//! - The activity dispatcher runs activities concurrently (at least once), renewing their
//!   leases while they run.
//! - Durable timers are store messages that become visible when due; the store wakes the
//!   dispatcher at the earliest due time.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn durable_store::Store>) -> Result<(), Box<dyn std::error::Error>> {
//! use durable_runtime::{Registry, Runtime, RuntimeOptions};
//! use durable_core::{Error, OrchestrationContext};
//!
//! async fn hello(ctx: OrchestrationContext, name: String) -> Result<String, Error> {
//!     ctx.call_activity("Greet", &name).await
//! }
//!
//! let registry = Registry::new()
//!     .orchestrator("Hello", hello)
//!     .activity("Greet", |_ctx, name: String| async move { Ok::<_, Error>(format!("Hello, {name}!")) });
//! let runtime = Runtime::start(store, registry, RuntimeOptions::default())?;
//! let client = runtime.client();
//! let id = client.start("Hello", "Tokyo").await?;
//! let done = client.wait_for_completion(&id, std::time::Duration::from_secs(10)).await?;
//! println!("{:?}", done.output);
//! runtime.shutdown().await;
//! # Ok(()) }
//! ```

mod activities;
mod cache;
pub mod client;
mod dispatch;
pub mod metrics;
mod options;
mod orchestrations;
pub mod private_files;
mod registry;
mod shared;
mod stalls;
pub mod tracing_spans;

pub use cache::ExecutionCache;
pub use client::Client;
pub use options::{RuntimeOptions, UnknownFunctions};
pub use registry::{
    ActivityContext, ActivityFn, ActivityFuture, ActivityOutput, EventHook, FinishedHook, FinishedInstance,
    Registry, Rejected, StartGuard, StartRequest,
};

use durable_store::{Clock, Store, SystemClock};
use shared::{Counters, Shared};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A snapshot of a runtime's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeMetrics {
    /// Turns committed.
    pub turns: u64,
    /// Executions rebuilt from history (cache misses).
    pub replays: u64,
    /// Turn results discarded because the instance changed underneath (lost lease, conflict).
    pub turns_discarded: u64,
    /// Activity results committed.
    pub activities: u64,
    /// Events delivered straight into the turn that consumed them (one commit instead of two).
    pub direct_events: u64,
    /// Times this node left work to another because it lacks the orchestrator or activity.
    pub stalls: u64,
    /// Executions currently cached.
    pub cached_executions: u64,
}

/// Errors of starting a runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options are invalid.
    #[error("invalid runtime options: {0}")]
    InvalidOptions(durable_core::InvalidSetting),
}

/// A running node: dispatchers for orchestrations and activities.
pub struct Runtime {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Runtime {
    /// Starts the dispatchers on the current tokio runtime.
    pub fn start(
        store: Arc<dyn Store>,
        registry: Registry,
        options: RuntimeOptions,
    ) -> Result<Runtime, Error> {
        Runtime::start_with_clock(store, registry, options, Arc::new(SystemClock))
    }

    /// Starts with a custom clock (tests).
    pub fn start_with_clock(
        store: Arc<dyn Store>,
        registry: Registry,
        options: RuntimeOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Runtime, Error> {
        options.validate().map_err(Error::InvalidOptions)?;
        let meters = metrics::Metrics::new(&registry.orchestrator_names(), &registry.activity_names());
        let shared = Arc::new(Shared {
            store,
            registry: Arc::new(registry),
            cache: ExecutionCache::new(options.execution_cache_capacity),
            options,
            clock,
            shutdown: CancellationToken::new(),
            metrics: Counters::default(),
            stalls: stalls::Stalls::default(),
            meters,
            spans: tracing_spans::installed(),
        });
        let tasks = vec![
            tokio::spawn(dispatch::run::<orchestrations::Orchestrations>(shared.clone())),
            tokio::spawn(dispatch::run::<activities::Activities>(shared.clone())),
        ];
        Ok(Runtime { shared, tasks })
    }

    /// A client of this node.
    pub fn client(&self) -> Client {
        Client::new(self.shared.clone())
    }

    /// The store this node runs on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The registry of this node.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Current counters.
    pub fn metrics(&self) -> RuntimeMetrics {
        let m = &self.shared.metrics;
        RuntimeMetrics {
            turns: m.turns.load(Ordering::Relaxed),
            replays: m.replays.load(Ordering::Relaxed),
            turns_discarded: m.turns_discarded.load(Ordering::Relaxed),
            activities: m.activities.load(Ordering::Relaxed),
            direct_events: m.direct_events.load(Ordering::Relaxed),
            stalls: m.stalls.load(Ordering::Relaxed),
            cached_executions: self.shared.cache.stats().0 as u64,
        }
    }

    /// Stops fetching work, waits for running turns and activities (up to the grace period;
    /// the rest is redelivered after restart), and returns. Does not close the store.
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
