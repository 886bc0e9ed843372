//! [`Client`]: start and manage orchestration instances (the API the HTTP layer serves).

mod inspect;

use crate::orchestrations::new_execution_id;
use crate::shared::Shared;
use crate::tracing_spans::SpanRef;
use durable_core::{EventKind, HistoryEvent, Payload, RuntimeStatus};
use durable_store::{
    CreateInstance, Error as StoreError, InstancePage, InstanceQuery, InstanceState, LimitRefund,
    LimitRefusal, PurgeFilter,
};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Longest allowed instance id, in bytes.
pub const MAX_INSTANCE_ID_LEN: usize = 256;
/// Longest allowed event name, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 256;

/// Errors of client operations; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such instance.
    #[error("instance '{0}' was not found")]
    NotFound(String),
    /// Starting an id whose instance has not finished.
    #[error("instance '{instance_id}' already exists and is {status}; use another id, or terminate it first")]
    AlreadyExists {
        /// The id.
        instance_id: String,
        /// Its status.
        status: RuntimeStatus,
    },
    /// The instance has finished.
    #[error("instance '{instance_id}' has already finished ({status})")]
    InstanceFinished {
        /// The id.
        instance_id: String,
        /// Its final status.
        status: RuntimeStatus,
    },
    /// Starting an orchestrator this node does not know.
    #[error("no orchestrator named '{name}' is registered (registered: {registered})")]
    UnknownOrchestrator {
        /// The name asked for.
        name: String,
        /// The registered names.
        registered: String,
    },
    /// The instance id breaks the rules.
    #[error("invalid instance id: {0}")]
    InvalidInstanceId(String),
    /// The event name breaks the rules.
    #[error("invalid event name: {0}")]
    InvalidEventName(String),
    /// The input or event data was rejected.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A rate limit of the orchestrator's start guard refused the start; nothing was created.
    #[error("{0}")]
    RateLimited(LimitRefusal),
    /// Rewind of an instance that is not `Failed`: only failures are rewound.
    #[error("instance '{instance_id}' is {status}; only Failed instances can be rewound")]
    NotFailed {
        /// The id.
        instance_id: String,
        /// Its status.
        status: RuntimeStatus,
    },
    /// The operation does not fit the instance's state (e.g. resuming a running instance).
    #[error("{0}")]
    Conflict(String),
    /// `wait_for_completion` gave up.
    #[error("instance '{instance_id}' did not finish within {timeout:?}")]
    Timeout {
        /// The id.
        instance_id: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { instance_id } => Error::NotFound(instance_id),
            StoreError::AlreadyExists { instance_id, status } => Error::AlreadyExists { instance_id, status },
            StoreError::InstanceFinished { instance_id, status } => {
                Error::InstanceFinished { instance_id, status }
            }
            StoreError::RateLimited(refusal) => Error::RateLimited(refusal),
            other => Error::Store(other),
        }
    }
}

/// Result of client operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The rules of instance ids, for error messages.
pub const INSTANCE_ID_RULES: &str = "an instance id is 1 to 256 bytes of printable characters: not '.' and '..' \
     (path segments), no whitespace at either end, no control, bidirectional or invisible formatting characters, \
     none of / \\ # ?, and not starting with '@'";

/// Checks an instance id against [`INSTANCE_ID_RULES`]: ids appear in URLs, file names of
/// exports, logs and terminals, where `..`, a lone space or a right-to-left override would
/// mislead or break them.
pub fn validate_instance_id(id: &str) -> Result<()> {
    let bad = |why: &str| {
        let shown: String = id.chars().take(64).collect();
        Err(Error::InvalidInstanceId(format!("'{}' {why}", shown.escape_debug())))
    };
    if id.is_empty() {
        return bad("is empty");
    }
    if id.len() > MAX_INSTANCE_ID_LEN {
        return Err(Error::InvalidInstanceId(format!("it is longer than {MAX_INSTANCE_ID_LEN} bytes")));
    }
    if id == "." || id == ".." {
        return bad("is '.' or '..': '.' and '..' are path segments, not ids");
    }
    if id.starts_with(char::is_whitespace) || id.ends_with(char::is_whitespace) {
        return bad("starts or ends with whitespace");
    }
    if id.starts_with('@') {
        return bad("starts with '@', which is reserved");
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return bad(&format!("contains the control character U+{:04X}", u32::from(c)));
    }
    if let Some(c) = id.chars().find(|c| is_bidi_control(*c)) {
        return bad(&format!("contains the bidirectional control character U+{:04X}", u32::from(c)));
    }
    if let Some(c) = id.chars().find(|c| is_invisible(*c)) {
        return bad(&format!("contains the invisible formatting character U+{:04X}", u32::from(c)));
    }
    if id.chars().any(|c| matches!(c, '/' | '\\' | '#' | '?')) {
        return bad("contains one of / \\ # ?");
    }
    Ok(())
}

