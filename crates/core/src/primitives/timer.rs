//! Durable timers: `create_timer` / `sleep`, recorded as `TimerCreated`, completed by
//! `TimerFired` (a message the store makes visible when due), cancelled with [`Timer::cancel`]
//! (the cancellation is an action, not a history event: replay re-runs the code's `cancel`).

use super::ActionKind;
use crate::action::Action;
use crate::context::OrchestrationContext;
use crate::history::{EventKind, HistoryEvent, TaskId};
use crate::state::State;
use jiff::Timestamp;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The timers of one execution that fired or were cancelled.
#[derive(Default)]
pub(crate) struct Timers {
    pub(crate) fired: HashSet<TaskId>,
    pub(crate) cancelled: HashSet<TaskId>,
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
    /// Cancels the timer: it will never fire and nothing keeps the instance waiting for it.
    /// Cancelling a fired timer does nothing. Awaiting a cancelled timer never completes.
    pub fn cancel(&self) {
        let mut st = self.ctx.state();
        let id = self.id;
        if st.timers.fired.contains(&id) || !st.timers.cancelled.insert(id) {
            return;
        }
        st.tasks.open.remove(&id);
        // A timer created in this live turn never reaches the store: drop its action. A timer
        // from an earlier turn must be deleted from the store. While replaying, the
        // cancellation was carried out when the turn first ran.
        let actions = &mut st.output.actions;
        if let Some(pos) =
            actions.iter().position(|a| matches!(a, Action::CreateTimer { id: t, .. } if *t == id))
        {
            actions.remove(pos);
        } else if !st.replaying {
            st.output.actions.push(Action::CancelTimer { id });
        }
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
        self.ctx.state().timers.fired.contains(&self.id)
    }

    fn poll_fired(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.ctx.state();
        if st.timers.fired.contains(&self.id) {
            Poll::Ready(())
        } else {
            // A cancelled timer is not a reason to keep the instance alive, so it is not
            // counted as a durable wait: awaiting only it is reported as a stuck orchestrator.
            if !st.timers.cancelled.contains(&self.id) {
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

impl OrchestrationContext {
    /// Creates a durable timer that fires at `fire_at`. Await it (by value or by reference), pass
    /// it to `select`, and [`Timer::cancel`] it when it is no longer needed.
    pub fn create_timer(&self, fire_at: Timestamp) -> Timer {
        let (id, _) = self.state().schedule(ActionKind::Timer, |id, now| {
            (
                HistoryEvent::new(now, EventKind::TimerCreated { id, fire_at }),
                Action::CreateTimer { id, fire_at },
            )
        });
        Timer { ctx: self.clone(), id, fire_at }
    }

    /// A durable timer that fires `delay` after the current time.
    pub fn sleep(&self, delay: Duration) -> Timer {
        self.create_timer(self.current_utc_datetime() + delay)
    }
}

pub(super) fn recorded(kind: &EventKind) -> Option<(TaskId, ActionKind)> {
    match kind {
        EventKind::TimerCreated { id, .. } => Some((*id, ActionKind::Timer)),
        _ => None,
    }
}

pub(super) fn accepts(st: &State, kind: &EventKind) -> Option<bool> {
    match kind {
        EventKind::TimerFired { timer_id, .. } => {
            Some(matches!(st.tasks.open.get(timer_id), Some(ActionKind::Timer)))
        }
        _ => None,
    }
}

pub(super) fn deliver(st: &mut State, kind: &EventKind) -> bool {
    match kind {
        EventKind::TimerFired { timer_id, .. } => {
            st.tasks.open.remove(timer_id);
            st.timers.fired.insert(*timer_id);
            true
        }
        _ => false,
    }
}
