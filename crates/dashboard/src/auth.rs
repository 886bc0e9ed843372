//! Sign-in with the system key, sessions, and CSRF protection.
//!
//! A session is a signed cookie, `<expiry>.<nonce>.<mac>`: the MAC is HMAC-SHA256 under a key
//! derived from the system key, so any node that shares the key accepts it (a load balancer
//! needs no sticky sessions) and a restart keeps people signed in; changing the system key
//! ends every session. The cookie holds no key. Sign-out clears the cookie and revokes its
//! nonce on the node that handled it.
//!
//! Every form of a session carries a CSRF token, HMAC(key, nonce), checked in constant time
//! with every action; in addition, unsafe requests whose `Origin` or `Sec-Fetch-Site` says
//! they come from another site are refused. The sign-in form is protected by a double-submit
//! cookie. Keys are compared in constant time, and failed sign-ins are throttled.

use crate::pages::{self, Flash};
use crate::{Dashboard, SecureCookies};
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use serde::Deserialize;
use sha2::Sha256;
use std::collections::HashMap;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "durable_session";
/// Name of the sign-in form's double-submit cookie.
const SIGN_IN_COOKIE: &str = "durable_sign_in";
/// Failed sign-ins accepted per minute (per process) before further attempts get 429.
const FAILURES_PER_MINUTE: u32 = 20;
/// Revoked sessions remembered at most (the oldest are forgotten first; they expire anyway).
const MAX_REVOKED: usize = 10_000;

type HmacSha256 = Hmac<Sha256>;

/// A signed-in browser (or, without authentication, any browser).
#[derive(Clone, Debug)]
pub(crate) struct Session {
    nonce: String,
    /// The token forms must echo.
    pub csrf: String,
    /// False when the server runs without authentication (no sign-out then).
    pub signed_in: bool,
}

impl Session {
    /// Checks a submitted CSRF token in constant time.
    pub(crate) fn check_csrf(&self, submitted: &str) -> Result<(), Response> {
        if bool::from(self.csrf.as_bytes().ct_eq(submitted.as_bytes())) {
            Ok(())
        } else {
            Err(pages::error_response(
                StatusCode::FORBIDDEN,
                "This form has expired (its security token does not match your session). Reload the page and try again.",
            ))
        }
    }
}

/// Issues and checks sessions.
pub(crate) struct Sessions {
    /// Session MAC keys derived from each system key; the first signs. Without system keys, a
    /// random key of this process (authentication is off; sessions only carry CSRF tokens).
    macs: Vec<[u8; 32]>,
    /// Raw system keys, for sign-in.
    keys: Vec<Vec<u8>>,
    ttl: Duration,
    revoked: Mutex<HashMap<String, i64>>,
    failures: Mutex<(i64, u32)>,
}

impl Sessions {
    pub(crate) fn new(system_keys: &[String], ttl: Duration) -> Self {
        let macs = if system_keys.is_empty() {
            let mut random = [0u8; 32];
            getrandom::fill(&mut random).expect("the OS random number generator works");
            vec![random]
        } else {
            system_keys.iter().map(|k| derive(k.as_bytes(), b"durable-dashboard-session-v1")).collect()
        };
        Sessions {
            macs,
            keys: system_keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            ttl,
            revoked: Mutex::new(HashMap::new()),
            failures: Mutex::new((0, 0)),
        }
    }

    pub(crate) fn auth_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// A new session: its cookie value and the session.
    fn issue(&self) -> (String, Session) {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).expect("the OS random number generator works");
        let nonce = hex(&nonce);
        let expires = now() + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let body = format!("{expires}.{nonce}");
        let token = format!("{body}.{}", hex(&mac(&self.macs[0], body.as_bytes())));
        let session = self.session(nonce);
        (token, session)
    }

    fn session(&self, nonce: String) -> Session {
        let csrf = hex(&mac(&self.macs[0], format!("csrf.{nonce}").as_bytes()));
        Session { nonce, csrf, signed_in: self.auth_enabled() }
    }

    /// The session of a cookie value, if it is ours, unexpired and not revoked.
    fn verify(&self, token: &str) -> Option<Session> {
        let mut parts = token.splitn(3, '.');
        let (expires, nonce, presented) = (parts.next()?, parts.next()?, parts.next()?);
        let expires: i64 = expires.parse().ok()?;
        let presented = unhex(presented)?;
        let body = format!("{expires}.{nonce}");
        // Every key is tried, whatever matched, so timing tells nothing.
        let mut valid = subtle::Choice::from(0);
        for key in &self.macs {
            valid |= mac(key, body.as_bytes()).as_slice().ct_eq(&presented);
        }
        if !bool::from(valid) || expires <= now() || self.revoked.lock().contains_key(nonce) {
            return None;
        }
        Some(self.session(nonce.to_owned()))
    }

    fn revoke(&self, session: &Session) {
        let mut revoked = self.revoked.lock();
        let now = now();
        revoked.retain(|_, expires| *expires > now);
        if revoked.len() >= MAX_REVOKED {
            // Forget the sessions that expire first.
            let mut by_expiry: Vec<(String, i64)> = revoked.drain().collect();
            by_expiry.sort_by_key(|(_, e)| std::cmp::Reverse(*e));
            by_expiry.truncate(MAX_REVOKED / 2);
            revoked.extend(by_expiry);
        }
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        revoked.insert(session.nonce.clone(), now + ttl);
    }

    /// Whether `presented` is one of the system keys (constant time, every key tried).
    fn key_matches(&self, presented: &[u8]) -> bool {
        let mut matched = subtle::Choice::from(0);
        for key in &self.keys {
            matched |= key.as_slice().ct_eq(presented);
        }
        matched.into()
    }

    /// Counts a failed sign-in; false when the limit for this minute is used up.
    fn allow_failure(&self) -> bool {
        let mut failures = self.failures.lock();
        let minute = now() / 60;
        if failures.0 != minute {
            *failures = (minute, 0);
        }
        failures.1 += 1;
        failures.1 <= FAILURES_PER_MINUTE
    }

    fn throttled(&self) -> bool {
        let failures = self.failures.lock();
        failures.0 == now() / 60 && failures.1 >= FAILURES_PER_MINUTE
    }
}

