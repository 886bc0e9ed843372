//! Distributed tracing of orchestrations (W3C trace context), independent of any exporter.
//!
//! An orchestration is one span from the start request to its end, a child of the caller's span
//! when the start request carried a `traceparent`. Its identity (trace id, span id, parent) is
//! chosen when the instance is created and recorded in `ExecutionStarted`
//! ([`TraceContext`]), so every node, before or after a restart, refers to the same span.
//! Like Durable Functions, the orchestration span is emitted once, when the orchestration ends,
//! with its true start time; its children are emitted as they end:
//!
//! - each activity execution: a live span around the activity code, on whichever node runs it;
//! - each durable timer: from `TimerCreated` to its firing (or its cancellation);
//! - each sub-orchestration: the child's own orchestration span, a child of this one;
//! - each raised event: a mark (span event) on the orchestration span, at the time it was
//!   raised (its name only, never its data).
//!
//! The state needed for that ([`ExecutionTrace`]) lives beside the cached execution and is
//! rebuilt from history on replay. Spans are only handed to the [`SpanSink`] after the turn that
//! produced them committed, so a turn that is redone emits nothing twice. Nothing here runs
//! unless a sink is installed ([`install`]): with tracing off, no state is kept and nothing is
//! written to history.

use durable_core::{EventKind, HistoryEvent, TaskId, Timestamp, TraceContext};
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::SystemTime;

/// Most event marks kept per orchestration span (OpenTelemetry's default span event limit);
/// later ones are counted, not kept, so memory stays bounded for long-lived orchestrations.
pub const MAX_EVENT_MARKS: usize = 128;

/// Where finished spans go (the OpenTelemetry pipeline of `durable-server`).
pub trait SpanSink: Send + Sync + 'static {
    /// Exports a span that already ended (an orchestration or a timer).
    fn finished(&self, span: FinishedSpan);

    /// A live span around one activity execution, a child of `parent`; the runtime runs the
    /// activity inside it and ends it when the activity returns.
    fn activity_span(
        &self,
        parent: &SpanRef,
        activity: &str,
        instance_id: &str,
        attempt: u32,
    ) -> tracing::Span;

    /// Marks a live activity span as failed.
    fn activity_failed(&self, span: &tracing::Span, message: &str);
}

static SINK: RwLock<Option<Arc<dyn SpanSink>>> = RwLock::new(None);

/// Installs the sink that runtimes started from now on send their spans to (once per process,
/// by whoever sets up the exporter). Runtimes started before keep what they had.
pub fn install(sink: Arc<dyn SpanSink>) {
    *SINK.write() = Some(sink);
}

/// Removes the installed sink (runtimes started later do not trace).
pub fn uninstall() {
    *SINK.write() = None;
}

pub(crate) fn installed() -> Option<Arc<dyn SpanSink>> {
    SINK.read().clone()
}

/// The identity of a span as W3C trace context carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanRef {
    /// 16 bytes.
    pub trace_id: [u8; 16],
    /// 8 bytes.
    pub span_id: [u8; 8],
    /// W3C trace flags (bit 0: sampled).
    pub flags: u8,
    /// W3C `tracestate`, handed on unchanged.
    pub tracestate: Option<String>,
}

impl SpanRef {
    /// Parses a W3C `traceparent` (`00-{32 hex}-{16 hex}-{2 hex}`; later versions are read by
    /// their first four fields, as the specification asks). `None` for anything invalid,
    /// including all-zero ids.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<SpanRef> {
        let value = traceparent.trim();
        let mut parts = value.split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        hex::<1>(version)?;
        let trace_id = hex::<16>(trace)?;
        let span_id = hex::<8>(span)?;
        let [flags] = hex::<1>(flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        let tracestate = tracestate.map(str::trim).filter(|s| !s.is_empty() && s.len() <= 512);
        Some(SpanRef { trace_id, span_id, flags, tracestate: tracestate.map(str::to_owned) })
    }

