//! A fake of Twilio's Messages endpoint on `127.0.0.1`, for tests (feature `fake`).
//!
//! It answers like Twilio does for the cases durable cares about: HTTP Basic auth (→ 401/20003),
//! the account SID in the path (→ 404/20404), missing `To`/`From`/`Body` (→ 21604/21603/21602),
//! an invalid `To` (→ 21211), Twilio's magic test numbers, an optional trial-account allow-list
//! (→ 21608), and `201 Created` with the full Message resource. Tests can inject transient
//! failures ([`FakeTwilio::fail_next`]), `Retry-After` headers and slow responses, read what was
//! sent through [`FakeTwilio::messages`] or `GET /_fake/messages[?to=…]`, and wait for messages
//! with a deadline instead of sleeping.
//!
//! Magic numbers (from Twilio's test credentials): `To` `+15005550001` → 21211, `+15005550002`
//! → 21612, `+15005550003` → 21408, `+15005550004` → 21610, `+15005550009` → 21614; `From`
//! `+15005550001` → 21212, `+15005550007` → 21606, `+15005550008` → 21611. Any other well-formed
//! number is accepted (unless [`FakeTwilioOptions::allowed_from`] or the trial allow-list say
//! otherwise), so tests need no magic `From`.

mod server;
mod webhooks;

pub use webhooks::{Delivery, FakeCallback, InboundReply, Signing};

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::TwilioConfig;

/// An account SID of the right shape for tests (`AC` + 32 hex digits).
pub const TEST_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
/// The auth token [`FakeTwilioOptions::default`] expects.
pub const TEST_AUTH_TOKEN: &str = "fake-twilio-auth-token";
/// Twilio's magic "valid sender" for test credentials.
pub const TEST_FROM: &str = "+15005550006";

/// Why the fake could not start, or a wait ran out of time.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding `127.0.0.1:0` failed.
    #[error("could not bind the fake Twilio on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    /// A `wait_for_*` deadline passed.
    #[error("timed out after {timeout:?} waiting for {what}; the fake has seen {seen}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline.
        timeout: Duration,
        /// What the fake had received by then, to help debug the test.
        seen: String,
    },
}

/// How the fake behaves; `Default` uses [`TEST_ACCOUNT_SID`] and [`TEST_AUTH_TOKEN`].
#[derive(Debug, Clone)]
pub struct FakeTwilioOptions {
    /// The only account the fake knows; other SIDs in the path get 404/20404.
    pub account_sid: String,
    /// The password Basic auth must carry; anything else gets 401/20003.
    pub auth_token: String,
    /// When set, like a trial account: `To` numbers not in the list get 400/21608.
    pub trial_allow_list: Option<Vec<String>>,
    /// When set, `From` numbers not in the list get 400/21606 (not an SMS-capable number of the
    /// account), like Twilio does for numbers the account does not own.
    pub allowed_from: Option<Vec<String>>,
}

impl Default for FakeTwilioOptions {
    fn default() -> Self {
        Self {
            account_sid: TEST_ACCOUNT_SID.to_owned(),
            auth_token: TEST_AUTH_TOKEN.to_owned(),
            trial_allow_list: None,
            allowed_from: None,
        }
    }
}

/// A message the fake accepted (answered `201`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeMessage {
    /// The SID returned to the client, `SM` + 32 hex digits.
    pub sid: String,
    /// The account from the request path.
    pub account_sid: String,
    /// The `To` form field as received.
    pub to: String,
    /// The `From` form field as received (empty when only `MessagingServiceSid` was given).
    pub from: String,
    /// The `Body` form field as received (empty when only media was sent).
    pub body: String,
    /// `MessagingServiceSid`, when given.
    pub messaging_service_sid: Option<String>,
    /// The status returned: `queued`, or `accepted` via a Messaging Service.
    pub status: String,
    /// `date_created` as returned (RFC 2822).
    pub date_created: String,
    /// Every form field exactly as decoded, in order, duplicates included.
    pub params: Vec<(String, String)>,
}

