//! The bench SMS sender, instance ids, and the engine clock the timeout scenario freezes.

use async_trait::async_trait;
use durable_phone_verification::{Sms, SmsError, SmsReceipt, SmsSender};
use durable_store::{Clock, SystemClock};
use jiff::Timestamp;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// A code delivered by the sample's activity: (instance number, code).
pub(crate) type Delivery = (u32, u16);

/// Hands each verification code to the driver over a channel instead of sending an SMS, so
/// the driver can answer at once. Nothing is logged or stored. Clones share the channel (one
/// per node when several nodes run).
#[derive(Clone)]
pub(crate) struct BenchSender {
    codes: mpsc::UnboundedSender<Delivery>,
}

impl BenchSender {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (BenchSender { codes: tx }, rx)
    }
}

#[async_trait]
impl SmsSender for BenchSender {
    async fn send(&self, sms: &Sms<'_>) -> Result<SmsReceipt, SmsError> {
        let (body, reference) = (sms.body, sms.reference);
        let permanent = SmsError::permanent;
        // `reference` is "{instance_id}:{execution_id}:{task_id}"; split from the right in
        // case an instance id contains ':'.
        let instance = reference
            .rsplitn(3, ':')
            .nth(2)
            .ok_or_else(|| permanent(format!("unexpected activity reference '{reference}'")))?;
        let index = instance_index(instance)
            .ok_or_else(|| permanent(format!("'{instance}' is not a bench instance id")))?;
        // The sample's text is "Your verification code is 0042"; the bench runs 4-digit codes.
        let code = body
            .rsplit(' ')
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| permanent("the SMS text does not end with a 4-digit code".into()))?;
        // A closed channel means the driver is gone (shutting down); nothing to deliver to.
        let _ = self.codes.send((index, code));
        Ok(SmsReceipt { status: "delivered".into() })
    }

    fn describe(&self) -> String {
        "bench sender (codes go to the benchmark driver)".into()
    }
}

/// Instance ids are 32 hex digits, like the ids the HTTP API generates, so database bytes per
/// instance are representative. They end with the instance number (8 digits) and carry a
/// per-run nonce (so two runs on one database never collide). By default they also start with
/// the number, so every table keyed by instance takes its new rows at its end; with
/// `--random-ids` they start with 16 digits that look random instead, as the ids `durable
/// serve` generates do, and new rows land anywhere in those tables.
#[derive(Clone)]
pub(crate) struct Ids {
    nonce: String,
    /// Seed of the random-looking prefix; `None`: the prefix is the instance number.
    random: Option<u64>,
}

impl Ids {
    pub(crate) fn new(random: bool) -> Self {
        let uuid = uuid::Uuid::new_v4();
        let nonce = uuid.simple().to_string()[..16].to_owned();
        Ids { nonce, random: random.then(|| uuid.as_u64_pair().1) }
    }

    pub(crate) fn id(&self, index: u32) -> String {
        match self.random {
            None => format!("{index:08x}{}{index:08x}", self.nonce),
            Some(seed) => {
                format!("{:016x}{}{index:08x}", splitmix64(seed ^ u64::from(index)), &self.nonce[..8])
            }
        }
    }
}

/// SplitMix64's output function: spreads consecutive inputs over the whole range (a bijection,
/// so distinct numbers keep distinct prefixes).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(crate) fn instance_index(id: &str) -> Option<u32> {
    if id.len() != 32 {
        return None;
    }
    u32::from_str_radix(id.get(24..)?, 16).ok()
}

/// The engine's clock, which the timeout scenario stops at one instant while it starts its
/// verifications: every turn then records that instant, so every timer gets the same due time
/// (`instant + window`) however long the start takes, and all of them come due at once, the
/// worst case for the timer path. The store keeps the real clock, so timers fire by real time.
pub(crate) struct FreezableClock {
    frozen_at: Option<Timestamp>,
    frozen: AtomicBool,
    /// While frozen, time moves from `frozen_at` to `frozen_at + spread` as `done` goes from 0
    /// to `total` (the timeout scenario counts delivered codes), so due times spread evenly.
    spread: Duration,
    done: AtomicU64,
    total: u64,
}

impl FreezableClock {
    /// Frozen now, advancing by `spread` in total as [`step`](Self::step) is called `total` times.
    pub(crate) fn frozen_with_spread(spread: Duration, total: u64) -> Self {
        FreezableClock {
            frozen_at: Some(Timestamp::now()),
            frozen: AtomicBool::new(true),
            spread,
            done: AtomicU64::new(0),
            total: total.max(1),
        }
    }

    /// One more unit of progress (moves the frozen time forward when a spread is set).
    pub(crate) fn step(&self) {
        self.done.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn thaw(&self) {
        self.frozen.store(false, Ordering::Release);
    }
}

impl Clock for FreezableClock {
    fn now(&self) -> Timestamp {
        match self.frozen_at {
            Some(t) if self.frozen.load(Ordering::Acquire) => {
                let done = self.done.load(Ordering::Acquire).min(self.total);
                let offset = self.spread.mul_f64(done as f64 / self.total as f64);
                t.checked_add(offset).unwrap_or(t)
            }
            _ => SystemClock.now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sender_hands_the_code_to_the_driver() {
        let ids = Ids::new(false);
        let (sender, mut rx) = BenchSender::new();
        let reference = format!("{}:exec:0", ids.id(42));
        let sms = |body, reference| Sms { to: "+14255550100", body, reference, instance_id: "i" };
        sender.send(&sms("Your verification code is 0042", &reference)).await.unwrap();
        assert_eq!(rx.recv().await, Some((42, 42)));
        assert!(sender.send(&sms("Your verification code is 0042", "nope:exec:0")).await.is_err());
        assert!(sender.send(&sms("no code", &reference)).await.is_err());
    }

    #[test]
    fn ids_round_trip() {
        for random in [false, true] {
            let ids = Ids::new(random);
            assert_eq!(ids.id(7).len(), 32);
            assert!(ids.id(7).bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(instance_index(&ids.id(123_456)), Some(123_456));
            assert_ne!(ids.id(1), ids.id(2));
        }
        assert_eq!(instance_index("short"), None);
        // Counter ids sort in instance order; random ones do not.
        let counter = Ids::new(false);
        assert!((0..100).all(|i| counter.id(i) < counter.id(i + 1)));
        let random = Ids::new(true);
        assert!(!(0..100).all(|i| random.id(i) < random.id(i + 1)));
    }

    #[test]
    fn a_frozen_clock_stands_still_until_thawed() {
        let clock = FreezableClock::frozen_with_spread(Duration::ZERO, 1);
        let t = clock.now();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(clock.now(), t);
        clock.thaw();
        assert!(clock.now() > t);
    }

    #[test]
    fn a_spread_clock_moves_with_progress_and_stops_at_the_end() {
        let clock = FreezableClock::frozen_with_spread(Duration::from_secs(1), 4);
        let t = clock.now();
        clock.step();
        clock.step();
        assert_eq!(clock.now(), t.checked_add(Duration::from_millis(500)).unwrap());
        for _ in 0..10 {
            clock.step();
        }
        assert_eq!(clock.now(), t.checked_add(Duration::from_secs(1)).unwrap());
    }
}
