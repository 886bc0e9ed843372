//! The in-memory dispatch index: leases, the ready queues and the timer index.
//!
//! One process owns the database file, so nothing here needs to be durable: after a restart the
//! index is rebuilt from the tables (every lease of the previous process is gone, which releases
//! its work at once instead of waiting for the leases to expire). Fetching work therefore never
//! scans or writes the database for orchestrations; it pops instance ids from a queue.
//!
//! Memory is what limits how many parked instances one process can hold, so an instance that
//! only waits for a timer costs one entry in an ordered set of (due time, message id): 16 bytes
//! of key, about 25 bytes with the tree's nodes. The instance a due timer belongs to is looked
//! up in the database when it comes due (see `read::resolve_due_timers`). Per-instance state
//! exists only while an instance is queued, leased or backing off. The timer index is exact:
//! the writer removes the entries of timers it deletes (cancelled, finished, purged), so a
//! timer cancelled days before it is due costs nothing meanwhile. Lease expiries are checked lazily and swept when stale entries
//! (from renewals and releases) pile up. The remaining stale entries (a purged instance still in
//! the ready queue) surface as an instance without visible messages, which a fetch skips.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

/// Below this many entries an expiry heap is never swept.
const SWEEP_MIN: usize = 1024;

/// Lease expiry times. Renewals and releases leave stale entries behind; they are skipped when
/// popped and swept out once they outnumber the current ones, so memory follows the number of
/// live leases, not the lease duration times the turn rate.
struct Expiries<K> {
    heap: BinaryHeap<Reverse<(i64, K, u64)>>,
    sweep_at: usize,
}

impl<K> Default for Expiries<K> {
    fn default() -> Self {
        Expiries { heap: BinaryHeap::new(), sweep_at: SWEEP_MIN }
    }
}

impl<K: Ord> Expiries<K> {
    /// Adds an entry; `current(key, token, at)` tells whether an entry is still the one of a
    /// live lease, for sweeping.
    fn push(&mut self, at: i64, key: K, token: u64, current: impl Fn(&K, u64, i64) -> bool) {
        self.heap.push(Reverse((at, key, token)));
        if self.heap.len() > self.sweep_at {
            self.heap.retain(|Reverse((at, key, token))| current(key, *token, *at));
            self.sweep_at = (self.heap.len() * 2).max(SWEEP_MIN);
        }
    }

    /// Pops an entry due at `now` or earlier.
    fn pop_due(&mut self, now: i64) -> Option<(K, u64)> {
        if self.heap.peek().is_some_and(|Reverse((t, _, _))| *t <= now) {
            self.heap.pop().map(|Reverse((_, key, token))| (key, token))
        } else {
            None
        }
    }

    fn next(&self) -> Option<i64> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }
}

/// A granted lease, in microseconds of the store clock.
#[derive(Clone, Copy, Debug)]
struct Lease {
    token: u64,
    expires: i64,
    /// Set while the writer commits under this lease: a pinned lease does not expire, so a
    /// commit accepted by the writer cannot be overtaken by a redelivery of the same work.
    pinned: bool,
}

impl Lease {
    fn live(&self, now: i64) -> bool {
        self.pinned || self.expires > now
    }
}

/// Orchestration state of one instance; exists only while the instance is queued, leased or
/// backing off.
#[derive(Debug, Default)]
struct InstanceSlot {
    lease: Option<Lease>,
    /// In `ready` (entries without this flag are stale and skipped).
    queued: bool,
    /// New work arrived while leased: queue again on release even if the commit saw none.
    dirty: bool,
    /// Abandoned with a retry delay: not fetchable before this time (a wake-up is scheduled).
    not_before: i64,
}

