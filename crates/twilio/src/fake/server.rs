//! The fake's HTTP side: routes, Twilio's validation rules and its JSON documents.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{FakeMessage, FakeRequest, Injected, Shared};

type AppState = Arc<Shared>;

/// Twilio's documented limit for `Body`.
const MAX_BODY_CHARS: usize = 1600;

pub(super) fn router(shared: AppState) -> Router {
    Router::new()
        .route("/2010-04-01/Accounts/{account_sid}/Messages.json", post(create_message))
        .route("/_fake/messages", get(list_messages).delete(clear_messages))
        .fallback(not_found)
        .with_state(shared)
}

/// `GET /_fake/messages[?to=…]`: accepted messages as a JSON array, for black-box tests.
async fn list_messages(
    AxumState(shared): AxumState<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let state = shared.state.borrow();
    let messages: Vec<&FakeMessage> =
        state.messages.iter().filter(|m| query.get("to").is_none_or(|to| &m.to == to)).collect();
    axum::Json(messages).into_response()
}

/// `DELETE /_fake/messages`: forget accepted messages.
async fn clear_messages(AxumState(shared): AxumState<AppState>) -> StatusCode {
    shared.state.send_modify(|s| s.messages.clear());
    StatusCode::NO_CONTENT
}

async fn not_found(uri: Uri) -> Response {
    let message = format!("The requested resource {} was not found", uri.path());
    twilio_error(StatusCode::NOT_FOUND, 20404, &message)
}

async fn create_message(
    AxumState(shared): AxumState<AppState>,
    Path(account_sid): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let auth = basic_auth(&headers);

    // Record on arrival, so a request whose answer is delayed (or never read) is still visible.
    let mut index = 0;
    let mut delay = None;
    let mut injected = None;
    shared.state.send_modify(|s| {
        index = s.requests.len();
        s.requests.push(FakeRequest {
            received_at: Instant::now(),
            path: uri.path().to_owned(),
            auth_user: auth.as_ref().map(|(user, _)| user.clone()),
            params: params.clone(),
            response_status: None,
            response_code: None,
        });
        delay = s.delays.pop_front();
        injected = s.failures.pop_front();
    });

    if let Some(delay) = delay {
        let mut stop = shared.shutdown.subscribe();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|stopped| *stopped) => {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        }
    }

    let (response, code) = match injected {
        Some(failure) => {
            let code = failure.raw_body.is_none().then(|| injected_code(failure.status));
            (injected_response(&failure), code)
        }
        None => handle(&shared, &account_sid, auth, &params),
    };
    let mut post_delay = None;
    shared.state.send_if_modified(|s| {
        post_delay = s.post_accept_delays.pop_front();
        post_delay.is_some()
    });
    if let Some(delay) = post_delay {
        let mut stop = shared.shutdown.subscribe();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|stopped| *stopped) => {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        }
    }
    let status = response.status().as_u16();
    shared.state.send_modify(|s| {
        if let Some(r) = s.requests.get_mut(index) {
            r.response_status = Some(status);
            r.response_code = code;
        }
    });
    response
}

/// Normal processing: auth, account, form rules, magic numbers; stores the message on success.
fn handle(
    shared: &Arc<Shared>,
    account_sid: &str,
    auth: Option<(String, String)>,
    params: &[(String, String)],
) -> (Response, Option<u32>) {
    let authorized = auth.is_some_and(|(user, pass)| user == shared.account_sid && pass == shared.auth_token);
    if !authorized {
        let body = json!({
            "code": 20003,
            "detail": "Your AccountSid or AuthToken was incorrect.",
            "message": "Authenticate",
            "more_info": more_info(20003),
            "status": 401,
        });
        let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Twilio API\""));
        return (response, Some(20003));
    }
    if account_sid != shared.account_sid {
        let path = format!("/2010-04-01/Accounts/{account_sid}/Messages.json");
        let message = format!("The requested resource {path} was not found");
        return (twilio_error(StatusCode::NOT_FOUND, 20404, &message), Some(20404));
    }

    let state = shared.state.borrow();
    let rejected = validate(params, state.trial_allow_list.as_deref(), state.allowed_from.as_deref());
    drop(state);
    if let Err((code, message)) = rejected {
        return (twilio_error(StatusCode::BAD_REQUEST, code, &message), Some(code));
    }

    let message = accept(account_sid, params);
    let document = message_document(&message, params);
    let mut response = (StatusCode::CREATED, axum::Json(document)).into_response();
    let request_id = format!("RQ{}", uuid::Uuid::new_v4().simple());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("twilio-request-id", value);
    }
    super::webhooks::schedule_callbacks(shared.clone(), &message);
    shared.state.send_modify(|s| s.messages.push(message));
    (response, None)
}

