//! OpenTelemetry traces over OTLP (HTTP/protobuf), configured by the standard `OTEL_*`
//! environment variables and off unless an OTLP endpoint is set.
//!
//! One [`SdkTracerProvider`] with a batch processor and the `opentelemetry-otlp` exporter
//! carries two kinds of spans:
//!
//! - spans that end long after they start and whose identity is recorded in history (an
//!   orchestration, from its start request to its end, possibly across restarts and nodes;
//!   timers): the runtime hands them over when they end ([`SpanSink::finished`]) and they are
//!   built with the SDK's span builder, with their recorded ids and true start times;
//! - live spans around activity code, which are `tracing` spans turned into OpenTelemetry spans
//!   by `tracing-opentelemetry` ([`Tracing::layer`]), so spans the activity code opens itself
//!   can nest under them.
//!
//! The SDK chooses span ids itself; to give an orchestration span the id recorded in its
//! history, the provider's id generator ([`RecordedIds`]) hands out a preset id when one is
//! set for the current thread, and random ids otherwise.

use durable_runtime::tracing_spans::{FinishedSpan, SpanKind as DurableKind, SpanRef, SpanSink};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider};
use std::cell::Cell;
use std::str::FromStr;
use std::sync::Arc;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Target of the `tracing` spans that are exported (and only those: the layer ignores the
/// process's other spans, which are for logs).
pub const SPAN_TARGET: &str = "durable::otel";

/// Service name reported when `OTEL_SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "durable";

/// Errors of setting up tracing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is not supported or invalid.
    #[error("OpenTelemetry: {0}")]
    Config(String),
}

/// The tracing pipeline of a node.
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Tracing {
    /// The pipeline the `OTEL_*` environment asks for: `None` (tracing off) unless
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and
    /// `OTEL_SDK_DISABLED` is not `true`, and `OTEL_TRACES_EXPORTER` is not `none`). The
    /// exporter honours the other standard variables (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`,
    /// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`,
    /// `OTEL_BSP_*`). The protocol is HTTP/protobuf (a collector's port 4318).
    pub fn from_env() -> Result<Option<Tracing>, Error> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        if var("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() && var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        {
            return Ok(None);
        }
        for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Some(protocol) = var(name) {
                if protocol.trim() != "http/protobuf" {
                    return Err(Error::Config(format!(
                        "{name}={protocol} is not supported: durable exports OTLP over HTTP/protobuf; set \
                         {name}=http/protobuf (or unset it) and point OTEL_EXPORTER_OTLP_ENDPOINT at the \
                         collector's HTTP port (usually 4318)"
                    )));
                }
                break;
            }
        }
        if let Some(exporter) = var("OTEL_TRACES_EXPORTER")
            && !exporter.trim().eq_ignore_ascii_case("otlp")
        {
            return Err(Error::Config(format!(
                "OTEL_TRACES_EXPORTER={exporter} is not supported: durable exports to OTLP only (or `none`)"
            )));
        }
        Tracing::build(None).map(Some)
    }

    /// A pipeline that exports to the OTLP/HTTP trace endpoint `url` (e.g.
    /// `http://127.0.0.1:4318/v1/traces`), whatever the environment says about the endpoint.
    pub fn to_endpoint(url: &str) -> Result<Tracing, Error> {
        Tracing::build(Some(url))
    }

    fn build(endpoint: Option<&str>) -> Result<Tracing, Error> {
        use opentelemetry_otlp::WithExportConfig;
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
        if let Some(url) = endpoint {
            exporter = exporter.with_endpoint(url);
        }
        let exporter =
            exporter.build().map_err(|e| Error::Config(format!("cannot build the OTLP exporter: {e}")))?;
        let mut resource = Resource::builder();
        if var("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(DEFAULT_SERVICE_NAME);
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_id_generator(RecordedIds::default())
            .with_resource(resource.build())
            .build();
        Ok(Tracing::with_provider(provider))
    }

    /// A pipeline on `provider` (tests give one with an in-memory exporter). The provider must
    /// use [`RecordedIds`] as its id generator, or orchestration spans get random ids.
    pub fn with_provider(provider: SdkTracerProvider) -> Tracing {
        let tracer = provider.tracer("durable");
        Tracing { provider, tracer }
    }

    /// The `tracing` layer that exports the live spans (activity executions). Add it to the
    /// process's subscriber; it only takes spans of [`SPAN_TARGET`].
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer;
        let targets =
            tracing_subscriber::filter::Targets::new().with_target(SPAN_TARGET, tracing::Level::INFO);
        tracing_opentelemetry::layer().with_tracer(self.tracer.clone()).with_filter(targets)
    }

    /// Makes runtimes started from now on trace their orchestrations through this pipeline.
    pub fn install(&self) {
        durable_runtime::tracing_spans::install(Arc::new(Sink { tracer: self.tracer.clone() }));
    }

    /// Stops tracing: exports what is pending (waiting up to the exporter's timeout) and shuts
    /// the pipeline down.
    pub fn shutdown(self) {
        durable_runtime::tracing_spans::uninstall();
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "exporting the last spans failed");
        }
    }
}

thread_local! {
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
    static NEXT_SPAN_ID: Cell<Option<SpanId>> = const { Cell::new(None) };
}

/// The provider's id generator: random ids, except for a span built while an id is preset on
/// the current thread (`with_ids`), which gets that id (an orchestration's recorded identity).
#[derive(Debug, Default)]
pub struct RecordedIds {
    random: RandomIdGenerator,
}