fn derive(key: &[u8], label: &[u8]) -> [u8; 32] {
    mac(key, label)
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().into()
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// The value of cookie `name` in the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request came over https, as far as we may trust.
fn is_https(dashboard: &Dashboard, headers: &HeaderMap) -> bool {
    match dashboard.options.secure_cookies {
        SecureCookies::Always => true,
        SecureCookies::Auto => {
            dashboard.options.trust_forwarded_headers
                && headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|p| p.split(',').next().unwrap_or("").trim().eq_ignore_ascii_case("https"))
        }
    }
}

fn set_cookie(
    dashboard: &Dashboard,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: u64,
) -> HeaderValue {
    let secure = if is_https(dashboard, headers) { "; Secure" } else { "" };
    let cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&cookie).expect("cookie values are hex and digits")
}

/// Refuses unsafe requests that a browser says come from another site.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            let origin = origin.to_str().unwrap_or("");
            let host = host.to_str().unwrap_or("-");
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        }
        (Some(_), None) => false,
    }
}

/// Runs before every page and action: finds the session (or sends the browser to sign in) and
/// refuses cross-site unsafe requests.
pub(crate) async fn require_session(
    State(dashboard): State<Dashboard>,
    mut req: Request,
    next: Next,
) -> Response {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD);
    if unsafe_method && !same_origin(req.headers()) {
        return pages::error_response(StatusCode::FORBIDDEN, "Cross-site requests are not accepted.");
    }
    let sessions = &dashboard.sessions;
    if let Some(session) = cookie(req.headers(), SESSION_COOKIE).and_then(|t| sessions.verify(t)) {
        req.extensions_mut().insert(session);
        return next.run(req).await;
    }
    if !sessions.auth_enabled() {
        // No authentication: everyone gets a session, only to carry CSRF tokens.
        let (token, session) = sessions.issue();
        let cookie = set_cookie(
            &dashboard,
            req.headers(),
            SESSION_COOKIE,
            &token,
            dashboard.options.session_ttl.as_secs(),
        );
        req.extensions_mut().insert(session);
        let mut response = next.run(req).await;
        response.headers_mut().append(header::SET_COOKIE, cookie);
        return response;
    }
    let is_page = req.method() == Method::GET && !req.uri().path().starts_with("/live/");
    if is_page {
        let next_path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let target = format!("/sign-in?next={}", pages::encode_query(next_path));
        return Redirect::to(&target).into_response();
    }
    pages::error_response(StatusCode::UNAUTHORIZED, "Your session has ended. Sign in again.")
}

#[derive(Deserialize)]
pub(crate) struct SignInQuery {
    next: Option<String>,
}

/// Only local paths: a crafted `next` must not send a signed-in user elsewhere.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// `GET /sign-in`.
pub(crate) async fn sign_in_page(
    State(dashboard): State<Dashboard>,
    headers: HeaderMap,
    Query(query): Query<SignInQuery>,
) -> Response {
    if !dashboard.sessions.auth_enabled() {
        return Redirect::to("/").into_response();
    }
    sign_in_form(&dashboard, &headers, query.next.as_deref(), None, StatusCode::OK)
}

fn sign_in_form(
    dashboard: &Dashboard,
    headers: &HeaderMap,
    next: Option<&str>,
    flash: Option<Flash>,
    status: StatusCode,
) -> Response {
    let mut token = [0u8; 16];
    getrandom::fill(&mut token).expect("the OS random number generator works");
    let token = hex(&token);
    let mut response = (status, pages::sign_in(&token, &local_path(next), flash)).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(dashboard, headers, SIGN_IN_COOKIE, &token, 3600));
    response
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    key: String,
    token: String,
    next: Option<String>,
}