/// Twilio's parameter checks, in the order this fake applies them. Returns (code, message).
fn validate(
    params: &[(String, String)],
    trial_allow_list: Option<&[String]>,
    allowed_from: Option<&[String]>,
) -> Result<(), (u32, String)> {
    let to = param(params, "To");
    let from = param(params, "From");
    let service = param(params, "MessagingServiceSid");
    let body = param(params, "Body");
    let has_content =
        body.is_some() || param(params, "MediaUrl").is_some() || param(params, "ContentSid").is_some();

    let Some(to) = to else {
        return Err((21604, "A 'To' phone number is required.".to_owned()));
    };
    if from.is_none() && service.is_none() {
        return Err((21603, "A 'From' phone number is required.".to_owned()));
    }
    if !has_content {
        return Err((21602, "Message body is required.".to_owned()));
    }
    if body.is_some_and(|b| b.chars().count() > MAX_BODY_CHARS) {
        return Err((21617, "The concatenated message body exceeds the 1600 character limit.".to_owned()));
    }
    if !is_e164(strip_channel(to)) {
        return Err((21211, format!("The 'To' number {to} is not a valid phone number.")));
    }
    if let Some(from) = from {
        match strip_channel(from) {
            "+15005550001" => {
                return Err((
                    21212,
                    format!(
                        "The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."
                    ),
                ));
            }
            "+15005550007" => return Err(not_capable_from()),
            "+15005550008" => {
                return Err((
                    21611,
                    "This 'From' number has exceeded the maximum number of queued messages.".to_owned(),
                ));
            }
            _ if allowed_from.is_some_and(|list| !list.iter().any(|f| f == from)) => {
                return Err(not_capable_from());
            }
            _ => {}
        }
    }
    match strip_channel(to) {
        "+15005550001" => return Err((21211, format!("The 'To' number {to} is not a valid phone number."))),
        "+15005550002" => {
            let from = from.unwrap_or_default();
            return Err((
                21612,
                format!(
                    "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {from} via SMS."
                ),
            ));
        }
        "+15005550003" => {
            return Err((
                21408,
                format!(
                    "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."
                ),
            ));
        }
        "+15005550004" => return Err((21610, "Attempt to send to unsubscribed recipient".to_owned())),
        "+15005550009" => return Err((21614, format!("'To' number {to} is not a valid mobile number"))),
        _ => {}
    }
    if trial_allow_list.is_some_and(|list| !list.iter().any(|n| n == to)) {
        return Err((
            21608,
            format!(
                "The number {to} is unverified. Trial accounts cannot send messages to unverified numbers; \
                 verify {to} at twilio.com/user/account/phone-numbers/verified, or purchase a Twilio number \
                 to send messages to unverified numbers."
            ),
        ));
    }
    Ok(())
}

fn not_capable_from() -> (u32, String) {
    (
        21606,
        "The 'From' phone number provided is not a valid, message-capable Twilio phone number.".to_owned(),
    )
}

fn accept(account_sid: &str, params: &[(String, String)]) -> FakeMessage {
    let service = param(params, "MessagingServiceSid").map(str::to_owned);
    let from = param(params, "From").unwrap_or_default().to_owned();
    // Twilio answers `accepted` when a Messaging Service still has to pick the sender.
    let status = if from.is_empty() && service.is_some() { "accepted" } else { "queued" };
    FakeMessage {
        sid: format!("SM{}", uuid::Uuid::new_v4().simple()),
        account_sid: account_sid.to_owned(),
        to: param(params, "To").unwrap_or_default().to_owned(),
        from,
        body: param(params, "Body").unwrap_or_default().to_owned(),
        messaging_service_sid: service,
        status: status.to_owned(),
        date_created: rfc2822_now(),
        params: params.to_vec(),
    }
}

/// The `201` body: every field of Twilio's Message resource, snake_case, counts as strings.
fn message_document(m: &FakeMessage, params: &[(String, String)]) -> Value {
    let num_media = params.iter().filter(|(k, _)| k == "MediaUrl").count();
    let num_segments = if m.status == "accepted" { 0 } else { segments(&m.body) };
    let uri = format!("/2010-04-01/Accounts/{}/Messages/{}", m.account_sid, m.sid);
    json!({
        "account_sid": m.account_sid,
        "api_version": "2010-04-01",
        "body": m.body,
        "date_created": m.date_created,
        "date_sent": null,
        "date_updated": m.date_created,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": if m.from.is_empty() { Value::Null } else { Value::from(m.from.as_str()) },
        "messaging_service_sid": m.messaging_service_sid,
        "num_media": num_media.to_string(),
        "num_segments": num_segments.to_string(),
        "price": null,
        "price_unit": null,
        "sid": m.sid,
        "status": m.status,
        "subresource_uris": { "media": format!("{uri}/Media.json") },
        "to": m.to,
        "uri": format!("{uri}.json"),
    })
}