/// The orchestration side of the index.
#[derive(Default)]
pub(crate) struct Orchestrations {
    slots: HashMap<Arc<str>, InstanceSlot>,
    ready: VecDeque<Arc<str>>,
    /// (due time, message id) of every timer not yet due. Ordered, so the earliest is first and
    /// deleted timers can be removed.
    timers: BTreeSet<(i64, i64)>,
    /// (time, instance): a retry delay ends then. Few and short-lived, so stale entries (the
    /// instance was purged) are simply skipped.
    retries: BinaryHeap<Reverse<(i64, Arc<str>)>>,
    /// (time, instance, token): the lease expires then unless renewed.
    expiries: Expiries<Arc<str>>,
}

/// Whether an expiry entry is the current one of a live lease.
fn current_lease(slots: &HashMap<Arc<str>, InstanceSlot>, id: &Arc<str>, token: u64, at: i64) -> bool {
    slots.get(id).and_then(|s| s.lease).is_some_and(|l| l.token == token && l.expires == at)
}

/// A fresh orchestration lease.
pub(crate) struct Granted {
    pub instance_id: Arc<str>,
    pub token: u64,
    pub expires: i64,
}

impl Orchestrations {
    /// Records that the instance has visible messages. Returns true when it became ready.
    pub(crate) fn mark_visible(&mut self, instance_id: &str, now: i64) -> bool {
        let slot = match self.slots.get_mut(instance_id) {
            Some(slot) => slot,
            None => self.slots.entry(Arc::from(instance_id)).or_default(),
        };
        if slot.lease.is_some() {
            slot.dirty = true;
            return false;
        }
        if slot.queued || slot.not_before > now {
            return false;
        }
        slot.queued = true;
        let key = self.slots.get_key_value(instance_id).map(|(k, _)| k.clone()).expect("slot exists");
        self.ready.push_back(key);
        true
    }

    /// Indexes timer message `message_id`, due at `at`. Returns true when it is the new
    /// earliest wake-up, so sleeping waiters must recompute their deadline.
    pub(crate) fn add_timer(&mut self, at: i64, message_id: i64) -> bool {
        let earliest = self.timers.first().is_none_or(|(t, _)| at < *t);
        self.timers.insert((at, message_id));
        earliest
    }

    /// Forgets a deleted timer message.
    pub(crate) fn remove_timer(&mut self, at: i64, message_id: i64) {
        self.timers.remove(&(at, message_id));
    }

    /// True when a timer is due (its instance is not known here yet).
    pub(crate) fn has_due_timers(&self, now: i64) -> bool {
        self.timers.first().is_some_and(|(t, _)| *t <= now)
    }

