//! Protection of the node itself: who is asking ([`client_ip`]), wrong-key throttling
//! ([`AuthThrottle`]) and load shedding of new starts ([`LoadShed`]).
//!
//! Both guards keep their state in memory, per node: they protect this process (its CPU, its
//! key comparisons, its queue), so there is nothing to share. Their memory is bounded: the
//! throttle tracks at most [`MAX_TRACKED`] addresses, the shedder one number.

use crate::error::ApiError;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode};
use durable_runtime::Client;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most client addresses the wrong-key throttle remembers; beyond it the stalest are forgotten.
pub(crate) const MAX_TRACKED: usize = 100_000;

/// An offender is forgotten this long after its last wrong key (its count starts over).
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// The address of the client: the TCP peer, or, behind a trusted proxy
/// (`trust_forwarded_headers`), the last address of `X-Forwarded-For` (the one our proxy
/// appended; earlier entries are whatever the client claimed). `None` when unknown (in-process
/// tests without a socket).
pub(crate) fn client_ip(
    headers: &HeaderMap,
    extensions: &Extensions,
    trust_forwarded: bool,
) -> Option<IpAddr> {
    if trust_forwarded && let Some(ip) = forwarded_for(headers) {
        return Some(ip);
    }
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// The client's address as an extractor (see [`client_ip`]).
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

impl axum::extract::FromRequestParts<crate::HttpState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::HttpState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(&parts.headers, &parts.extensions, state.options.trust_forwarded_headers)))
    }
}

fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
    let entry = last.rsplit(',').next()?.trim();
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The key an address is tracked under: IPv4 addresses whole, IPv6 by their /64 (one host
/// usually owns a whole /64, so counting single IPv6 addresses would count nothing).
fn track_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

struct Offender {
    /// Wrong keys so far in this episode.
    failures: u32,
    /// Requests are refused until then.
    blocked_until: Option<Instant>,
    last_failure: Instant,
}

/// Throttles wrong system keys per client address: the first `free` wrong keys are answered
/// 401 as usual; from then on the address is blocked, for 1 s after the `free`-th wrong key,
/// doubling with each further wrong key (up to `max_block`), and every request from it while
/// blocked gets 429 with `Retry-After`, right key or not (otherwise the answer to the right
/// key would tell the guesser it found it). Other addresses are unaffected. One log line per
/// offender and episode.
pub(crate) struct AuthThrottle {
    free: u32,
    max_block: Duration,
    offenders: Mutex<HashMap<IpAddr, Offender>>,
    /// Whether any offender is tracked: requests with the right key skip the lock otherwise.
    tracking: AtomicBool,
}

impl AuthThrottle {
    pub(crate) fn new(free: u32, max_block: Duration) -> Self {
        AuthThrottle {
            free,
            max_block,
            offenders: Mutex::new(HashMap::new()),
            tracking: AtomicBool::new(false),
        }
    }

    /// `Err(wait)` while `ip` is blocked.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if !self.tracking.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.offenders.lock().get(&track_key(ip)).and_then(|o| o.blocked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a wrong key from `ip`; returns the block it now serves, if any.
    pub(crate) fn failure(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let key = track_key(ip);
        let mut offenders = self.offenders.lock();
        if offenders.len() >= MAX_TRACKED && !offenders.contains_key(&key) {
            make_room(&mut offenders, now);
        }
        self.tracking.store(true, Ordering::Relaxed);
        let offender =
            offenders.entry(key).or_insert(Offender { failures: 0, blocked_until: None, last_failure: now });
        if now.duration_since(offender.last_failure) > FORGET_AFTER {
            *offender = Offender { failures: 0, blocked_until: None, last_failure: now };
        }
        offender.failures = offender.failures.saturating_add(1);
        offender.last_failure = now;
        if offender.failures < self.free {
            return None;
        }
        let doublings = (offender.failures - self.free).min(30);
        let block = Duration::from_secs(1u64 << doublings).min(self.max_block);
        if offender.failures == self.free {
            tracing::warn!(
                client = %key,
                wrong_keys = offender.failures,
                "a client sent {} wrong system keys; its requests are refused with 429 for growing periods (up to {} s) while it goes on",
                offender.failures,
                self.max_block.as_secs()
            );
        }
        offender.blocked_until = Some(now + block);
        Some(block)
    }

    /// The right key from `ip`: its record is dropped.
    pub(crate) fn success(&self, ip: IpAddr) {
        if self.tracking.load(Ordering::Relaxed) {
            let mut offenders = self.offenders.lock();
            offenders.remove(&track_key(ip));
            if offenders.is_empty() {
                self.tracking.store(false, Ordering::Relaxed);
            }
        }
    }

    /// The answer to a blocked request.
    pub(crate) fn refusal(wait: Duration) -> ApiError {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyWrongKeys",
            format!(
                "too many wrong system keys from your address: requests from it are refused for {secs} s more \
                 (longer after each further wrong key); retry after that with a current system key"
            ),
        )
        .with_retry_after(secs)
    }
}

