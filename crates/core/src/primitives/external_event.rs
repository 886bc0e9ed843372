//! External events: `wait_for_external_event[_with_timeout|_or_default]`, completed by
//! `EventRaised` (raised by a client or sent by another orchestration). Events are buffered
//! first-in first-out per name (names compare with [`event_key`]) and taken when a wait is
//! polled, so a wait that loses a `select` never swallows an event.

use crate::combinators::{Either, select};
use crate::context::OrchestrationContext;
use crate::error::Error;
use crate::history::{EventKind, HistoryEvent, event_key};
use crate::payload::Payload;
use crate::state::State;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The raised events of one execution that nobody has taken yet, and what the code waits for.
#[derive(Default)]
pub(crate) struct Inbox {
    /// FIFO per [`event_key`].
    buffer: HashMap<String, VecDeque<Buffered>>,
    /// Ids of the raised events this execution received (copies with a known id are dropped).
    ids: HashSet<String>,
    /// Arrival counter, so carried-over events keep their order.
    seq: u64,
    /// Event keys a wait was pending on in the last poll.
    pub(crate) waiting: HashSet<String>,
}

/// A raised event in the buffer.
struct Buffered {
    seq: u64,
    name: String,
    input: Option<Payload>,
    id: Option<String>,
}

impl Inbox {
    /// True when the code, as of its last poll, waits for an event called `name`.
    pub(crate) fn waits_for(&self, name: &str) -> bool {
        self.waiting.contains(&event_key(name))
    }

    /// The events nobody took, in arrival order, as `EventRaised` at `ts` (for
    /// `continue_as_new` with `preserve_unprocessed_events`).
    pub(crate) fn unconsumed(&self, ts: Timestamp) -> Vec<HistoryEvent> {
        let mut events: Vec<&Buffered> = self.buffer.values().flatten().collect();
        events.sort_by_key(|e| e.seq);
        events
            .into_iter()
            .map(|e| {
                let kind =
                    EventKind::EventRaised { name: e.name.clone(), input: e.input.clone(), id: e.id.clone() };
                HistoryEvent::new(ts, kind)
            })
            .collect()
    }

    /// Records the id of an event that arrived (before it is delivered: a suspended execution
    /// defers delivery, but a later copy must still be dropped).
    pub(crate) fn arrived(&mut self, kind: &EventKind) {
        if let EventKind::EventRaised { id: Some(id), .. } = kind {
            self.ids.insert(id.clone());
        }
    }
}

/// A wait for an external event; resolves to the decoded data of the next event with that name.
#[must_use = "an event wait does nothing unless awaited"]
pub struct ExternalEvent<T> {
    ctx: OrchestrationContext,
    key: String,
    name: String,
    _output: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Future for ExternalEvent<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut st = this.ctx.state();
        if let Some(event) = st.inbox.buffer.get_mut(&this.key).and_then(|q| q.pop_front()) {
            drop(st);
            Poll::Ready(super::decode(event.input.as_ref(), &format!("data of event '{}'", this.name)))
        } else {
            st.park(cx.waker());
            if !st.inbox.waiting.contains(&this.key) {
                st.inbox.waiting.insert(this.key.clone());
            }
            Poll::Pending
        }
    }
}

impl OrchestrationContext {
    /// Waits for the next external event called `name` (case-insensitive). Events raised before
    /// anyone waits are buffered first-in first-out per name and handed to later waits.
    pub fn wait_for_external_event<T: DeserializeOwned>(&self, name: &str) -> ExternalEvent<T> {
        ExternalEvent { ctx: self.clone(), key: event_key(name), name: name.to_owned(), _output: PhantomData }
    }

    /// Waits for the event at most `timeout`; on expiry returns [`Error::Timeout`]. The timer is
    /// cancelled when the event wins.
    pub fn wait_for_external_event_with_timeout<T: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'static {
        let event = self.wait_for_external_event::<T>(name);
        let timer = self.sleep(timeout);
        let name = name.to_owned();
        async move {
            match select(event, &timer).await {
                Either::Left(result) => {
                    timer.cancel();
                    result
                }
                Either::Right(()) => Err(Error::Timeout { event: name }),
            }
        }
    }

    /// Waits for the event at most `timeout`; on expiry returns `default`.
    pub fn wait_for_external_event_or_default<T: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
        timeout: Duration,
        default: T,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'static {
        let wait = self.wait_for_external_event_with_timeout::<T>(name, timeout);
        async move {
            match wait.await {
                Err(Error::Timeout { .. }) => Ok(default),
                other => other,
            }
        }
    }
}

pub(super) fn accepts(st: &State, kind: &EventKind) -> Option<bool> {
    match kind {
        EventKind::EventRaised { id: Some(id), .. } => Some(!st.inbox.ids.contains(id)),
        EventKind::EventRaised { id: None, .. } => Some(true),
        _ => None,
    }
}

pub(super) fn deliver(st: &mut State, kind: &EventKind) -> bool {
    let EventKind::EventRaised { name, input, id } = kind else { return false };
    let seq = st.inbox.seq;
    st.inbox.seq += 1;
    st.inbox.buffer.entry(event_key(name)).or_default().push_back(Buffered {
        seq,
        name: name.clone(),
        input: input.clone(),
        id: id.clone(),
    });
    true
}