/// `POST /sign-in`.
pub(crate) async fn sign_in(
    State(dashboard): State<Dashboard>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let sessions = &dashboard.sessions;
    if !sessions.auth_enabled() {
        return Redirect::to("/").into_response();
    }
    let double_submit = cookie(&headers, SIGN_IN_COOKIE)
        .is_some_and(|c| !c.is_empty() && bool::from(c.as_bytes().ct_eq(form.token.as_bytes())));
    if !same_origin(&headers) || !double_submit {
        let flash = Flash::error("The sign-in form expired. Please try again.");
        return sign_in_form(&dashboard, &headers, form.next.as_deref(), Some(flash), StatusCode::FORBIDDEN);
    }
    if sessions.throttled() {
        let flash = Flash::error("Too many failed sign-ins. Wait a minute, then try again.");
        let mut response = sign_in_form(
            &dashboard,
            &headers,
            form.next.as_deref(),
            Some(flash),
            StatusCode::TOO_MANY_REQUESTS,
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return response;
    }
    if !sessions.key_matches(form.key.trim().as_bytes()) {
        sessions.allow_failure();
        tracing::warn!("dashboard sign-in with a wrong key");
        let flash = Flash::error(
            "That key is not valid. Use the system key: `durable key` prints it (or DURABLE_SYSTEM_KEY).",
        );
        return sign_in_form(
            &dashboard,
            &headers,
            form.next.as_deref(),
            Some(flash),
            StatusCode::UNAUTHORIZED,
        );
    }
    let (token, _) = sessions.issue();
    let mut response = Redirect::to(&local_path(form.next.as_deref())).into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&dashboard, &headers, SESSION_COOKIE, &token, dashboard.options.session_ttl.as_secs()),
    );
    h.append(header::SET_COOKIE, set_cookie(&dashboard, &headers, SIGN_IN_COOKIE, "", 0));
    response
}

#[derive(Deserialize)]
pub(crate) struct SignOutForm {
    csrf: String,
}

/// `POST /sign-out`.
pub(crate) async fn sign_out(
    State(dashboard): State<Dashboard>,
    axum::Extension(session): axum::Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused;
    }
    dashboard.sessions.revoke(&session);
    let mut response = Redirect::to("/sign-in").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(&dashboard, &headers, SESSION_COOKIE, "", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_verify_only_their_own_unexpired_unrevoked_tokens() {
        let sessions = Sessions::new(&["key-one".into(), "key-two".into()], Duration::from_secs(60));
        let (token, session) = sessions.issue();
        let verified = sessions.verify(&token).expect("a fresh token is valid");
        assert_eq!(verified.csrf, session.csrf);
        assert!(!token.contains("key-one"));
        // Tampering with any part breaks it.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[0] = (parts[0].parse::<i64>().unwrap() + 1000).to_string();
        assert!(sessions.verify(&parts.join(".")).is_none(), "a longer expiry is not ours");
        assert!(sessions.verify(&token.replace('.', "")).is_none());
        assert!(sessions.verify("").is_none());
        // Another key set (a changed system key) rejects it; a rotated-in second key accepts it.
        assert!(Sessions::new(&["other".into()], Duration::from_secs(60)).verify(&token).is_none());
        let rotated = Sessions::new(&["new-key".into(), "key-one".into()], Duration::from_secs(60));
        assert!(rotated.verify(&token).is_some());
        // Expired and revoked tokens are refused.
        let expired = Sessions::new(&["key-one".into()], Duration::ZERO);
        let (old, _) = expired.issue();
        assert!(expired.verify(&old).is_none());
        sessions.revoke(&verified);
        assert!(sessions.verify(&token).is_none());
    }

    #[test]
    fn keys_and_csrf_tokens_compare_exactly() {
        let sessions = Sessions::new(&["alpha".into(), "beta-key".into()], Duration::from_secs(60));
        assert!(sessions.key_matches(b"alpha") && sessions.key_matches(b"beta-key"));
        assert!(
            !sessions.key_matches(b"alph") && !sessions.key_matches(b"") && !sessions.key_matches(b"alphaa")
        );
        let (_, session) = sessions.issue();
        assert!(session.check_csrf(&session.csrf.clone()).is_ok());
        assert!(session.check_csrf("").is_err());
        assert!(session.check_csrf(&session.csrf[1..]).is_err());
    }

    #[test]
    fn failed_sign_ins_are_throttled() {
        let sessions = Sessions::new(&["k".into()], Duration::from_secs(60));
        for _ in 0..FAILURES_PER_MINUTE {
            assert!(sessions.allow_failure());
        }
        assert!(sessions.throttled());
    }

    #[test]
    fn next_paths_stay_local_and_cross_site_posts_are_refused() {
        assert_eq!(local_path(Some("/instances/a?b=c")), "/instances/a?b=c");
        for bad in ["//evil.example/", "https://evil.example/", "/\\evil", "evil", "/a\nb"] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7071"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:7071"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&h));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; durable_session_x=2; durable_session=3"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("3"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
