//! A minimal OTLP/HTTP trace receiver on loopback: what an OpenTelemetry collector's
//! `otlp` receiver does on port 4318 for traces, and nothing more. It decodes each
//! `POST /v1/traces` (protobuf `ExportTraceServiceRequest`, from the official OpenTelemetry
//! definitions) and keeps the spans, so the benchmark can count what tracing exported and the
//! end-to-end tests can check the span tree.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// One received span, in plain types.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, empty for a root.
    pub parent_span_id: String,
    /// Span name.
    pub name: String,
    /// OTLP span kind (1 internal, 2 server, 3 client, …).
    pub kind: i32,
    /// Start, Unix nanoseconds.
    pub start_ns: u64,
    /// End, Unix nanoseconds.
    pub end_ns: u64,
    /// Attributes whose values are strings, booleans or integers, as text.
    pub attributes: BTreeMap<String, String>,
    /// Span events: (Unix nanoseconds, name).
    pub events: Vec<(u64, String)>,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    /// `service.name` of the resource that sent it.
    pub service_name: String,
}

struct Shared {
    spans: parking_lot::Mutex<Vec<ReceivedSpan>>,
    count: AtomicU64,
    keep: bool,
    arrived: Notify,
}

/// A running receiver; it stops when dropped.
pub struct OtlpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpSink {
    /// Starts a receiver on 127.0.0.1 (a free port). With `keep`, received spans are kept for
    /// [`spans`](Self::spans); without, only counted (a benchmark's millions of spans).
    pub async fn start(keep: bool) -> std::io::Result<OtlpSink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            spans: parking_lot::Mutex::new(Vec::new()),
            count: AtomicU64::new(0),
            keep,
            arrived: Notify::new(),
        });
        let app = Router::new().route("/v1/traces", post(receive)).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(OtlpSink { addr, shared, task })
    }

    /// The base URL to give as `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends `/v1/traces`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Spans received so far.
    pub fn count(&self) -> u64 {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// The kept spans, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared.spans.lock().clone()
    }

    /// Waits until the kept spans satisfy `done` (checked at every arrival), up to `deadline`;
    /// returns them either way.
    pub async fn wait_until(
        &self,
        deadline: Duration,
        mut done: impl FnMut(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let arrived = self.shared.arrived.notified();
            {
                let spans = self.shared.spans.lock();
                if done(&spans) {
                    return spans.clone();
                }
            }
            if tokio::time::timeout_at(until, arrived).await.is_err() {
                return self.spans();
            }
        }
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let protobuf = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-protobuf"));
    if !protobuf {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "this receiver takes application/x-protobuf")
            .into_response();
    }
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("not an ExportTraceServiceRequest: {e}"))
                .into_response();
        }
    };
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let service_name = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref().and_then(|v| text(v.value.as_ref())))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    start_ns: span.start_time_unix_nano,
                    end_ns: span.end_time_unix_nano,
                    attributes: span
                        .attributes
                        .iter()
                        .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?.value.as_ref())?)))
                        .collect(),
                    events: span.events.into_iter().map(|e| (e.time_unix_nano, e.name)).collect(),
                    status_code: span.status.map_or(0, |s| s.code),
                    service_name: service_name.clone(),
                });
            }
        }
    }
    shared.count.fetch_add(received.len() as u64, Ordering::Relaxed);
    if shared.keep {
        shared.spans.lock().extend(received);
    }
    shared.arrived.notify_waiters();
    let mut response = ExportTraceServiceResponse::default().encode_to_vec().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, "application/x-protobuf".parse().expect("valid"));
    response
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::StringValue(s) => Some(s.clone()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