    /// Removes and returns up to `max` due timers as (due time, message id).
    pub(crate) fn take_due_timers(&mut self, now: i64, max: usize) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        while out.len() < max && self.has_due_timers(now) {
            out.extend(self.timers.pop_first());
        }
        out
    }

    /// Moves ended retry delays and expired leases to the ready queue. Returns true if any
    /// became ready.
    pub(crate) fn promote(&mut self, now: i64) -> bool {
        let mut any = false;
        while self.retries.peek().is_some_and(|Reverse((t, _))| *t <= now) {
            let Reverse((_, id)) = self.retries.pop().expect("peeked");
            any |= self.mark_visible(&id, now);
        }
        while let Some((id, token)) = self.expiries.pop_due(now) {
            let Some(slot) = self.slots.get_mut(&id) else { continue };
            // Only the lease this entry was pushed for, and only if it was not renewed since.
            if slot.lease.is_some_and(|l| l.token == token && !l.live(now)) {
                // The holder is presumed dead; its messages are still queued.
                slot.lease = None;
                slot.dirty = false;
                if !slot.queued {
                    slot.queued = true;
                    self.ready.push_back(id);
                    any = true;
                }
            }
        }
        any
    }

    /// Leases up to `max` ready instances.
    pub(crate) fn lease(
        &mut self,
        max: usize,
        now: i64,
        duration: i64,
        tokens: &dyn Fn() -> u64,
    ) -> Vec<Granted> {
        self.promote(now);
        let mut out = Vec::new();
        let expires = now.saturating_add(duration);
        while out.len() < max {
            let Some(id) = self.ready.pop_front() else { break };
            let Some(slot) = self.slots.get_mut(&id) else { continue };
            if !slot.queued || slot.lease.is_some() {
                continue; // stale entry
            }
            let token = tokens();
            slot.queued = false;
            slot.dirty = false;
            slot.lease = Some(Lease { token, expires, pinned: false });
            let slots = &self.slots;
            self.expiries.push(expires, id.clone(), token, |k, t, at| current_lease(slots, k, t, at));
            out.push(Granted { instance_id: id, token, expires });
        }
        out
    }

    /// Leases one instance by id, if it holds no live lease and is not backing off; it may or
    /// may not have visible messages (a queued entry becomes stale and is skipped).
    pub(crate) fn lease_one(
        &mut self,
        instance_id: &str,
        now: i64,
        duration: i64,
        token: u64,
    ) -> Option<Granted> {
        self.promote(now);
        let slot = match self.slots.get_mut(instance_id) {
            Some(slot) => slot,
            None => self.slots.entry(Arc::from(instance_id)).or_default(),
        };
        if slot.lease.is_some() || slot.not_before > now {
            return None;
        }
        let expires = now.saturating_add(duration);
        // Work queued for it is now in the lease holder's hands; on release it is queued again
        // if anything is left.
        slot.dirty = std::mem::take(&mut slot.queued);
        slot.lease = Some(Lease { token, expires, pinned: false });
        let id = self.slots.get_key_value(instance_id).map(|(k, _)| k.clone()).expect("slot exists");
        let slots = &self.slots;
        self.expiries.push(expires, id.clone(), token, |k, t, at| current_lease(slots, k, t, at));
        Some(Granted { instance_id: id, token, expires })
    }

    /// True when the instance is leased with `token` and the lease is live.
    pub(crate) fn holds(&self, instance_id: &str, token: u64, now: i64) -> bool {
        self.slots.get(instance_id).and_then(|s| s.lease).is_some_and(|l| l.token == token && l.live(now))
    }

    /// Pins a live lease for a commit; false if it is not held.
    pub(crate) fn pin(&mut self, instance_id: &str, token: u64, now: i64) -> bool {
        match self.slots.get_mut(instance_id).and_then(|s| s.lease.as_mut()) {
            Some(l) if l.token == token && l.live(now) => {
                l.pinned = true;
                true
            }
            _ => false,
        }
    }

    /// Undoes [`pin`](Self::pin) after a failed commit; the lease keeps its expiry time.
    pub(crate) fn unpin(&mut self, instance_id: &str, token: u64) {
        if let Some((key, slot)) = self.slots.get_key_value(instance_id)
            && let Some(l) = slot.lease.filter(|l| l.token == token && l.pinned)
        {
            let key = key.clone();
            let slots = &self.slots;
            self.expiries.push(l.expires, key, token, |k, t, at| current_lease(slots, k, t, at));
            if let Some(l) = self.slots.get_mut(instance_id).and_then(|s| s.lease.as_mut()) {
                l.pinned = false;
            }
        }
    }

    /// Extends a live lease. Returns the new expiry, or `None` if the lease is not held.
    pub(crate) fn renew(&mut self, instance_id: &str, token: u64, now: i64, duration: i64) -> Option<i64> {
        let (key, slot) = self.slots.get_key_value(instance_id)?;
        let lease = slot.lease.filter(|l| l.token == token && l.live(now))?;
        let key = key.clone();
        let expires = now.saturating_add(duration).max(lease.expires);
        self.slots.get_mut(instance_id)?.lease.as_mut()?.expires = expires;
        let slots = &self.slots;
        self.expiries.push(expires, key, token, |k, t, at| current_lease(slots, k, t, at));
        Some(expires)
    }

    /// Ends a lease. The instance is queued again when it may have work (`has_work`, or work
    /// arrived during the lease), after `not_before` when that is in the future (a wake-up is
    /// scheduled for it). Returns true when it was queued now, false also when the lease was
    /// not held.
    pub(crate) fn release(
        &mut self,
        instance_id: &str,
        token: u64,
        has_work: bool,
        not_before: i64,
        now: i64,
    ) -> bool {
        let Some(slot) = self.slots.get_mut(instance_id) else { return false };
        if slot.lease.is_none_or(|l| l.token != token) {
            return false;
        }
        slot.lease = None;
        let has_work = has_work || std::mem::take(&mut slot.dirty);
        if not_before > now {
            slot.not_before = not_before;
            let key = self.slots.get_key_value(instance_id).map(|(k, _)| k.clone()).expect("slot exists");
            self.retries.push(Reverse((not_before, key)));
            return false;
        }
        if has_work {
            return self.mark_visible(instance_id, now);
        }
        if slot.not_before <= now {
            self.slots.remove(instance_id);
        }
        false
    }

    /// Forgets a purged instance: its lease is revoked (the holder gets `LeaseLost`).
    pub(crate) fn forget(&mut self, instance_id: &str) {
        self.slots.remove(instance_id);
    }

    /// True when an instance is ready now or a timer is due (stale queue entries are dropped on
    /// the way).
    pub(crate) fn has_ready(&mut self, now: i64) -> bool {
        self.promote(now);
        if self.has_due_timers(now) {
            return true;
        }
        while let Some(id) = self.ready.front() {
            if self.slots.get(id).is_some_and(|s| s.queued && s.lease.is_none()) {
                return true;
            }
            self.ready.pop_front();
        }
        false
    }

    /// The earliest time something may become ready (a timer, a retry or a lease expiry).
    pub(crate) fn next_due(&self) -> Option<i64> {
        let t = self.timers.first().map(|(t, _)| *t);
        let r = self.retries.peek().map(|Reverse((t, _))| *t);
        t.into_iter().chain(r).chain(self.expiries.next()).min()
    }

    /// Number of timers not yet due, for tests and diagnostics.
    pub(crate) fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// (instances queued and not leased, timers due at `now` and not yet resolved into a
    /// ready instance). Counts what is waiting, not what is parked, so the cost follows the
    /// backlog.
    pub(crate) fn backlog(&self, now: i64) -> (u64, u64) {
        let ready = self.slots.values().filter(|s| s.queued && s.lease.is_none()).count();
        let due = self.timers.range(..(now.saturating_add(1), i64::MIN)).count();
        (ready as u64, due as u64)
    }

    /// Instances waiting in the ready queue (an upper bound: stale entries are only dropped
    /// when they reach the front), for load shedding.
    pub(crate) fn ready_count(&self) -> usize {
        self.ready.len()
    }
}

