//! The retry loop of `call_activity_with_retry` and `call_sub_orchestrator_with_retry`.

use crate::context::OrchestrationContext;
use crate::error::Error;
use crate::retry::RetryPolicy;
use std::future::Future;

/// Awaits `first` and, while the call fails with a retriable failure and `policy` allows
/// another attempt, waits the policy's delay on a durable timer and awaits `again()`. `first`
/// is an error when the call could not be scheduled (bad input, invalid policy): that error is
/// the result. The first attempt is scheduled by the caller before this is awaited, so its
/// sequence number is taken at call time like every other scheduling call.
pub(crate) async fn retrying<T, Fut, Again>(
    ctx: OrchestrationContext,
    policy: RetryPolicy,
    first: Result<(Fut, Again), Error>,
) -> Result<T, Error>
where
    Fut: Future<Output = Result<T, Error>>,
    Again: FnMut() -> Fut,
{
    let (first, mut again) = first?;
    let started = ctx.current_utc_datetime();
    let mut attempt = 1;
    let mut result = first.await;
    loop {
        let err = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if err.failure().is_some_and(|f| f.non_retriable) {
            return Err(err);
        }
        let Some(delay) = policy.next_delay(attempt, ctx.elapsed_since(started)) else {
            return Err(err);
        };
        ctx.create_timer(ctx.current_utc_datetime() + delay).await;
        attempt += 1;
        result = again().await;
    }
}