/// Characters that reorder the text around them (Trojan Source, CVE-2021-42574).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Format characters that show nothing (zero-width spaces and joiners, soft hyphen, BOM, ...),
/// so two ids that look the same would differ.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}' | '\u{180e}' | '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
    )
}

/// Checks an event name: 1 to 256 bytes, no control characters.
pub fn validate_event_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_EVENT_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::InvalidEventName(format!(
            "'{}' must be 1 to {MAX_EVENT_NAME_LEN} bytes without control characters",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// What [`Client::start_from`] started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// The instance id.
    pub instance_id: String,
    /// The W3C `traceparent` of the orchestration's span, when tracing is on.
    pub traceparent: Option<String>,
}

/// Who asks for a start (see [`Client::start_from`]); `Default` is an anonymous in-process
/// caller.
#[derive(Clone, Copy, Debug, Default)]
pub struct StartFrom<'a> {
    /// The caller's address, for the orchestrator's start guard and its per-client limits.
    pub client_addr: Option<std::net::IpAddr>,
    /// The caller's span (W3C trace context): the parent of the orchestration's span; without
    /// one, the orchestration starts a new trace.
    pub caller: Option<&'a SpanRef>,
}

/// A handle to start and manage instances. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl Client {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Client { shared }
    }

    /// Starts orchestrator `name` with `input` under a new random instance id; returns the id.
    pub async fn start<I: Serialize + ?Sized>(&self, name: &str, input: &I) -> Result<String> {
        self.start_raw(name, None, Some(encode(input)?)).await
    }

    /// Starts orchestrator `name` under `instance_id`. Fails with [`Error::AlreadyExists`] if an
    /// unfinished instance has that id; a finished one is replaced.
    pub async fn start_with_id<I: Serialize + ?Sized>(
        &self,
        name: &str,
        instance_id: &str,
        input: &I,
    ) -> Result<String> {
        self.start_raw(name, Some(instance_id), Some(encode(input)?)).await
    }

    /// Starts with a raw JSON input (`None` = no input).
    pub async fn start_raw(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: Option<Payload>,
    ) -> Result<String> {
        Ok(self.start_from(name, instance_id, input, StartFrom::default()).await?.instance_id)
    }

    /// [`start_raw`](Self::start_raw) on behalf of a caller (see [`StartFrom`]): the
    /// orchestrator's start guard, if any, checks the start first (a refusal is
    /// [`Error::InvalidInput`]) and its rate-limit charges are applied in the transaction that
    /// creates the instance ([`Error::RateLimited`] when a limit is exhausted). When tracing is
    /// on, the orchestration's trace context (a child of the caller's span, or a new trace) is
    /// recorded in its history and returned (`Started::traceparent`).
    pub async fn start_from(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: Option<Payload>,
        from: StartFrom<'_>,
    ) -> Result<Started> {
        self.check_size("the input", input.as_ref())?;
        if !self.shared.registry.has_orchestrator(name) {
            return Err(Error::UnknownOrchestrator {
                name: name.to_owned(),
                registered: self.shared.registry.orchestrator_names().join(", "),
            });
        }
        let instance_id = match instance_id {
            Some(id) => {
                validate_instance_id(id)?;
                id.to_owned()
            }
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        let charges = match self.shared.registry.start_guard(name) {
            Some(guard) => guard(&crate::StartRequest {
                orchestrator: name,
                instance_id: &instance_id,
                input: input.as_ref(),
                client_addr: from.client_addr,
            })
            .map_err(|rejected| Error::InvalidInput(rejected.0))?,
            None => Vec::new(),
        };
        let trace = self.shared.spans.as_ref().map(|_| SpanRef::new_execution(from.caller));
        let traceparent = trace.as_ref().map(|t| t.traceparent.clone());
        let request = CreateInstance {
            instance_id: instance_id.clone(),
            name: name.to_owned(),
            execution_id: new_execution_id(),
            input,
            parent: None,
            created_at: self.shared.clock.now(),
            trace,
        };
        let created = self.shared.store.create_instance_limited(request, charges).await;
        if let Err(StoreError::RateLimited(refusal)) = &created {
            // Both labels are bounded: a registered orchestrator, a limit named in code.
            let labels = [("orchestrator", name.to_owned()), ("limit", refusal.limit.clone())];
            metrics::counter!("durable_starts_limited_total", &labels).increment(1);
        }
        created?;
        Ok(Started { instance_id, traceparent })
    }

    /// Gives units back to rate limits kept in the store (see [`durable_store::limits`]).
    pub async fn refund_limits(&self, refunds: Vec<LimitRefund>) -> Result<()> {
        Ok(self.shared.store.refund_limits(refunds).await?)
    }

    /// The reference last stored with the rate limit `key` (e.g. the instance that charged it).
    pub async fn limit_reference(&self, key: &str) -> Result<Option<String>> {
        Ok(self.shared.store.limit_reference(key).await?)
    }

    /// Instances ready and waiting for a turn, counted up to `at_most`; `None` when the store
    /// cannot tell. For load shedding.
    pub async fn ready_backlog(&self, at_most: u64) -> Result<Option<u64>> {
        Ok(self.shared.store.ready_backlog(at_most).await?)
    }

    /// The instance's status, or `None`.
    pub async fn status(&self, instance_id: &str) -> Result<Option<InstanceState>> {
        Ok(self.shared.store.get_instance(instance_id).await?)
    }

    /// The history of the instance's current execution.
    pub async fn history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>> {
        Ok(self.shared.store.read_history(instance_id).await?)
    }

    /// Waits until the instance finishes (Completed, Failed or Terminated) and returns its
    /// status; [`Error::Timeout`] after `timeout`. Woken by the store, not by polling.
    pub async fn wait_for_completion(&self, instance_id: &str, timeout: Duration) -> Result<InstanceState> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let listener = self.shared.store.listen_for_completion(instance_id);
            let state =
                self.status(instance_id).await?.ok_or_else(|| Error::NotFound(instance_id.to_owned()))?;
            if state.status.is_terminal() {
                return Ok(state);
            }
            // Completions committed by another node are not always announced: re-read at least
            // every few seconds.
            let wake = (deadline - tokio::time::Instant::now()).min(Duration::from_secs(2));
            if wake.is_zero() {
                return Err(Error::Timeout { instance_id: instance_id.to_owned(), timeout });
            }
            let _ = tokio::time::timeout(wake, listener).await;
            if tokio::time::Instant::now() >= deadline {
                let state =
                    self.status(instance_id).await?.ok_or_else(|| Error::NotFound(instance_id.to_owned()))?;
                if state.status.is_terminal() {
                    return Ok(state);
                }
                return Err(Error::Timeout { instance_id: instance_id.to_owned(), timeout });
            }
        }
    }

    /// Raises event `name` with `data` on the instance. Events that arrive before the
    /// orchestrator waits for them are buffered.
    pub async fn raise_event<I: Serialize + ?Sized>(
        &self,
        instance_id: &str,
        name: &str,
        data: &I,
    ) -> Result<()> {
        self.raise_event_raw(instance_id, name, Some(encode(data)?)).await
    }

    /// Raises an event with raw JSON data. If the instance's orchestrator registered an event
    /// hook for `name`, the hook transforms (or rejects) the data before it is stored.
    ///
    /// When this node holds the instance's execution, the orchestrator waits for this event and
    /// the instance is idle, the event is delivered directly: the instance is leased, the turn
    /// that consumes the event runs here, and event and turn are committed together (one commit
    /// instead of two, which halves the latency of an answer). Otherwise the event is queued.
    pub async fn raise_event_raw(&self, instance_id: &str, name: &str, data: Option<Payload>) -> Result<()> {
        validate_event_name(name)?;
        self.check_size("the event data", data.as_ref())?;
        let store = &self.shared.store;
        // Only when the event makes the orchestrator progress: a direct turn that would merely
        // buffer the event costs more than queueing it for the next turn.
        let direct = self.shared.cache.peek(instance_id, |e| e.waits_for_event(name)) == Some(true);
        let leased = if direct {
            store.lease_instance(instance_id, self.shared.options.orchestration_lease).await?
        } else {
            None
        };
        if let Some(item) = leased {
            let data = match self.apply_hook(&item.instance.name, instance_id, name, data) {
                Ok(data) => data,
                Err(e) => {
                    let _ = store.abandon_orchestration_work(&item.lease, Duration::ZERO).await;
                    return Err(e);
                }
            };
            // The id makes a second copy harmless: when the commit fails in a way that leaves
            // its outcome unknown (a connection lost during COMMIT), the event is queued as
            // well, and the execution drops whichever copy comes second.
            let event = self.event(name, data, Some(new_event_id()));
            if crate::orchestrations::process_with(&self.shared, item, vec![event.clone()]).await {
                self.shared.metrics.direct_events.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.count_raised(true);
                return Ok(());
            }
            store.send_message(instance_id, event).await?;
            self.count_raised(false);
            return Ok(());
        }
        let mut data = data;
        if self.shared.registry.has_event_hooks(name) {
            let state =
                self.status(instance_id).await?.ok_or_else(|| Error::NotFound(instance_id.to_owned()))?;
            if state.status.is_terminal() {
                return Err(Error::InstanceFinished {
                    instance_id: instance_id.to_owned(),
                    status: state.status,
                });
            }
            data = self.apply_hook(&state.name, instance_id, name, data)?;
        }
        store.send_message(instance_id, self.event(name, data, None)).await?;
        self.count_raised(false);
        Ok(())
    }

    fn count_raised(&self, direct: bool) {
        let meters = &self.shared.meters;
        meters.events_raised.increment(1);
        if direct { &meters.direct_deliveries } else { &meters.queued_deliveries }.increment(1);
    }

    /// Sets the metrics gauges read from the store (instances per status, backlogs); called
    /// when metrics are scraped.
    pub async fn refresh_store_gauges(&self) {
        crate::metrics::refresh_store_gauges(&*self.shared.store).await;
    }

    fn apply_hook(
        &self,
        orchestrator: &str,
        instance_id: &str,
        name: &str,
        data: Option<Payload>,
    ) -> Result<Option<Payload>> {
        let Some(hook) = self.shared.registry.event_hook(orchestrator, name) else { return Ok(data) };
        let data = hook(instance_id, data).map_err(|rejected| Error::InvalidInput(rejected.0))?;
        // What is stored is the hook's output: it must fit the limit too.
        self.check_size("the event data after its hook", data.as_ref())?;
        Ok(data)
    }

    fn event(&self, name: &str, data: Option<Payload>, id: Option<String>) -> HistoryEvent {
        HistoryEvent::new(
            self.shared.clock.now(),
            EventKind::EventRaised { name: name.to_owned(), input: data, id },
        )
    }

    /// Terminates the instance (and, recursively, its running sub-orchestrations).
    pub async fn terminate(&self, instance_id: &str, reason: Option<&str>) -> Result<()> {
        let event = HistoryEvent::new(
            self.shared.clock.now(),
            EventKind::ExecutionTerminated { reason: reason.map(str::to_owned) },
        );
        Ok(self.shared.store.send_message(instance_id, event).await?)
    }

    /// Suspends the instance: events are kept but not processed until it is resumed.
    ///
    /// Suspend and resume requests are queued like every message and applied in the order they
    /// were accepted, so a resume sent right after a suspend always resumes. A request that
    /// finds the instance already in that state when its turn comes changes nothing (so it is
    /// accepted rather than refused on a status that a queued request is about to change).
    /// Fails with [`Error::NotFound`] or [`Error::InstanceFinished`].
    pub async fn suspend(&self, instance_id: &str, reason: Option<&str>) -> Result<()> {
        let event = HistoryEvent::new(
            self.shared.clock.now(),
            EventKind::ExecutionSuspended { reason: reason.map(str::to_owned) },
        );
        Ok(self.shared.store.send_message(instance_id, event).await?)
    }

    /// Resumes a suspended instance; see [`suspend`](Self::suspend) for the ordering.
    pub async fn resume(&self, instance_id: &str, reason: Option<&str>) -> Result<()> {
        let event = HistoryEvent::new(
            self.shared.clock.now(),
            EventKind::ExecutionResumed { reason: reason.map(str::to_owned) },
        );
        Ok(self.shared.store.send_message(instance_id, event).await?)
    }

    /// Rewinds a `Failed` instance as Durable Functions does: its failed activities and
    /// sub-orchestrations run again, everything that succeeded is kept, and it is `Running`
    /// again (see [`durable_core::plan_rewind`] for the exact rule). A failed sub-orchestration
    /// is rewound too (a finished one that no longer exists or was terminated is started again;
    /// a completed one delivers its output again). Fails with [`Error::NotFound`], and with
    /// [`Error::Conflict`] when the instance is not `Failed` or its history no longer replays
    /// with this node's code.
    pub async fn rewind(&self, instance_id: &str, reason: Option<&str>) -> Result<()> {
        // Children are rewound after their parent, so their completions find it running.
        let mut todo = vec![instance_id.to_owned()];
        while let Some(id) = todo.pop() {
            todo.extend(self.rewind_one(&id, reason).await?);
        }
        Ok(())
    }

    /// Rewinds one instance; returns the failed children to rewind next.
    async fn rewind_one(&self, instance_id: &str, reason: Option<&str>) -> Result<Vec<String>> {
        let state = self.required(instance_id).await?;
        if state.status != RuntimeStatus::Failed {
            return Err(Error::NotFailed { instance_id: instance_id.to_owned(), status: state.status });
        }
        let store = &self.shared.store;
        let history = store.read_history(instance_id).await?;
        let now = self.shared.clock.now();
        let plan = durable_core::plan_rewind(
            instance_id,
            &state.execution_id,
            &history,
            &*self.shared.registry,
            now,
            reason.map(str::to_owned),
        )
        .map_err(|why| Error::Conflict(format!("instance '{instance_id}' cannot be rewound: {why}")))?;
        let mut messages = plan.messages;
        let mut new_instances = Vec::new();
        let mut failed_children = Vec::new();
        for child in plan.sub_orchestrations {
            let parent = durable_core::ParentInstance {
                instance_id: instance_id.to_owned(),
                execution_id: state.execution_id.clone(),
                task_id: child.task_id,
            };
            let existing = store.get_instance(&child.instance_id).await?;
            let ours =
                existing.as_ref().is_some_and(|c| c.parent_instance_id.as_deref() == Some(instance_id));
            match existing {
                Some(c) if ours && c.status == RuntimeStatus::Failed => failed_children.push(c.instance_id),
                // Its completion reached the failed parent and was dropped: deliver it again.
                Some(c) if ours && c.status == RuntimeStatus::Completed => messages.push(HistoryEvent::new(
                    now,
                    EventKind::SubOrchestrationCompleted { task_id: child.task_id, result: c.output },
                )),
                // Still running: its completion will arrive.
                Some(c) if ours && !c.status.is_terminal() => {}
                // Gone, terminated, or the id belongs to someone else: start it again.
                _ => new_instances.push(CreateInstance {
                    instance_id: child.instance_id,
                    name: child.name,
                    execution_id: new_execution_id(),
                    input: child.input,
                    parent: Some(parent),
                    created_at: now,
                    trace: None,
                }),
            }
        }
        let commit = durable_store::RewindCommit {
            instance_id: instance_id.to_owned(),
            execution_id: state.execution_id,
            expected_history_len: history.len() as u64,
            history: plan.history,
            messages,
            activities: plan
                .activities
                .into_iter()
                .map(|a| durable_store::NewActivity { task_id: a.task_id, name: a.name, input: a.input })
                .collect(),
            timers: plan
                .timers
                .into_iter()
                .map(|(timer_id, fire_at)| durable_store::NewTimer { timer_id, fire_at })
                .collect(),
            new_instances,
            now,
        };
        store.rewind_instance(commit).await.map_err(|e| match e {
            StoreError::Conflict(why) => Error::Conflict(why),
            other => other.into(),
        })?;
        Ok(failed_children)
    }

    /// Starts the instance's orchestrator again with its original input, under a new random id
    /// (`new_instance_id`) or the same id (the instance must have finished). Returns the id.
    pub async fn restart(&self, instance_id: &str, new_instance_id: bool) -> Result<String> {
        let state = self.required(instance_id).await?;
        let id = if new_instance_id { None } else { Some(instance_id) };
        self.start_raw(&state.name, id, state.input).await
    }

    /// Deletes a finished instance with its history (and its sub-orchestrations). Refuses an
    /// unfinished one unless `force`. Returns how many instances were deleted.
    pub async fn purge(&self, instance_id: &str, force: bool) -> Result<u64> {
        let state = self.required(instance_id).await?;
        if !force && !state.status.is_terminal() {
            return Err(Error::Conflict(format!(
                "instance '{instance_id}' is {}; terminate it first or purge with force",
                state.status
            )));
        }
        Ok(self.shared.store.purge_instance(instance_id).await?)
    }

    /// Deletes every instance matching `filter`.
    pub async fn purge_by(&self, filter: &PurgeFilter) -> Result<u64> {
        Ok(self.shared.store.purge_instances(filter).await?)
    }

    /// Lists instances, one page at a time.
    pub async fn list(&self, query: &InstanceQuery) -> Result<InstancePage> {
        Ok(self.shared.store.query_instances(query).await?)
    }

    fn check_size(&self, what: &str, payload: Option<&Payload>) -> Result<()> {
        let len = payload.map_or(0, Payload::len);
        self.shared.options.limits().check_payload(what, len).map_err(|f| Error::InvalidInput(f.message))
    }

    async fn required(&self, instance_id: &str) -> Result<InstanceState> {
        self.status(instance_id).await?.ok_or_else(|| Error::NotFound(instance_id.to_owned()))
    }
}