/// The activity side of the index.
#[derive(Default)]
pub(crate) struct Activities {
    /// Ids of fetchable activities; ids increase with creation, so the first is the oldest.
    ready: BTreeSet<i64>,
    leases: HashMap<i64, Lease>,
    expiries: Expiries<i64>,
    /// (time, id): an abandoned activity becomes fetchable again then.
    delayed: BinaryHeap<Reverse<(i64, i64)>>,
}

impl Activities {
    /// A new (or recovered) activity is fetchable.
    pub(crate) fn add(&mut self, id: i64) {
        self.ready.insert(id);
    }

    /// The activity was deleted.
    pub(crate) fn forget(&mut self, id: i64) {
        self.ready.remove(&id);
        self.leases.remove(&id);
    }

    /// Moves due retries and expired leases back to the ready set.
    pub(crate) fn promote(&mut self, now: i64) -> bool {
        let mut any = false;
        while self.delayed.peek().is_some_and(|Reverse((t, _))| *t <= now) {
            let Reverse((_, id)) = self.delayed.pop().expect("peeked");
            if !self.leases.contains_key(&id) {
                any |= self.ready.insert(id);
            }
        }
        while let Some((id, token)) = self.expiries.pop_due(now) {
            if self.leases.get(&id).is_some_and(|s| s.token == token && !s.live(now)) {
                self.leases.remove(&id);
                any |= self.ready.insert(id);
            }
        }
        any
    }

