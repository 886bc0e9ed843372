//! Deterministic WhenAny / WhenAll.
//!
//! These poll their futures in argument order on every poll, so the winner of a race between
//! tasks that completed in the same turn is always the first one listed, on the first run and on
//! every replay. Prefer them to `tokio::select!`/`futures::select!`, which pick at random.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The result of [`select`]: which of the two futures finished first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Either<L, R> {
    /// The first future won.
    Left(L),
    /// The second future won.
    Right(R),
}

/// WhenAny of two: resolves with the output of whichever completes first (the first argument
/// on a tie). The other future is dropped.
pub fn select<A: Future, B: Future>(a: A, b: B) -> Select<A, B> {
    Select { a: Box::pin(a), b: Box::pin(b) }
}

/// Future of [`select`].
pub struct Select<A, B> {
    a: Pin<Box<A>>,
    b: Pin<Box<B>>,
}

impl<A: Future, B: Future> Future for Select<A, B> {
    type Output = Either<A::Output, B::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = self.a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = self.b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    }
}

/// WhenAny of many: resolves with the index and output of the first future to complete (the
/// lowest index on a tie). Panics if `futures` is empty.
pub fn select_all<F: Future>(futures: impl IntoIterator<Item = F>) -> SelectAll<F> {
    let futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    assert!(!futures.is_empty(), "select_all needs at least one future");
    SelectAll { futures }
}

/// Future of [`select_all`].
pub struct SelectAll<F> {
    futures: Vec<Pin<Box<F>>>,
}

impl<F: Future> Future for SelectAll<F> {
    type Output = (usize, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        for (i, f) in self.futures.iter_mut().enumerate() {
            if let Poll::Ready(v) = f.as_mut().poll(cx) {
                return Poll::Ready((i, v));
            }
        }
        Poll::Pending
    }
}

/// WhenAll of two.
pub fn join<A: Future, B: Future>(a: A, b: B) -> Join<A, B> {
    Join { a: MaybeDone::Pending(Box::pin(a)), b: MaybeDone::Pending(Box::pin(b)) }
}

enum MaybeDone<F: Future> {
    Pending(Pin<Box<F>>),
    Done(Option<F::Output>),
}

impl<F: Future> MaybeDone<F> {
    fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        match self {
            MaybeDone::Pending(f) => match f.as_mut().poll(cx) {
                Poll::Ready(v) => {
                    *self = MaybeDone::Done(Some(v));
                    true
                }
                Poll::Pending => false,
            },
            MaybeDone::Done(_) => true,
        }
    }

    fn take(&mut self) -> F::Output {
        match self {
            MaybeDone::Done(v) => v.take().expect("output taken once"),
            MaybeDone::Pending(_) => unreachable!("taken only when done"),
        }
    }
}

/// Future of [`join`].
pub struct Join<A: Future, B: Future> {
    a: MaybeDone<A>,
    b: MaybeDone<B>,
}

// The futures are pinned on the heap and outputs are never pinned, so moving a `Join` is fine.
impl<A: Future, B: Future> Unpin for Join<A, B> {}

impl<A: Future, B: Future> Future for Join<A, B> {
    type Output = (A::Output, B::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let a = this.a.poll(cx);
        let b = this.b.poll(cx);
        if a && b { Poll::Ready((this.a.take(), this.b.take())) } else { Poll::Pending }
    }
}

/// WhenAll of many: resolves with all outputs, in argument order.
pub fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> JoinAll<F> {
    JoinAll { futures: futures.into_iter().map(|f| MaybeDone::Pending(Box::pin(f))).collect() }
}

/// Future of [`join_all`].
pub struct JoinAll<F: Future> {
    futures: Vec<MaybeDone<F>>,
}

impl<F: Future> Unpin for JoinAll<F> {}

impl<F: Future> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut all = true;
        for f in &mut this.futures {
            all &= f.poll(cx);
        }
        if all { Poll::Ready(this.futures.iter_mut().map(MaybeDone::take).collect()) } else { Poll::Pending }
    }
}