/// SMS segment count: 160 characters in one GSM-7 segment or 153 per part when concatenated;
/// 70 / 67 for UCS-2. Treating "ASCII only" as GSM-7 is close enough for a fake.
fn segments(body: &str) -> usize {
    let n = body.chars().count();
    let (single, multi) = if body.is_ascii() { (160, 153) } else { (70, 67) };
    if n <= single { 1 } else { n.div_ceil(multi) }
}

fn injected_response(failure: &Injected) -> Response {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match &failure.raw_body {
        Some((content_type, body)) => {
            let mut r = (status, body.clone()).into_response();
            if let Ok(v) = HeaderValue::from_str(content_type) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r
        }
        None => {
            let message = status.canonical_reason().unwrap_or("Error");
            twilio_error(status, injected_code(failure.status), message)
        }
    };
    if let Some(retry_after) = failure.retry_after {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Twilio's generic codes mirror the status (20429 Too Many Requests, 20500, 20503).
fn injected_code(status: u16) -> u32 {
    20_000 + u32::from(status)
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": more_info(code),
        "status": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

fn more_info(code: u32) -> String {
    format!("https://www.twilio.com/docs/errors/{code}")
}

/// The first value of a form field; Twilio treats an empty value like a missing one.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// `whatsapp:+1…` and similar channel addresses carry an E.164 number after the prefix.
fn strip_channel(address: &str) -> &str {
    match address.split_once(':') {
        Some((channel, number)) if channel.bytes().all(|b| b.is_ascii_alphabetic()) => number,
        _ => address,
    }
}

/// E.164: `+`, a non-zero country-code digit, 7 to 15 digits in all. Real Twilio also accepts
/// some national formats and rewrites them; the fake is strict so tests catch unnormalised input.
fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else { return false };
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

fn rfc2822_now() -> String {
    // Twilio's own format: two-digit day and a numeric `+0000` zone.
    jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn e164_and_segments() {
        assert!(is_e164("+14155551234"));
        assert!(!is_e164("14155551234"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+1555"));
        assert!(!is_e164("+1415555123a"));
        assert_eq!(segments("hi"), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"é".repeat(71)), 2);
    }

    #[test]
    fn validation_codes() {
        let ok = [("To", "+14155551234"), ("From", "+15005550006"), ("Body", "hi")];
        assert_eq!(validate(&form(&ok), None, None), Ok(()));
        let code = |pairs: &[(&str, &str)]| validate(&form(pairs), None, None).unwrap_err().0;
        assert_eq!(code(&[("From", "+15005550006"), ("Body", "hi")]), 21604);
        assert_eq!(code(&[("To", "+14155551234"), ("Body", "hi")]), 21603);
        assert_eq!(code(&[("To", "+14155551234"), ("From", "+15005550006")]), 21602);
        assert_eq!(code(&[("To", "+14155551234"), ("From", "+15005550006"), ("Body", "")]), 21602);
        let long = "x".repeat(1601);
        assert_eq!(code(&[("To", "+14155551234"), ("From", "+15005550006"), ("Body", &long)]), 21617);
        assert_eq!(code(&[("To", "+14155551234"), ("From", "+15005550001"), ("Body", "x")]), 21212);
        assert_eq!(code(&[("To", "+14155551234"), ("From", "+15005550007"), ("Body", "x")]), 21606);
        assert_eq!(code(&[("To", "+14155551234"), ("From", "+15005550008"), ("Body", "x")]), 21611);
        for (to, want) in [
            ("+15005550001", 21211),
            ("+15005550002", 21612),
            ("+15005550003", 21408),
            ("+15005550004", 21610),
            ("+15005550009", 21614),
            ("555-1234", 21211),
        ] {
            assert_eq!(code(&[("To", to), ("From", "+15005550006"), ("Body", "x")]), want, "{to}");
        }
        let via_service = [("To", "+14155551234"), ("MessagingServiceSid", "MG1"), ("Body", "hi")];
        assert_eq!(validate(&form(&via_service), None, None), Ok(()));
    }

    #[test]
    fn trial_and_sender_lists() {
        let p = form(&[("To", "+14155551234"), ("From", "+15005550006"), ("Body", "hi")]);
        let allow = vec!["+14155550000".to_owned()];
        assert_eq!(validate(&p, Some(&allow), None).unwrap_err().0, 21608);
        assert_eq!(validate(&p, None, Some(&allow)).unwrap_err().0, 21606);
        let allow = vec!["+14155551234".to_owned()];
        assert_eq!(validate(&p, Some(&allow), None), Ok(()));
    }

    #[test]
    fn dates_look_like_twilio() {
        let s = rfc2822_now();
        assert!(s.ends_with(" +0000"), "{s}");
        jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(&s).unwrap();
    }

    #[test]
    fn retry_after_rounds_up() {
        let r = injected_response(&Injected {
            status: 429,
            retry_after: Some(Duration::from_millis(1500)),
            raw_body: None,
        });
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