/// Any request that reached the Messages endpoint, whatever the answer, in arrival order.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    /// When the request arrived.
    pub received_at: Instant,
    /// The request path.
    pub path: String,
    /// The user name of the Basic auth header, if one could be decoded.
    pub auth_user: Option<String>,
    /// Every form field as decoded, in order.
    pub params: Vec<(String, String)>,
    /// The status answered; `None` while the answer is pending (e.g. delayed) or if the client
    /// hung up first.
    pub response_status: Option<u16>,
    /// The Twilio error code answered, if any.
    pub response_code: Option<u32>,
}

/// A failure to inject instead of normal processing.
#[derive(Debug, Clone)]
struct Injected {
    status: u16,
    retry_after: Option<Duration>,
    /// A raw body (e.g. a proxy's HTML page) instead of a Twilio error document.
    raw_body: Option<(String, String)>,
}

#[derive(Debug, Default)]
struct State {
    messages: Vec<FakeMessage>,
    requests: Vec<FakeRequest>,
    failures: VecDeque<Injected>,
    delays: VecDeque<Duration>,
    /// Answers held back after the message was accepted (the answer is lost or late).
    post_accept_delays: VecDeque<Duration>,
    trial_allow_list: Option<Vec<String>>,
    allowed_from: Option<Vec<String>>,
    /// How messages to a number are reported as delivered (default: delivered).
    delivery: std::collections::HashMap<String, Delivery>,
    /// Status callbacks posted so far.
    callbacks: Vec<FakeCallback>,
}

struct Shared {
    account_sid: String,
    auth_token: String,
    // A watch channel rather than a mutex, so waiters are woken on every change.
    state: watch::Sender<State>,
    shutdown: watch::Sender<bool>,
}

