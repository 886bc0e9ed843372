//! `--metrics` and `--tracing`: the observability `durable serve` runs with, for measuring its
//! cost.

use crate::otlp_sink::OtlpSink;
use anyhow::Context;
use durable_server::otel::Tracing;
use metrics_exporter_prometheus::PrometheusHandle;

/// What a run records besides its own measurements.
pub(crate) struct Observe {
    metrics: Option<PrometheusHandle>,
    tracing: Option<(Tracing, Option<OtlpSink>)>,
}

impl Observe {
    /// Installs what the flags ask for; call before the node starts.
    pub(crate) async fn start(metrics: bool, tracing: bool) -> anyhow::Result<Observe> {
        let metrics = metrics.then(durable_http::metrics::install_recorder);
        let tracing = if tracing {
            let (pipeline, sink) = match Tracing::from_env()? {
                Some(pipeline) => (pipeline, None),
                None => {
                    let sink = OtlpSink::start(false).await.context("cannot start the OTLP receiver")?;
                    (Tracing::to_endpoint(&format!("{}/v1/traces", sink.endpoint()))?, Some(sink))
                }
            };
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            let _ = tracing_subscriber::registry().with(pipeline.layer()).try_init();
            pipeline.install();
            Some((pipeline, sink))
        } else {
            None
        };
        Ok(Observe { metrics, tracing })
    }

    /// Flushes the spans and reports what was recorded: (name, value) pairs for the report.
    pub(crate) async fn finish(self) -> Vec<(String, f64)> {
        let mut extra = Vec::new();
        if let Some(handle) = self.metrics {
            let text = handle.render();
            let series = text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).count();
            extra.push(("metrics_series".into(), series as f64));
        }
        if let Some((pipeline, sink)) = self.tracing {
            // Shutting down blocks until the exporter answered: off the async threads.
            let _ = tokio::task::spawn_blocking(move || pipeline.shutdown()).await;
            if let Some(sink) = sink {
                extra.push(("spans_exported".into(), sink.count() as f64));
            }
        }
        extra
    }
}
