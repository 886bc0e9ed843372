//! The SMS side of the verification against a misbehaving Twilio (the fault matrix of issue
//! 10), Twilio's delivery status callbacks and replies by SMS, end to end through the real
//! binary and the fake Twilio.

mod common;
mod security;

use common::*;
use durable_twilio::fake::{Delivery, FakeTwilio, FakeTwilioOptions, Signing, TEST_AUTH_TOKEN, TEST_FROM};
use security::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn with_twilio(twilio: &FakeTwilio) -> Options {
    Options { twilio: Some(twilio.base_url()), ..Default::default() }
}

/// Starts a verification of `to` and returns its 202 body.
async fn begin(durable: &Durable, to: &str) -> Value {
    durable.start_verification(&format!("\"{to}\"")).await
}

async fn expect_outcome(durable: &Durable, start: &Value, status: &str, output: Option<bool>) -> Value {
    let done = durable.finished(start).await;
    assert_eq!(done["runtimeStatus"], status, "{done}");
    if let Some(output) = output {
        assert_eq!(done["output"], output, "{done}");
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_until_twilio_recovers() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable = start(&dir.path().join("data"), &with_twilio(&twilio));
    twilio.fail_next(3, 500);
    let to = phone(1);
    let start = begin(&durable, &to).await;
    let code = sms_code(&twilio, &to).await;
    assert_eq!(twilio.requests().len(), 4, "three 500s, then the SMS");
    assert_eq!(twilio.messages().len(), 1);
    assert_eq!(durable.answer(&start, &format!("\"{code}\"")).await, 202);
    expect_outcome(&durable, &start, "Completed", Some(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_honoured_with_its_retry_after() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable = start(&dir.path().join("data"), &with_twilio(&twilio));
    twilio.fail_next_with_retry_after(1, 429, Duration::from_secs(2));
    let to = phone(2);
    let start = begin(&durable, &to).await;
    let code = sms_code(&twilio, &to).await;
    let requests = twilio.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].received_at.duration_since(requests[0].received_at);
    assert!(waited >= Duration::from_millis(1950), "retried after {waited:?}, before Retry-After");
    assert_eq!(durable.answer(&start, &format!("\"{code}\"")).await, 202);
    expect_outcome(&durable, &start, "Completed", Some(true)).await;
}

/// Twilio takes the message but its answer never comes in time: the activity tries again, and
/// every duplicate SMS carries the same code, so the user is never confused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_resend_the_same_code() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = with_twilio(&twilio);
    options.args = config(dir.path(), "t.toml", "[twilio]\nrequest_timeout = \"1s\"\n");
    let durable = start(&dir.path().join("data"), &options);
    twilio.accept_then_delay_next(2, Duration::from_secs(5));
    let to = phone(3);
    let start = begin(&durable, &to).await;
    let sent = twilio.wait_for_messages(3, DEADLINE).await.unwrap();
    let first = code_of(&sent[0].body);
    assert!(sent.iter().all(|m| m.to == to && code_of(&m.body) == first), "every re-send has the same code");
    assert_eq!(durable.answer(&start, &format!("\"{first}\"")).await, 202);
    expect_outcome(&durable, &start, "Completed", Some(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_until_twilio_is_back() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let options = Options { twilio: Some(format!("http://127.0.0.1:{port}")), ..Default::default() };
    let durable = start(&dir.path().join("data"), &options);
    let to = phone(4);
    let start = begin(&durable, &to).await;
    // Twilio is unreachable: wait until the activity has tried and is retrying.
    until_some(|| async { durable.log().contains("verification SMS not sent yet; retrying").then_some(()) })
        .await;
    let twilio =
        FakeTwilio::start_on(([127, 0, 0, 1], port).into(), FakeTwilioOptions::default()).await.unwrap();
    let code = sms_code(&twilio, &to).await;
    assert_eq!(durable.answer(&start, &format!("\"{code}\"")).await, 202);
    expect_outcome(&durable, &start, "Completed", Some(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_end_the_verification_at_once() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable = start(&dir.path().join("data"), &with_twilio(&twilio));
    for (to, code, text) in
        [("+15005550001", "21211", "is not a valid phone number"), ("+15005550004", "21610", "unsubscribed")]
    {
        let before = twilio.requests().len();
        let start = begin(&durable, to).await;
        let done = expect_outcome(&durable, &start, "Failed", None).await;
        let message = done["output"].as_str().unwrap();
        assert!(message.contains(code), "{message}");
        assert!(message.to_lowercase().contains(text), "{message}");
        assert_eq!(twilio.requests().len(), before + 1, "a permanent error is not retried");
    }
    assert!(twilio.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_window_fails_the_verification() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = with_twilio(&twilio);
    options.args = vec!["--verification-window".into(), "3s".into()];
    let durable = start(&dir.path().join("data"), &options);
    twilio.fail_next(1000, 503);
    let start = begin(&durable, &phone(5)).await;
    let done = expect_outcome(&durable, &start, "Failed", None).await;
    let message = done["output"].as_str().unwrap();
    assert!(message.contains("within the verification window") && message.contains("503"), "{message}");
    assert!(twilio.requests().len() >= 2, "retried while the window lasted");
    assert!(twilio.messages().is_empty());
}

/// A server on a known port whose public URL is itself, so Twilio's callbacks and signatures
/// can name it.
fn public(dir: &std::path::Path, twilio: &FakeTwilio, name: &str) -> Durable {
    let port = free_port();
    let options = Options {
        twilio: Some(twilio.base_url()),
        port: Some(port),
        args: vec!["--public-url".into(), format!("http://127.0.0.1:{port}")],
        ..Default::default()
    };
    start(&dir.join(name), &options)
}

/// The custom status of `start` once `ready` accepts it.
async fn custom_status_when(durable: &Durable, start: &Value, ready: impl Fn(&Value) -> bool) -> Value {
    let (status, _) = until_some(|| async {
        let status = durable.status(start).await;
        ready(&status["customStatus"]).then(|| status["customStatus"].clone())
    })
    .await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_status_reaches_the_custom_status() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable = public(dir.path(), &twilio, "data");
    let (lost, fine) = (phone(10), phone(11));
    twilio.set_delivery(&lost, Delivery::Undelivered(30003));
    let start = begin(&durable, &lost).await;
    let sms = twilio.wait_for_message_to(&lost, DEADLINE).await.unwrap();
    let callback = sms.params.iter().find(|(k, _)| k == "StatusCallback").unwrap().1.clone();
    assert_eq!(
        callback,
        format!("{}/twilio/status?instance={}", durable.base, start["id"].as_str().unwrap())
    );
    let status = custom_status_when(&durable, &start, |s| s["sms"] == "undelivered").await;
    assert_eq!(status, serde_json::json!({"sms": "undelivered", "smsErrorCode": 30003, "attemptsLeft": 4}));
    assert!(twilio.callbacks().iter().all(|c| c.response_status == Some(204)), "{:?}", twilio.callbacks());

    let start = begin(&durable, &fine).await;
    let status = custom_status_when(&durable, &start, |s| s["sms"] == "delivered").await;
    assert_eq!(status, serde_json::json!({"sms": "delivered", "attemptsLeft": 4}));
    // The verification goes on as usual.
    let code = sms_code(&twilio, &fine).await;
    assert_eq!(durable.answer(&start, &format!("\"{code}\"")).await, 202);
    expect_outcome(&durable, &start, "Completed", Some(true)).await;
}

/// POSTs a status callback for `instance` signed with `token` (or unsigned).
async fn status_callback(durable: &Durable, instance: &str, token: Option<&str>) -> u16 {
    let url = format!("{}/twilio/status?instance={instance}", durable.base);
    let params = vec![
        ("AccountSid".to_owned(), durable_twilio::fake::TEST_ACCOUNT_SID.to_owned()),
        ("MessageSid".to_owned(), "SM00000000000000000000000000000000".to_owned()),
        ("MessageStatus".to_owned(), "failed".to_owned()),
        ("ErrorCode".to_owned(), "30008".to_owned()),
    ];
    let mut request = durable.http.post(&url).form(&params);
    if let Some(token) = token {
        request =
            request.header("X-Twilio-Signature", durable_twilio::webhook::signature(token, &url, &params));
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_refuse_unsigned_and_wrongly_signed_requests() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable = public(dir.path(), &twilio, "data");
    let to = phone(20);
    let start = begin(&durable, &to).await;
    let id = start["id"].as_str().unwrap();
    custom_status_when(&durable, &start, |s| s["sms"] == "delivered").await;

    // The same 403 whether the verification exists or not: nothing is revealed.
    for instance in [id, "no-such-instance"] {
        assert_eq!(status_callback(&durable, instance, None).await, 403);
        assert_eq!(status_callback(&durable, instance, Some("not-the-auth-token")).await, 403);
    }
    let sms_url = format!("{}/twilio/sms", durable.base);
    for signing in [Signing::Missing, Signing::WithToken("not-the-auth-token")] {
        let reply = twilio.send_inbound(&sms_url, &to, TEST_FROM, "1234", signing).await.unwrap();
        assert_eq!(reply.status, 403, "{reply:?}");
        assert!(!reply.body.contains("Response"), "{reply:?}");
    }
    let status = durable.status(&start).await;
    assert_eq!(status["customStatus"]["attemptsLeft"], 4, "a refused reply uses no attempt");
    assert_eq!(status["customStatus"]["sms"], "delivered", "a refused callback changes nothing");
    // Signed: accepted (a report for an unknown verification is simply dropped).
    assert_eq!(status_callback(&durable, "no-such-instance", Some(TEST_AUTH_TOKEN)).await, 204);
    assert_eq!(status_callback(&durable, id, Some(TEST_AUTH_TOKEN)).await, 204);
    custom_status_when(&durable, &start, |s| s["sms"] == "failed" && s["smsErrorCode"] == 30008).await;
    assert!(durable.log().contains("refused a Twilio webhook without a valid signature"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_by_sms_answer_the_waiting_verification() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable = public(dir.path(), &twilio, "data");
    let url = format!("{}/twilio/sms", durable.base);
    let reply = |from: String, body: String| {
        let (twilio, url) = (&twilio, url.clone());
        async move {
            let r = twilio.send_inbound(&url, &from, TEST_FROM, &body, Signing::Valid).await.unwrap();
            assert_eq!(r.status, 200, "{r:?}");
            r.body
        }
    };
    let message = |text: &str| format!("<Response><Message>{text}</Message></Response>");

    // Wrong, malformed, then right: same attempt counting as answers through the API.
    let me = phone(30);
    let start = begin(&durable, &me).await;
    let code = sms_code(&twilio, &me).await;
    let t0 = Instant::now();
    assert!(
        reply(me.clone(), wrong(&code, 0).trim_matches('"').to_owned())
            .await
            .contains(&message("Wrong code, 3 tries left."))
    );
    assert!(
        reply(me.clone(), "my code?".into())
            .await
            .contains(&message("Please reply with the 4-digit code only."))
    );
    assert_eq!(durable.answer(&start, &wrong(&code, 1)).await, 202, "an answer through the API in between");
    assert!(
        reply(me.clone(), wrong(&code, 2).trim_matches('"').to_owned())
            .await
            .contains(&message("Wrong code, 1 tries left."))
    );
    assert!(reply(me.clone(), format!("Code: {code}")).await.contains(&message("Verified.")));
    eprintln!("4 SMS replies answered in {:?}", t0.elapsed());
    expect_outcome(&durable, &start, "Completed", Some(true)).await;
    // Nobody waits any more: an empty TwiML answer (no reply SMS).
    assert!(reply(me.clone(), code.clone()).await.ends_with("<Response/>"));
    assert!(reply(phone(31), "1234".into()).await.ends_with("<Response/>"), "a number without verification");

    // Four wrong answers by SMS end the verification `false`.
    let other = phone(32);
    let start = begin(&durable, &other).await;
    let code = sms_code(&twilio, &other).await;
    for (n, left) in [(0, 3), (1, 2), (2, 1), (3, 0)] {
        let text = reply(other.clone(), wrong(&code, n).trim_matches('"').to_owned()).await;
        assert!(text.contains(&message(&format!("Wrong code, {left} tries left."))), "{text}");
    }
    expect_outcome(&durable, &start, "Completed", Some(false)).await;
    assert!(!durable.log().contains(&code), "the code appears in the log");
}

/// A verification started by a version that kept the number's SMS budget (and the reference
/// replies use) under `sms-number/…` is still answered by an SMS reply after the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_reply_finds_a_verification_recorded_under_the_old_key() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let me = phone(40);
    let durable = public(dir.path(), &twilio, "data");
    let start = begin(&durable, &me).await;
    let code = sms_code(&twilio, &me).await;
    let old_base = durable.base.clone();
    drop(durable);
    // What the older version wrote: the same row under the old key.
    let db = rusqlite::Connection::open(dir.path().join("data").join("durable.db")).unwrap();
    let moved = db
        .execute(
            "UPDATE limits SET key = 'sms-number/' || substr(key, 16, 32) WHERE key LIKE 'answers-number/%/sms'",
            [],
        )
        .unwrap();
    assert_eq!(moved, 1);
    drop(db);

    let durable = public(dir.path(), &twilio, "data");
    let url = format!("{}/twilio/sms", durable.base);
    let reply = twilio.send_inbound(&url, &me, TEST_FROM, &code, Signing::Valid).await.unwrap();
    assert!(reply.body.contains("<Message>Verified.</Message>"), "{reply:?}");
    let start: Value = serde_json::from_str(&start.to_string().replace(&old_base, &durable.base)).unwrap();
    expect_outcome(&durable, &start, "Completed", Some(true)).await;
}