    /// Leases up to `max` of the oldest fetchable activities.
    pub(crate) fn lease(
        &mut self,
        max: usize,
        now: i64,
        duration: i64,
        tokens: &dyn Fn() -> u64,
    ) -> Vec<(i64, u64, i64)> {
        self.promote(now);
        let expires = now.saturating_add(duration);
        let mut out = Vec::new();
        while out.len() < max {
            let Some(id) = self.ready.pop_first() else { break };
            let token = tokens();
            self.leases.insert(id, Lease { token, expires, pinned: false });
            self.push_expiry(expires, id, token);
            out.push((id, token, expires));
        }
        out
    }

    /// True when the activity is leased with a live lease (any token).
    pub(crate) fn is_leased(&self, id: i64, now: i64) -> bool {
        self.leases.get(&id).is_some_and(|s| s.live(now))
    }

    /// Pins a live lease for a completion; false if it is not held.
    pub(crate) fn pin(&mut self, id: i64, token: u64, now: i64) -> bool {
        match self.leases.get_mut(&id) {
            Some(s) if s.token == token && s.live(now) => {
                s.pinned = true;
                true
            }
            _ => false,
        }
    }

    /// Undoes [`pin`](Self::pin) after a failed completion.
    pub(crate) fn unpin(&mut self, id: i64, token: u64) {
        if let Some(s) = self.leases.get_mut(&id).filter(|s| s.token == token) {
            s.pinned = false;
            let expires = s.expires;
            self.push_expiry(expires, id, token);
        }
    }

    /// Extends a live lease; `None` if it is not held.
    pub(crate) fn renew(&mut self, id: i64, token: u64, now: i64, duration: i64) -> Option<i64> {
        let s = self.leases.get_mut(&id).filter(|s| s.token == token && s.live(now))?;
        s.expires = now.saturating_add(duration).max(s.expires);
        let expires = s.expires;
        self.push_expiry(expires, id, token);
        Some(expires)
    }

    /// Ends a live lease without completing; the activity is fetchable again at `at`.
    pub(crate) fn abandon(&mut self, id: i64, token: u64, now: i64, at: i64) -> bool {
        if !self.leases.get(&id).is_some_and(|s| s.token == token && s.live(now)) {
            return false;
        }
        self.leases.remove(&id);
        if at <= now {
            self.ready.insert(id);
        } else {
            self.delayed.push(Reverse((at, id)));
        }
        true
    }

    /// Activities fetchable now (delayed ones whose time came included).
    pub(crate) fn ready_count(&mut self, now: i64) -> u64 {
        self.promote(now);
        self.ready.len() as u64
    }

    /// True when an activity is fetchable now.
    pub(crate) fn has_ready(&mut self, now: i64) -> bool {
        self.promote(now);
        !self.ready.is_empty()
    }

    /// The earliest time an activity may become fetchable.
    pub(crate) fn next_due(&self) -> Option<i64> {
        let d = self.delayed.peek().map(|Reverse((t, _))| *t);
        d.into_iter().chain(self.expiries.next()).min()
    }

    fn push_expiry(&mut self, at: i64, id: i64, token: u64) {
        let leases = &self.leases;
        self.expiries.push(at, id, token, |id, token, at| {
            leases.get(id).is_some_and(|l| l.token == token && l.expires == at)
        });
    }
}

/// Both sides, behind one mutex (every operation on it is short and never does I/O).
#[derive(Default)]
pub(crate) struct Dispatch {
    pub orch: Orchestrations,
    pub act: Activities,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn tokens() -> impl Fn() -> u64 {
        let next = Cell::new(0);
        move || {
            next.set(next.get() + 1);
            next.get()
        }
    }