/// A running fake; it stops when dropped (or with [`FakeTwilio::shutdown`]).
pub struct FakeTwilio {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for FakeTwilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTwilio").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl FakeTwilio {
    /// Binds `127.0.0.1:0` and serves in a background task of the current tokio runtime.
    pub async fn start(options: FakeTwilioOptions) -> Result<FakeTwilio, Error> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), options).await
    }

    /// Like [`start`](Self::start), on a given loopback address (e.g. a port a client was
    /// already pointed at while nothing listened there).
    pub async fn start_on(addr: SocketAddr, options: FakeTwilioOptions) -> Result<FakeTwilio, Error> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let shared = Arc::new(Shared {
            account_sid: options.account_sid,
            auth_token: options.auth_token,
            state: watch::Sender::new(State {
                trial_allow_list: options.trial_allow_list,
                allowed_from: options.allowed_from,
                ..State::default()
            }),
            shutdown: watch::Sender::new(false),
        });
        let app = server::router(shared.clone());
        let mut stop = shared.shutdown.subscribe();
        let task = tokio::spawn(async move {
            let stopped = async move {
                // Err means the handle is gone, which is also a reason to stop.
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            if let Err(err) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
                tracing::warn!(%err, "fake Twilio server stopped with an error");
            }
        });
        Ok(FakeTwilio { shared, addr, task: Some(task) })
    }

    /// The socket address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, to use as [`TwilioConfig::base_url`].
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The account SID the fake accepts.
    pub fn account_sid(&self) -> &str {
        &self.shared.account_sid
    }

    /// The auth token the fake accepts.
    pub fn auth_token(&self) -> &str {
        &self.shared.auth_token
    }

    /// A client configuration aimed at this fake with the right credentials, [`TEST_FROM`] as
    /// sender, and retries fast enough for tests (10 ms initial backoff, 3 attempts, 5 s timeout).
    pub fn client_config(&self) -> TwilioConfig {
        let mut config = TwilioConfig::new(self.account_sid(), self.auth_token(), TEST_FROM)
            .with_base_url(self.base_url());
        config.request_timeout = Duration::from_secs(5);
        config.initial_backoff = Duration::from_millis(10);
        config.max_backoff = Duration::from_millis(100);
        config
    }

    /// Every accepted message, oldest first.
    pub fn messages(&self) -> Vec<FakeMessage> {
        self.shared.state.borrow().messages.clone()
    }

    /// Accepted messages whose `To` is exactly `to`, oldest first.
    pub fn messages_to(&self, to: &str) -> Vec<FakeMessage> {
        self.shared.state.borrow().messages.iter().filter(|m| m.to == to).cloned().collect()
    }

    /// Every request to the Messages endpoint, whatever the answer, oldest first.
    pub fn requests(&self) -> Vec<FakeRequest> {
        self.shared.state.borrow().requests.clone()
    }

    /// Waits until at least `n` messages were accepted, and returns them all.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Result<Vec<FakeMessage>, Error> {
        self.wait(format!("{n} accepted message(s)"), timeout, |s| {
            (s.messages.len() >= n).then(|| s.messages.clone())
        })
        .await
    }

    /// Waits until a message to `to` was accepted, and returns the most recent one (so a test
    /// that expects a re-sent code should first wait for the count with `wait_for_messages`).
    pub async fn wait_for_message_to(&self, to: &str, timeout: Duration) -> Result<FakeMessage, Error> {
        self.wait(format!("a message to {to}"), timeout, |s| {
            s.messages.iter().rev().find(|m| m.to == to).cloned()
        })
        .await
    }

    /// Waits until at least `n` requests reached the Messages endpoint, and returns them all.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Result<Vec<FakeRequest>, Error> {
        self.wait(format!("{n} request(s)"), timeout, |s| (s.requests.len() >= n).then(|| s.requests.clone()))
            .await
    }

    /// The next `n` requests are answered with `http_status` and a Twilio error document
    /// (429 → code 20429, 503 → 20503, otherwise 20000 + status), before auth is checked, like
    /// a failure at Twilio's edge.
    ///
    /// # Panics
    /// If `http_status` is not a valid status code.
    pub fn fail_next(&self, n: usize, http_status: u16) {
        self.inject(n, Injected { status: checked(http_status), retry_after: None, raw_body: None });
    }

    /// Like [`fail_next`](Self::fail_next), with a `Retry-After` header in whole seconds
    /// (rounded up, since the header has no fractions).
    pub fn fail_next_with_retry_after(&self, n: usize, http_status: u16, retry_after: Duration) {
        self.inject(
            n,
            Injected { status: checked(http_status), retry_after: Some(retry_after), raw_body: None },
        );
    }

    /// Like [`fail_next`](Self::fail_next), with an arbitrary body, e.g. the HTML page a proxy
    /// returns for a 502.
    pub fn fail_next_with_body(&self, n: usize, http_status: u16, content_type: &str, body: &str) {
        let raw = Some((content_type.to_owned(), body.to_owned()));
        self.inject(n, Injected { status: checked(http_status), retry_after: None, raw_body: raw });
    }

    /// The next `n` requests are answered only after `delay` (to exercise client timeouts).
    pub fn delay_next(&self, n: usize, delay: Duration) {
        self.shared.state.send_modify(|s| s.delays.extend(std::iter::repeat_n(delay, n)));
    }

    /// The next `n` requests are processed normally (a valid one is accepted and recorded, so
    /// the SMS "goes out"), but their answer is held back for `delay`: a client whose timeout is
    /// shorter, or that is killed meanwhile, never learns the message was sent.
    pub fn accept_then_delay_next(&self, n: usize, delay: Duration) {
        self.shared.state.send_modify(|s| s.post_accept_delays.extend(std::iter::repeat_n(delay, n)));
    }

    /// Status callbacks of messages to `to` report `delivery` (by default: `sent`, `delivered`).
    pub fn set_delivery(&self, to: &str, delivery: Delivery) {
        self.shared.state.send_modify(|s| {
            s.delivery.insert(to.to_owned(), delivery);
        });
    }

    /// Every status callback posted so far, oldest first.
    pub fn callbacks(&self) -> Vec<FakeCallback> {
        self.shared.state.borrow().callbacks.clone()
    }

    /// Waits until at least `n` status callbacks were posted (and answered or failed).
    pub async fn wait_for_callbacks(&self, n: usize, timeout: Duration) -> Result<Vec<FakeCallback>, Error> {
        self.wait(format!("{n} status callback(s)"), timeout, |s| {
            (s.callbacks.len() >= n).then(|| s.callbacks.clone())
        })
        .await
    }

    /// Posts an inbound message (the user texts `body` from `from` to the account's number
    /// `to`) to the application's webhook `url`, signed as `signing` says, like Twilio does;
    /// returns the application's answer (TwiML).
    pub async fn send_inbound(
        &self,
        url: &str,
        from: &str,
        to: &str,
        body: &str,
        signing: Signing<'_>,
    ) -> Result<InboundReply, reqwest::Error> {
        let params = vec![
            ("AccountSid".to_owned(), self.shared.account_sid.clone()),
            ("ApiVersion".to_owned(), "2010-04-01".to_owned()),
            ("Body".to_owned(), body.to_owned()),
            ("From".to_owned(), from.to_owned()),
            ("MessageSid".to_owned(), format!("SM{}", uuid::Uuid::new_v4().simple())),
            ("NumMedia".to_owned(), "0".to_owned()),
            ("NumSegments".to_owned(), "1".to_owned()),
            ("SmsStatus".to_owned(), "received".to_owned()),
            ("To".to_owned(), to.to_owned()),
        ];
        webhooks::post(&reqwest::Client::new(), url, &params, &self.shared.auth_token, signing).await
    }

    /// Turns trial-account behaviour on (`Some`: only these `To` numbers) or off (`None`).
    pub fn set_trial_allow_list(&self, numbers: Option<Vec<String>>) {
        self.shared.state.send_modify(|s| s.trial_allow_list = numbers);
    }

    /// Forgets messages, requests, pending failures and delays.
    pub fn clear(&self) {
        self.shared.state.send_modify(|s| {
            s.messages.clear();
            s.requests.clear();
            s.failures.clear();
            s.delays.clear();
            s.post_accept_delays.clear();
        });
    }

    /// Stops serving and waits for the server task; pending delayed answers are cut short.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn inject(&self, n: usize, failure: Injected) {
        self.shared.state.send_modify(|s| s.failures.extend(std::iter::repeat_n(failure, n)));
    }

    async fn wait<T>(
        &self,
        what: String,
        timeout: Duration,
        mut ready: impl FnMut(&State) -> Option<T>,
    ) -> Result<T, Error> {
        let mut rx = self.shared.state.subscribe();
        let mut found = None;
        let waited = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| {
                found = ready(s);
                found.is_some()
            }),
        )
        .await;
        match (waited, found) {
            (Ok(Ok(_)), Some(value)) => Ok(value),
            // The sender lives in `self`, so the channel cannot close while we wait; a timeout
            // is the only way here.
            _ => {
                let s = self.shared.state.borrow();
                let to: Vec<&str> = s.messages.iter().map(|m| m.to.as_str()).collect();
                let seen = format!("{} request(s) and {} message(s) to {:?}", s.requests.len(), to.len(), to);
                Err(Error::Timeout { what, timeout, seen })
            }
        }
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        // Graceful shutdown of the spawned server; it needs no runtime to be signalled.
        self.shared.shutdown.send_replace(true);
    }
}

fn checked(status: u16) -> u16 {
    assert!(axum::http::StatusCode::from_u16(status).is_ok(), "{status} is not an HTTP status code");
    status
}