/// Forgets offenders no longer blocked and quiet for [`FORGET_AFTER`]; if that frees nothing,
/// the stalest tenth (so a flood of addresses cannot grow the map without bound).
fn make_room(offenders: &mut HashMap<IpAddr, Offender>, now: Instant) {
    offenders.retain(|_, o| {
        o.blocked_until.is_some_and(|u| u > now) || now.duration_since(o.last_failure) <= FORGET_AFTER
    });
    if offenders.len() < MAX_TRACKED {
        return;
    }
    let mut ages: Vec<(Instant, IpAddr)> = offenders.iter().map(|(k, o)| (o.last_failure, *k)).collect();
    ages.sort_unstable();
    for (_, key) in ages.into_iter().take(MAX_TRACKED / 10) {
        offenders.remove(&key);
    }
}

/// Refuses new starts with 503 while the engine's backlog (instances ready and waiting for a
/// turn) is above `bound`, so a flood of starts cannot queue without limit; events, status and
/// everything else keep working. The backlog is read from the store at most every
/// [`LoadShed::REFRESH`] (a counting query up to `bound + 1` rows), not per request.
pub(crate) struct LoadShed {
    bound: u64,
    over: AtomicBool,
    /// Milliseconds since `epoch` of the last refresh.
    checked_ms: AtomicU64,
    epoch: Instant,
}

impl LoadShed {
    /// How stale the backlog reading may be.
    pub(crate) const REFRESH: Duration = Duration::from_millis(250);

    pub(crate) fn new(bound: u64) -> Self {
        LoadShed { bound, over: AtomicBool::new(false), checked_ms: AtomicU64::new(0), epoch: Instant::now() }
    }

    /// `Err(503)` while the backlog is over the bound. One caller per refresh period reads the
    /// store; the others use the last reading.
    pub(crate) async fn admit(&self, client: &Client) -> Result<(), ApiError> {
        if self.bound == 0 {
            return Ok(());
        }
        let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
        let last = self.checked_ms.load(Ordering::Acquire);
        let stale = last == 0 || now_ms.saturating_sub(last) >= Self::REFRESH.as_millis() as u64;
        if stale
            && self.checked_ms.compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            match client.ready_backlog(self.bound + 1).await {
                Ok(Some(backlog)) => {
                    let over = backlog > self.bound;
                    if over != self.over.swap(over, Ordering::AcqRel) {
                        if over {
                            tracing::warn!(
                                backlog,
                                bound = self.bound,
                                "the engine's backlog is over its bound: new starts are refused with 503 until it drains"
                            );
                        } else {
                            tracing::info!(
                                backlog,
                                bound = self.bound,
                                "the engine's backlog is back under its bound: new starts are accepted again"
                            );
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "could not read the backlog"),
            }
        }
        if self.over.load(Ordering::Acquire) {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Overloaded",
                format!(
                    "the server is overloaded: more than {} instances are waiting for their next step, so new \
                     starts are refused for now (events, status and management still work); retry in a few seconds",
                    self.bound
                ),
            )
            .with_retry_after(5));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn wrong_keys_block_an_address_for_growing_periods() {
        let t = AuthThrottle::new(5, Duration::from_secs(900));
        let now = Instant::now();
        let a = ip("203.0.113.7");
        for _ in 0..4 {
            assert_eq!(t.failure(a, now), None);
            assert_eq!(t.check(a, now), Ok(()));
        }
        assert_eq!(t.failure(a, now), Some(Duration::from_secs(1)), "the 5th wrong key blocks");
        assert_eq!(t.check(a, now), Err(Duration::from_secs(1)));
        assert_eq!(t.check(ip("203.0.113.8"), now), Ok(()), "other addresses are unaffected");
        let later = now + Duration::from_secs(1);
        assert_eq!(t.check(a, later), Ok(()));
        assert_eq!(t.failure(a, later), Some(Duration::from_secs(2)));
        assert_eq!(t.failure(a, later), Some(Duration::from_secs(4)));
        for _ in 0..20 {
            t.failure(a, later);
        }
        assert_eq!(t.check(a, later), Err(Duration::from_secs(900)), "capped");
        // The right key clears the record; an hour of quiet does too.
        t.success(a);
        assert_eq!(t.check(a, later), Ok(()));
        for _ in 0..5 {
            t.failure(a, later);
        }
        let much_later = later + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(t.failure(a, much_later), None, "the count starts over");
    }

    #[test]
    fn ipv6_addresses_are_tracked_by_their_64_prefix() {
        let t = AuthThrottle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        t.failure(ip("2001:db8:1:2::1"), now);
        assert!(t.failure(ip("2001:db8:1:2::ffff"), now).is_some());
        assert!(t.check(ip("2001:db8:1:2:aaaa::"), now).is_err());
        assert!(t.check(ip("2001:db8:1:3::1"), now).is_ok());
        assert_eq!(track_key(IpAddr::V6(Ipv6Addr::LOCALHOST)), ip("::"));
        assert_eq!(track_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn the_tracked_set_is_bounded() {
        let t = AuthThrottle::new(1, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 5_000) {
            t.failure(IpAddr::V4(std::net::Ipv4Addr::from(i)), now);
        }
        assert!(t.offenders.lock().len() <= MAX_TRACKED);
    }

    #[test]
    fn forwarded_for_uses_the_entry_our_proxy_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.1, 203.0.113.9".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some(ip("203.0.113.9")));
        h.insert("x-forwarded-for", "[2001:db8::1]:443".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some(ip("2001:db8::1")));
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(forwarded_for(&h), None);
    }
}