    /// The `traceparent` header value naming this span.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", to_hex(&self.trace_id), to_hex(&self.span_id), self.flags)
    }

    /// Whether the trace is sampled (recorded) upstream.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// A new span in the same trace (a child of this one).
    fn child(&self) -> SpanRef {
        SpanRef { span_id: random_span_id(), ..self.clone() }
    }

    /// The context of a new execution: a new span, child of `parent` (the caller's span or the
    /// parent orchestration's), or the root of a new, sampled trace.
    pub fn new_execution(parent: Option<&SpanRef>) -> TraceContext {
        let (own, parent_span_id) = match parent {
            Some(p) => (p.child(), Some(to_hex(&p.span_id))),
            None => {
                let trace_id = uuid::Uuid::new_v4().into_bytes();
                (SpanRef { trace_id, span_id: random_span_id(), flags: 1, tracestate: None }, None)
            }
        };
        TraceContext { traceparent: own.traceparent(), parent_span_id, tracestate: own.tracestate }
    }

    /// The execution's own span, as recorded.
    pub fn of(trace: &TraceContext) -> Option<SpanRef> {
        SpanRef::parse(&trace.traceparent, trace.tracestate.as_deref())
    }
}

fn random_span_id() -> [u8; 8] {
    loop {
        let id = (uuid::Uuid::new_v4().as_u128() as u64).to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

/// A span id derived from `parent` and `n` (FNV-1a: stable across builds and nodes).
fn derived_span_id(parent: &[u8; 8], n: TaskId) -> [u8; 8] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parent.iter().chain(&n.to_be_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if hash == 0 { 1u64.to_be_bytes() } else { hash.to_be_bytes() }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes of lower-case hex (W3C forbids upper case).
fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The span id in `parent_span_id`, parsed.
pub fn parse_span_id(s: &str) -> Option<[u8; 8]> {
    hex::<8>(s).filter(|id| *id != [0; 8])
}

/// What kind of work a span stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// An orchestration execution (OpenTelemetry kind `server`, as in Durable Functions).
    Orchestration,
    /// A durable timer (kind `internal`).
    Timer,
}

/// Span or event attributes: (key, value).
pub type Attributes = Vec<(&'static str, String)>;

/// A span that ended, ready for export.
#[derive(Clone, Debug)]
pub struct FinishedSpan {
    /// What it stands for.
    pub kind: SpanKind,
    /// Its name, e.g. `orchestration:E4_SmsPhoneVerification`.
    pub name: String,
    /// Trace id and flags (and, for orchestrations, its own recorded span id).
    pub span: SpanRef,
    /// Whether `span.span_id` is the span's id (orchestrations, whose id is recorded in
    /// history) or only its trace (timers get a fresh id).
    pub own_id: bool,
    /// The parent span id; `None` for a root.
    pub parent_span_id: Option<[u8; 8]>,
    /// Start.
    pub start: SystemTime,
    /// End.
    pub end: SystemTime,
    /// Attributes (bounded values: names, ids, statuses; never inputs or outputs).
    pub attributes: Attributes,
    /// Marks: (time, name, attributes).
    pub events: Vec<(SystemTime, String, Attributes)>,
    /// The error message, when the work failed.
    pub error: Option<String>,
}

/// `t` as a `SystemTime` (times before 1970 are clamped to the epoch).
pub fn system_time(t: Timestamp) -> SystemTime {
    let nanos = u64::try_from(t.as_nanosecond()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(nanos)
}

/// The tracing state of one execution: what is needed to emit its spans later.
#[derive(Debug)]
pub struct ExecutionTrace {
    span: SpanRef,
    parent_span_id: Option<[u8; 8]>,
    orchestrator: String,
    instance_id: String,
    execution_id: String,
    started_at: Timestamp,
    /// Timers created and not yet fired or cancelled: (id, created, due).
    timers: Vec<(TaskId, Timestamp, Timestamp)>,
    /// Raised events: (time, name).
    events: Vec<(Timestamp, String)>,
    events_dropped: u32,
}

impl ExecutionTrace {
    /// The state of an execution that starts with `started` (an `ExecutionStarted`), if it
    /// carries a trace context.
    pub(crate) fn start(instance_id: &str, execution_id: &str, started: &HistoryEvent) -> Option<Self> {
        let EventKind::ExecutionStarted { name, trace: Some(trace), .. } = &started.kind else { return None };
        let span = SpanRef::of(trace)?;
        Some(ExecutionTrace {
            span,
            parent_span_id: trace.parent_span_id.as_deref().and_then(parse_span_id),
            orchestrator: name.clone(),
            instance_id: instance_id.to_owned(),
            execution_id: execution_id.to_owned(),
            started_at: started.timestamp,
            timers: Vec::new(),
            events: Vec::new(),
            events_dropped: 0,
        })
    }

    /// Rebuilds the state from a stored history (replay). Timers cancelled before are not
    /// recorded in history, so they look open; they are simply never emitted.
    pub(crate) fn from_history(
        instance_id: &str,
        execution_id: &str,
        history: &[HistoryEvent],
    ) -> Option<Self> {
        let started = history.iter().find(|e| matches!(e.kind, EventKind::ExecutionStarted { .. }))?;
        let mut trace = ExecutionTrace::start(instance_id, execution_id, started)?;
        for event in history {
            match &event.kind {
                EventKind::TimerCreated { id, fire_at } => {
                    trace.timers.push((*id, event.timestamp, *fire_at));
                }
                EventKind::TimerFired { timer_id, .. } => trace.timers.retain(|t| t.0 != *timer_id),
                EventKind::EventRaised { name, .. } => trace.mark_event(event.timestamp, name),
                _ => {}
            }
        }
        Some(trace)
    }

    /// The execution's span.
    pub fn span(&self) -> &SpanRef {
        &self.span
    }

    /// Whether spans of this execution are recorded (sampled upstream).
    fn sampled(&self) -> bool {
        self.span.sampled()
    }

    fn mark_event(&mut self, at: Timestamp, name: &str) {
        if self.events.len() < MAX_EVENT_MARKS {
            self.events.push((at, name.to_owned()));
        } else {
            self.events_dropped += 1;
        }
    }

    /// Takes in the inbound events of a turn (before it runs): fired timers end their spans,
    /// raised events become marks.
    pub(crate) fn inbound(&mut self, events: &[HistoryEvent], now: Timestamp, out: &mut Vec<FinishedSpan>) {
        for event in events {
            match &event.kind {
                EventKind::TimerFired { timer_id, .. } => self.end_timer(*timer_id, now, false, out),
                EventKind::EventRaised { name, .. } => self.mark_event(event.timestamp, name),
                _ => {}
            }
        }
    }

    /// Takes in what a turn recorded and did: new timers start, cancelled ones end.
    pub(crate) fn outbound(
        &mut self,
        recorded: &[HistoryEvent],
        cancelled: &[TaskId],
        now: Timestamp,
        out: &mut Vec<FinishedSpan>,
    ) {
        for event in recorded {
            if let EventKind::TimerCreated { id, fire_at } = &event.kind {
                self.timers.push((*id, event.timestamp, *fire_at));
            }
        }
        for id in cancelled {
            self.end_timer(*id, now, true, out);
        }
    }

    fn end_timer(&mut self, id: TaskId, now: Timestamp, cancelled: bool, out: &mut Vec<FinishedSpan>) {
        let Some(i) = self.timers.iter().position(|t| t.0 == id) else { return };
        let (_, created, due) = self.timers.swap_remove(i);
        out.extend(self.timer_span(id, created, due, now, cancelled));
    }

    /// The span of timer `id`. Its id is derived from the orchestration's span and the timer's
    /// id, so a timer reported twice (cancelled, then the node restarted before the end: history
    /// does not record cancellations) is the same span twice, not two timers.
    fn timer_span(
        &self,
        id: TaskId,
        created: Timestamp,
        due: Timestamp,
        now: Timestamp,
        cancelled: bool,
    ) -> Option<FinishedSpan> {
        if !self.sampled() {
            return None;
        }
        let mut attributes = self.common_attributes("timer");
        attributes.push(("durabletask.task.task_id", id.to_string()));
        attributes.push(("durabletask.fire_at", due.to_string()));
        if cancelled {
            attributes.push(("durabletask.timer.cancelled", "true".into()));
        }
        let span = SpanRef { span_id: derived_span_id(&self.span.span_id, id), ..self.span.clone() };
        Some(FinishedSpan {
            kind: SpanKind::Timer,
            name: format!("orchestration:{}:timer", self.orchestrator),
            span,
            own_id: true,
            parent_span_id: Some(self.span.span_id),
            start: system_time(created),
            end: system_time(now.max(created)),
            attributes,
            events: Vec::new(),
            error: None,
        })
    }

    fn common_attributes(&self, kind: &str) -> Vec<(&'static str, String)> {
        vec![
            ("durabletask.type", kind.to_owned()),
            ("durabletask.task.name", self.orchestrator.clone()),
            ("durabletask.task.instance_id", self.instance_id.clone()),
            ("durabletask.task.execution_id", self.execution_id.clone()),
        ]
    }

    /// The spans of an execution that ended at `now` with `status` (and `error` when it
    /// failed): its timers still open (ended with it; the engine drops the cancellations of a
    /// finishing turn) and the orchestration span itself.
    pub(crate) fn finish(
        &mut self,
        status: &str,
        error: Option<String>,
        now: Timestamp,
        out: &mut Vec<FinishedSpan>,
    ) {
        for (id, created, due) in std::mem::take(&mut self.timers) {
            out.extend(self.timer_span(id, created, due, now, true));
        }
        out.extend(self.orchestration_span(status, error, now));
    }

    fn orchestration_span(
        &self,
        status: &str,
        error: Option<String>,
        now: Timestamp,
    ) -> Option<FinishedSpan> {
        if !self.sampled() {
            return None;
        }
        let mut attributes = self.common_attributes("orchestration");
        attributes.push(("durabletask.runtime_status", status.to_owned()));
        if self.events_dropped > 0 {
            attributes.push(("durabletask.events_not_marked", self.events_dropped.to_string()));
        }
        let events = self
            .events
            .iter()
            .map(|(at, name)| {
                (system_time(*at), format!("event:{name}"), vec![("durabletask.event.name", name.clone())])
            })
            .collect();
        Some(FinishedSpan {
            kind: SpanKind::Orchestration,
            name: format!("orchestration:{}", self.orchestrator),
            span: self.span.clone(),
            own_id: true,
            parent_span_id: self.parent_span_id,
            start: system_time(self.started_at),
            end: system_time(now.max(self.started_at)),
            attributes,
            events,
            error,
        })
    }

    /// The context of a sub-orchestration this execution starts: a child span in its trace.
    pub(crate) fn child_context(&self) -> TraceContext {
        SpanRef::new_execution(Some(&self.span))
    }

    /// The context of the next execution after `continue_as_new`: a new span with the same
    /// parent (executions of one instance are siblings in the caller's trace).
    pub(crate) fn next_execution_context(&self) -> TraceContext {
        let own = self.span.child();
        TraceContext {
            traceparent: own.traceparent(),
            parent_span_id: self.parent_span_id.map(|id| to_hex(&id)),
            tracestate: own.tracestate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn traceparent_round_trips_and_rejects_garbage() {
        let r = SpanRef::parse(TP, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(r.traceparent(), TP);
        assert!(r.sampled());
        assert_eq!(r.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-xyz7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert!(SpanRef::parse(bad, None).is_none(), "{bad}");
        }
        // A later version may append fields.
        assert!(SpanRef::parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-xx", None).is_some());
    }

    #[test]
    fn a_new_execution_is_a_child_of_the_caller_or_a_new_root() {
        let caller = SpanRef::parse(TP, None).unwrap();
        let ctx = SpanRef::new_execution(Some(&caller));
        let own = SpanRef::of(&ctx).unwrap();
        assert_eq!(own.trace_id, caller.trace_id);
        assert_ne!(own.span_id, caller.span_id);
        assert_eq!(ctx.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
        let root = SpanRef::new_execution(None);
        assert!(root.parent_span_id.is_none());
        assert!(SpanRef::of(&root).unwrap().sampled());
    }

    #[test]
    fn timers_and_events_become_spans_and_marks() {
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let started = HistoryEvent::new(
            t(0),
            EventKind::ExecutionStarted {
                name: "O".into(),
                input: None,
                parent: None,
                trace: Some(SpanRef::new_execution(Some(&SpanRef::parse(TP, None).unwrap()))),
            },
        );
        let mut trace = ExecutionTrace::start("i", "e", &started).unwrap();
        let mut out = Vec::new();
        trace.outbound(
            &[HistoryEvent::new(t(1), EventKind::TimerCreated { id: 1, fire_at: t(91) })],
            &[],
            t(1),
            &mut out,
        );
        let raised =
            HistoryEvent::new(t(5), EventKind::EventRaised { name: "E".into(), input: None, id: None });
        trace.inbound(&[raised], t(6), &mut out);
        trace.outbound(&[], &[1], t(6), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].parent_span_id, Some(trace.span().span_id));
        assert_eq!((out[0].start, out[0].end), (system_time(t(1)), system_time(t(6))));
        let mut ended = Vec::new();
        trace.finish("Completed", None, t(6), &mut ended);
        let [done] = &ended[..] else { panic!("{ended:?}") };
        assert_eq!(done.start, system_time(t(0)));
        assert_eq!(done.events.len(), 1);
        assert_eq!(done.parent_span_id, parse_span_id("b7ad6b7169203331"));
    }
}
