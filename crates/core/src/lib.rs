//! The core of **durable**: history events, actions, the orchestration context and the
//! deterministic replay engine. No I/O, no async runtime: a turn is a pure function of the
//! recorded history and the new messages.
//!
//! ```no_run
//! use durable_core::{Error, OrchestrationContext, Either, select};
//! use std::time::Duration;
//!
//! async fn verify(ctx: OrchestrationContext, phone: String) -> Result<bool, Error> {
//!     let code: u32 = ctx.call_activity("SendCode", &phone).await?;
//!     let timeout = ctx.sleep(Duration::from_secs(90));
//!     for _ in 0..4 {
//!         match select(ctx.wait_for_external_event::<u32>("Answer"), &timeout).await {
//!             Either::Left(answer) => {
//!                 if answer? == code {
//!                     timeout.cancel();
//!                     return Ok(true);
//!                 }
//!             }
//!             Either::Right(()) => return Ok(false),
//!         }
//!     }
//!     timeout.cancel();
//!     Ok(false)
//! }
//! ```

mod action;
mod combinators;
mod context;
mod error;
mod execution;
mod history;
mod payload;
mod primitives;
mod retry;
mod rewind;
mod state;

pub use action::Action;
pub use combinators::{Either, Join, JoinAll, Select, SelectAll, join, join_all, select, select_all};
pub use context::{ContinueAsNewOptions, ContinueAsNewPending, OrchestrationContext};
pub use error::{Error, InvalidSetting, codes, panic_message};
pub use execution::{
    Execution, Limits, NextExecution, OrchestratorFn, OrchestratorFuture, OrchestratorOutput,
    OrchestratorResolver, TurnResult, orchestrator_fn,
};
pub use history::{
    EventKind, FailureDetails, HistoryEvent, ParentInstance, RuntimeStatus, TaskId, TraceContext, event_key,
};
pub use jiff::Timestamp;
pub use payload::Payload;
pub use primitives::activity::ActivityCall;
pub use primitives::external_event::ExternalEvent;
pub use primitives::sub_orchestration::SubOrchestrationCall;
pub use primitives::timer::Timer;
pub use retry::RetryPolicy;
pub use rewind::{Rewind, RewoundChild, RewoundTask, plan_rewind};

impl OrchestrationContext {
    /// WhenAny of two; see [`select`].
    pub fn select<A: Future, B: Future>(&self, a: A, b: B) -> Select<A, B> {
        select(a, b)
    }

    /// WhenAny of many; see [`select_all`].
    pub fn select_all<F: Future>(&self, futures: impl IntoIterator<Item = F>) -> SelectAll<F> {
        select_all(futures)
    }

    /// WhenAll of two; see [`join`].
    pub fn join<A: Future, B: Future>(&self, a: A, b: B) -> Join<A, B> {
        join(a, b)
    }

    /// WhenAll of many; see [`join_all`].
    pub fn join_all<F: Future>(&self, futures: impl IntoIterator<Item = F>) -> JoinAll<F> {
        join_all(futures)
    }
}