impl IdGenerator for RecordedIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID.take().unwrap_or_else(|| self.random.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_SPAN_ID.take().unwrap_or_else(|| self.random.new_span_id())
    }
}

/// Runs `build` (which builds one span, synchronously) with the ids the span must get.
fn with_ids<R>(trace_id: TraceId, span_id: SpanId, build: impl FnOnce() -> R) -> R {
    NEXT_TRACE_ID.set(Some(trace_id));
    NEXT_SPAN_ID.set(Some(span_id));
    let result = build();
    // A span the sampler dropped may not have asked for them.
    NEXT_TRACE_ID.set(None);
    NEXT_SPAN_ID.set(None);
    result
}

/// The remote context of span `span_id` in the trace of `span`.
fn remote_context(span: &SpanRef, span_id: [u8; 8]) -> Context {
    let state = span.tracestate.as_deref().and_then(|s| TraceState::from_str(s).ok()).unwrap_or_default();
    let context = SpanContext::new(
        TraceId::from_bytes(span.trace_id),
        SpanId::from_bytes(span_id),
        TraceFlags::new(span.flags),
        true,
        state,
    );
    Context::new().with_remote_span_context(context)
}

/// The runtime's spans, into the SDK.
struct Sink {
    tracer: SdkTracer,
}

impl SpanSink for Sink {
    fn finished(&self, span: FinishedSpan) {
        use opentelemetry::trace::Span as _;
        let parent = span.parent_span_id.map_or_else(Context::new, |id| remote_context(&span.span, id));
        let kind = match span.kind {
            DurableKind::Orchestration => SpanKind::Server,
            DurableKind::Timer => SpanKind::Internal,
        };
        let attributes = span.attributes.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect::<Vec<_>>();
        let events = span
            .events
            .into_iter()
            .map(|(at, name, attrs)| {
                let attrs = attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
                opentelemetry::trace::Event::new(name, at, attrs, 0)
            })
            .collect();
        let builder = self
            .tracer
            .span_builder(span.name)
            .with_kind(kind)
            .with_start_time(span.start)
            .with_attributes(attributes)
            .with_events(events);
        let build = || builder.start_with_context(&self.tracer, &parent);
        let mut otel = if span.own_id {
            with_ids(TraceId::from_bytes(span.span.trace_id), SpanId::from_bytes(span.span.span_id), build)
        } else {
            build()
        };
        if let Some(message) = span.error {
            otel.set_status(Status::error(message));
        }
        otel.end_with_timestamp(span.end);
    }

    fn activity_span(
        &self,
        parent: &SpanRef,
        activity: &str,
        instance_id: &str,
        attempt: u32,
    ) -> tracing::Span {
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "activity",
            otel.name = format!("activity:{activity}"),
            otel.kind = "server",
            durabletask.type = "activity",
            durabletask.task.name = activity,
            durabletask.task.instance_id = instance_id,
            durabletask.task.attempt = attempt,
        );
        let _ = span.set_parent(remote_context(parent, parent.span_id));
        span
    }

    fn activity_failed(&self, span: &tracing::Span, message: &str) {
        span.set_status(Status::error(message.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_runtime::tracing_spans::parse_span_id;
    use opentelemetry_sdk::trace::InMemorySpanExporter;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_finished_span_keeps_its_recorded_identity_and_times() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .with_id_generator(RecordedIds::default())
            .build();
        let sink = Sink { tracer: Tracing::with_provider(provider).tracer };
        let own = SpanRef::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None).unwrap();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        sink.finished(FinishedSpan {
            kind: DurableKind::Orchestration,
            name: "orchestration:O".into(),
            span: own.clone(),
            own_id: true,
            parent_span_id: parse_span_id("00f067aa0ba902b7"),
            start,
            end: start + Duration::from_secs(90),
            attributes: vec![("durabletask.type", "orchestration".into())],
            events: vec![(start + Duration::from_secs(5), "event:E".into(), Vec::new())],
            error: None,
        });
        // An ordinary span afterwards gets a random id again.
        sink.finished(FinishedSpan {
            kind: DurableKind::Timer,
            name: "orchestration:O:timer".into(),
            span: own.clone(),
            own_id: false,
            parent_span_id: Some(own.span_id),
            start,
            end: start,
            attributes: Vec::new(),
            events: Vec::new(),
            error: None,
        });
        let spans = exporter.get_finished_spans().unwrap();
        let [orchestration, timer] = &spans[..] else { panic!("{spans:?}") };
        assert_eq!(orchestration.span_context.trace_id(), TraceId::from_bytes(own.trace_id));
        assert_eq!(orchestration.span_context.span_id(), SpanId::from_bytes(own.span_id));
        assert_eq!(orchestration.parent_span_id, SpanId::from_hex("00f067aa0ba902b7").unwrap());
        assert_eq!(
            (orchestration.start_time, orchestration.end_time),
            (start, start + Duration::from_secs(90))
        );
        assert_eq!(orchestration.events.len(), 1);
        assert_eq!(timer.parent_span_id, SpanId::from_bytes(own.span_id));
        assert_ne!(timer.span_context.span_id(), SpanId::from_bytes(own.span_id));
        assert_eq!(timer.span_context.trace_id(), TraceId::from_bytes(own.trace_id));
    }
}