/// A fresh id for a raised event: 16 hex digits from 64 random bits (it only has to differ from
/// the other raises of one execution).
fn new_event_id() -> String {
    format!("{:016x}", uuid::Uuid::new_v4().as_u128() as u64)
}

fn encode<I: Serialize + ?Sized>(input: &I) -> Result<Payload> {
    Payload::from_value(input).map_err(|e| Error::InvalidInput(format!("cannot serialize to JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_follow_the_durable_functions_rules() {
        assert!(validate_instance_id("abc-123:4").is_ok());
        assert!(validate_instance_id("").is_err());
        assert!(validate_instance_id("@entity").is_err());
        assert!(validate_instance_id("a/b").is_err());
        assert!(validate_instance_id("a?b").is_err());
        assert!(validate_instance_id("a\nb").is_err());
        assert!(validate_instance_id(&"x".repeat(257)).is_err());
        assert!(validate_instance_id(&"x".repeat(256)).is_ok());
        for bad in [".", "..", " ", "a ", " a", "a\u{202e}b", "a\u{2066}", "a\u{200b}b", "\u{feff}a", "a\tb"]
        {
            let e = validate_instance_id(bad).unwrap_err().to_string();
            assert!(!e.contains('\u{202e}'), "the message escapes what it quotes: {e}");
        }
        for ok in ["order 42", "état-1", "注文:7", "a.b", "..a"] {
            assert!(validate_instance_id(ok).is_ok(), "{ok}");
        }
        assert!(validate_event_name("SmsChallengeResponse").is_ok());
        assert!(validate_event_name("").is_err());
        assert!(validate_event_name("a\u{0}").is_err());
    }
}