    #[test]
    fn an_instance_is_leased_once_and_requeued_when_work_arrived_meanwhile() {
        let t = tokens();
        let mut o = Orchestrations::default();
        assert!(o.mark_visible("a", 0));
        assert!(!o.mark_visible("a", 0), "already queued");
        let g = o.lease(10, 0, 100, &t);
        assert_eq!(g.len(), 1);
        assert!(o.lease(10, 0, 100, &t).is_empty());
        assert!(!o.mark_visible("a", 1), "leased: remembered as dirty");
        assert!(o.release("a", g[0].token, false, 0, 2));
        assert_eq!(o.lease(10, 2, 100, &t).len(), 1);
    }

    #[test]
    fn expired_leases_are_redelivered_and_renewals_are_honoured() {
        let t = tokens();
        let mut o = Orchestrations::default();
        o.mark_visible("a", 0);
        let g = o.lease(1, 0, 10, &t).pop().unwrap();
        assert_eq!(o.renew("a", g.token, 5, 100), Some(105));
        assert!(o.lease(1, 50, 10, &t).is_empty(), "renewed lease still live");
        let g2 = o.lease(1, 105, 10, &t).pop().unwrap();
        assert_ne!(g2.token, g.token);
        assert!(!o.holds("a", g.token, 105));
        assert!(!o.pin("a", g.token, 105));
        assert!(o.pin("a", g2.token, 106));
        assert!(o.lease(1, 1000, 10, &t).is_empty(), "pinned leases do not expire");
        o.unpin("a", g2.token);
        assert_eq!(o.lease(1, 1000, 10, &t).len(), 1);
    }

    #[test]
    fn timers_and_retry_delays() {
        let t = tokens();
        let mut o = Orchestrations::default();
        assert!(o.add_timer(50, 1));
        assert!(!o.add_timer(60, 2));
        assert!(o.add_timer(40, 3));
        o.remove_timer(40, 3);
        assert_eq!(o.next_due(), Some(50));
        assert!(!o.has_ready(49));
        assert!(o.has_ready(50), "a due timer is work");
        assert_eq!(o.take_due_timers(50, 10), [(50, 1)]);
        assert_eq!(o.timer_count(), 1);
        o.mark_visible("a", 50);
        let g = o.lease(1, 50, 1000, &t).pop().unwrap();
        assert!(!o.release("a", g.token, true, 80, 51), "backing off");
        assert!(!o.mark_visible("a", 52), "a message does not cut the delay short");
        assert!(o.lease(5, 70, 1000, &t).iter().all(|g| &*g.instance_id != "a"));
        assert_eq!(o.lease(5, 80, 1000, &t).len(), 1);
    }

    #[test]
    fn stale_expiry_entries_are_swept() {
        let t = tokens();
        let mut o = Orchestrations::default();
        for round in 0..10 {
            for i in 0..1000 {
                o.mark_visible(&format!("i{i}"), round);
            }
            for g in o.lease(1000, round, 1_000_000, &t) {
                assert!(!o.release(&g.instance_id, g.token, false, 0, round));
            }
        }
        assert!(o.expiries.heap.len() <= 2 * SWEEP_MIN, "{} stale entries kept", o.expiries.heap.len());
        assert!(o.slots.is_empty());
    }

    #[test]
    fn activities_oldest_first_with_leases_and_retries() {
        let t = tokens();
        let mut a = Activities::default();
        for id in [3, 1, 2] {
            a.add(id);
        }
        let got = a.lease(2, 0, 10, &t);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [1, 2]);
        assert!(a.abandon(1, got[0].1, 5, 20));
        assert_eq!(a.lease(5, 5, 10, &t).iter().map(|g| g.0).collect::<Vec<_>>(), [3]);
        assert_eq!(a.next_due(), Some(10));
        let again = a.lease(5, 20, 10, &t);
        assert_eq!(again.iter().map(|g| g.0).collect::<Vec<_>>(), [1, 2, 3], "retry due and leases expired");
    }
}
