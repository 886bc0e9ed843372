//! [`Shared`]: the state the dispatchers and clients of one runtime share.

use crate::cache::ExecutionCache;
use crate::options::RuntimeOptions;
use crate::registry::Registry;
use crate::{metrics, stalls, tracing_spans};
use durable_store::{Clock, Store};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio_util::sync::CancellationToken;

/// State shared by the dispatchers and clients of one runtime.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) options: RuntimeOptions,
    pub(crate) cache: ExecutionCache,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) metrics: Counters,
    pub(crate) stalls: stalls::Stalls,
    /// Prometheus-style metrics (no-ops without a recorder).
    pub(crate) meters: metrics::Metrics,
    /// Where spans go; `None` when tracing is off.
    pub(crate) spans: Option<Arc<dyn tracing_spans::SpanSink>>,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) turns: AtomicU64,
    pub(crate) replays: AtomicU64,
    pub(crate) turns_discarded: AtomicU64,
    pub(crate) activities: AtomicU64,
    pub(crate) direct_events: AtomicU64,
    pub(crate) stalls: AtomicU64,
}
