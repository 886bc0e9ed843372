//! The durable futures returned by [`OrchestrationContext`]: they complete only from history.

use crate::context::{OrchestrationContext, Outcome};
use crate::error::Error;
use crate::history::{TaskId, event_key};
use crate::payload::Payload;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

fn decode<T: DeserializeOwned>(payload: Option<&Payload>, what: &str) -> Result<T, Error> {
    let text = payload.map_or("null", Payload::as_str);
    serde_json::from_str(text).map_err(|e| Error::Decode { what: what.to_owned(), message: e.to_string() })
}

/// Polls the outcome of task `id` (activity or sub-orchestration).
fn poll_outcome<T: DeserializeOwned>(
    ctx: &OrchestrationContext,
    id: TaskId,
    what: &str,
    cx: &mut Context<'_>,
) -> Poll<Result<T, Error>> {
    let mut st = ctx.state();
    match st.outcomes.remove(&id) {
        Some(Outcome::Completed(payload)) => {
            drop(st);
            Poll::Ready(decode(payload.as_ref(), what))
        }
        Some(Outcome::Failed(failure)) => Poll::Ready(Err(Error::Failed(failure))),
        None => {
            st.park(cx.waker());
            Poll::Pending
        }
    }
}

/// A scheduled activity; resolves to its decoded output or its failure.
#[must_use = "an activity result must be awaited (or the call is fire-and-forget by intent)"]
pub struct ActivityCall<T> {
    ctx: OrchestrationContext,
    id: Option<TaskId>,
    error: Option<Error>,
    what: String,
    _output: PhantomData<fn() -> T>,
}

impl<T> ActivityCall<T> {
    pub(crate) fn new(ctx: OrchestrationContext, id: TaskId, what: String) -> Self {
        ActivityCall { ctx, id: Some(id), error: None, what, _output: PhantomData }
    }

    pub(crate) fn failed(ctx: OrchestrationContext, error: Error) -> Self {
        ActivityCall { ctx, id: None, error: Some(error), what: String::new(), _output: PhantomData }
    }

    /// The action's sequence number (`None` if the input could not be serialized).
    pub fn id(&self) -> Option<TaskId> {
        self.id
    }
}

impl<T: DeserializeOwned> Future for ActivityCall<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match (this.error.take(), this.id) {
            (Some(e), _) => Poll::Ready(Err(e)),
            (None, Some(id)) => poll_outcome(&this.ctx, id, &this.what, cx),
            (None, None) => Poll::Pending,
        }
    }
}

/// A started sub-orchestration; resolves to its decoded output or its failure.
#[must_use = "a sub-orchestration result must be awaited"]
pub struct SubOrchestrationCall<T>(ActivityCall<T>);

impl<T> SubOrchestrationCall<T> {
    pub(crate) fn new(ctx: OrchestrationContext, id: TaskId, what: String) -> Self {
        SubOrchestrationCall(ActivityCall::new(ctx, id, what))
    }

    pub(crate) fn failed(ctx: OrchestrationContext, error: Error) -> Self {
        SubOrchestrationCall(ActivityCall::failed(ctx, error))
    }
}

impl<T: DeserializeOwned> Future for SubOrchestrationCall<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

/// A durable timer. Await it by value or by reference (`select(event, &timer)`), any number of
/// times; once fired it stays fired.
#[derive(Clone)]
pub struct Timer {
    ctx: OrchestrationContext,
    id: TaskId,
    fire_at: Timestamp,
}

impl Timer {
    pub(crate) fn new(ctx: OrchestrationContext, id: TaskId, fire_at: Timestamp) -> Self {
        Timer { ctx, id, fire_at }
    }

    /// Cancels the timer: it will never fire and nothing keeps the instance waiting for it.
    /// Cancelling a fired timer does nothing. Awaiting a cancelled timer never completes.
    pub fn cancel(&self) {
        self.ctx.cancel_timer(self.id);
    }

    /// The action's sequence number.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// When the timer fires.
    pub fn fire_at(&self) -> Timestamp {
        self.fire_at
    }

    /// True once the timer fired.
    pub fn is_fired(&self) -> bool {
        self.ctx.state().fired_timers.contains(&self.id)
    }

    fn poll_fired(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.ctx.state();
        if st.fired_timers.contains(&self.id) {
            Poll::Ready(())
        } else {
            // A cancelled timer is not a reason to keep the instance alive, so it is not
            // counted as a durable wait: awaiting only it is reported as a stuck orchestrator.
            if !st.cancelled_timers.contains(&self.id) {
                st.park(cx.waker());
            }
            Poll::Pending
        }
    }
}

impl Future for Timer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_fired(cx)
    }
}

impl Future for &Timer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_fired(cx)
    }
}

/// A wait for an external event; resolves to the decoded data of the next event with that name.
///
/// The event is taken from the buffer when this future is polled and finds one, so a wait that
/// loses a `select` (and is dropped) never swallows an event.
#[must_use = "an event wait does nothing unless awaited"]
pub struct ExternalEvent<T> {
    ctx: OrchestrationContext,
    key: String,
    name: String,
    _output: PhantomData<fn() -> T>,
}

impl<T> ExternalEvent<T> {
    pub(crate) fn new(ctx: OrchestrationContext, name: &str) -> Self {
        ExternalEvent { ctx, key: event_key(name), name: name.to_owned(), _output: PhantomData }
    }
}

impl<T: DeserializeOwned> Future for ExternalEvent<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut st = this.ctx.state();
        if let Some(event) = st.events.get_mut(&this.key).and_then(|q| q.pop_front()) {
            drop(st);
            Poll::Ready(decode(event.input.as_ref(), &format!("data of event '{}'", this.name)))
        } else {
            st.park(cx.waker());
            if !st.waiting_events.contains(&this.key) {
                st.waiting_events.insert(this.key.clone());
            }
            Poll::Pending
        }
    }
}

/// Returned by `continue_as_new`: never completes; the engine ends the execution instead.
#[must_use = "await continue_as_new as the last expression of the orchestrator"]
pub struct ContinueAsNewPending<T> {
    _output: PhantomData<fn() -> T>,
}

impl<T> ContinueAsNewPending<T> {
    pub(crate) fn new() -> Self {
        ContinueAsNewPending { _output: PhantomData }
    }
}

impl<T> Future for ContinueAsNewPending<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        Poll::Pending
    }
}
