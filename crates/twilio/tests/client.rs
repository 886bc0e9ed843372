//! The real client against the loopback fake: success, permanent errors, retries, timeouts,
//! and what ends up in logs.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durable_twilio::fake::{FakeTwilio, FakeTwilioOptions, TEST_FROM};
use durable_twilio::{Error, MessageStatus, TwilioClient, TwilioConfig};

const TO: &str = "+14155551234";
const WAIT: Duration = Duration::from_secs(5);

async fn fake() -> FakeTwilio {
    FakeTwilio::start(FakeTwilioOptions::default()).await.expect("fake Twilio starts")
}

fn client(config: TwilioConfig) -> TwilioClient {
    TwilioClient::new(config).expect("valid config")
}

fn statuses(fake: &FakeTwilio) -> Vec<Option<u16>> {
    fake.requests().iter().map(|r| r.response_status).collect()
}

#[tokio::test]
async fn sends_and_the_fake_sees_fields_and_credentials() {
    let fake = fake().await;
    let client = client(fake.client_config());
    // Characters that need form encoding must arrive unchanged.
    let body = "Your code is 042137 & 100% ok+ü";

    let sent = client.send_sms(TO, body).await.unwrap();

    assert!(sent.sid.starts_with("SM") && sent.sid.len() == 34, "{}", sent.sid);
    assert!(sent.sid[2..].bytes().all(|b| b.is_ascii_hexdigit()), "{}", sent.sid);
    assert_eq!(sent.status, MessageStatus::Queued);
    assert_eq!(sent.to.as_deref(), Some(TO));
    assert_eq!(sent.from.as_deref(), Some(TEST_FROM));
    assert_eq!(sent.account_sid.as_deref(), Some(fake.account_sid()));
    assert_eq!(sent.num_segments, Some(1));
    assert_eq!(sent.api_version.as_deref(), Some("2010-04-01"));
    assert_eq!(sent.direction.as_deref(), Some("outbound-api"));
    assert!(sent.date_created.is_some());

    let messages = fake.wait_for_messages(1, WAIT).await.unwrap();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.sid, sent.sid);
    assert_eq!((m.to.as_str(), m.from.as_str(), m.body.as_str()), (TO, TEST_FROM, body));
    let params: Vec<(&str, &str)> = m.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(params, [("To", TO), ("From", TEST_FROM), ("Body", body)]);

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].auth_user.as_deref(), Some(fake.account_sid()));
    assert_eq!(requests[0].path, format!("/2010-04-01/Accounts/{}/Messages.json", fake.account_sid()));
    assert_eq!(requests[0].response_status, Some(201));
}

#[tokio::test]
async fn wrong_token_is_a_permanent_20003_without_retry() {
    let fake = fake().await;
    let mut config = fake.client_config();
    config.auth_token = "not-the-token".into();

    let err = client(config).send_sms(TO, "code 1").await.unwrap_err();

    match &err {
        Error::Api { http_status: 401, code: Some(20003), message, attempts: 1, .. } => {
            assert_eq!(message, "Authenticate");
        }
        other => panic!("expected a 401/20003 Api error, got {other:?}"),
    }
    assert!(err.is_permanent());
    assert!(!err.may_have_been_sent());
    assert!(err.to_string().contains("Check account_sid and auth_token"), "{err}");
    assert!(!err.to_string().contains("not-the-token"), "{err}");
    assert_eq!(statuses(&fake), [Some(401)]);
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn invalid_number_is_permanent_and_quotes_twilio() {
    let fake = fake().await;
    let client = client(fake.client_config());

    let err = client.send_sms("+15005550001", "code 2").await.unwrap_err();

    assert!(err.is_permanent());
    assert_eq!(err.code(), Some(21211));
    assert_eq!(err.http_status(), Some(400));
    assert_eq!(
        err.to_string(),
        "Twilio rejected the message (21211): The 'To' number +15005550001 is not a valid phone number. \
         See https://www.twilio.com/docs/errors/21211"
    );
    assert_eq!(statuses(&fake), [Some(400)]);

    // A number that is simply not E.164 gets the same code with Twilio's wording.
    let err = client.send_sms("555-1234", "code 2").await.unwrap_err();
    assert_eq!(err.code(), Some(21211));
    assert!(err.to_string().contains("The 'To' number 555-1234 is not a valid phone number."), "{err}");
}

#[tokio::test]
async fn magic_numbers_map_to_permanent_codes() {
    let fake = fake().await;
    let client = client(fake.client_config());
    for (to, code) in
        [("+15005550002", 21612), ("+15005550003", 21408), ("+15005550004", 21610), ("+15005550009", 21614)]
    {
        let err = client.send_sms(to, "code").await.unwrap_err();
        assert_eq!(err.code(), Some(code), "{to}: {err}");
        assert!(err.is_permanent(), "{to}");
    }
    assert_eq!(fake.requests().len(), 4, "permanent errors are not retried");
}

#[tokio::test]
async fn two_503s_then_success_takes_three_attempts() {
    let fake = fake().await;
    fake.fail_next(2, 503);

    let sent = client(fake.client_config()).send_sms(TO, "code 3").await.unwrap();

    assert_eq!(statuses(&fake), [Some(503), Some(503), Some(201)]);
    assert_eq!(fake.messages().len(), 1);
    assert_eq!(fake.messages()[0].sid, sent.sid);
}

#[tokio::test]
async fn persistent_503_gives_up_after_max_attempts() {
    let fake = fake().await;
    fake.fail_next(5, 503);

    let err = client(fake.client_config()).send_sms(TO, "code 4").await.unwrap_err();

    assert!(matches!(err, Error::Api { http_status: 503, code: Some(20503), attempts: 3, .. }), "{err:?}");
    assert!(!err.is_permanent());
    assert!(err.to_string().contains("Gave up after 3 attempt(s)"), "{err}");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn non_json_gateway_error_is_retried_and_reported() {
    let fake = fake().await;
    fake.fail_next_with_body(3, 502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>");

    let err = client(fake.client_config()).send_sms(TO, "code 5").await.unwrap_err();

    match &err {
        Error::Api { http_status: 502, code: None, message, .. } => {
            assert!(message.contains("502 Bad Gateway"), "{message}");
        }
        other => panic!("expected a 502 Api error, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let fake = fake().await;
    fake.fail_next_with_retry_after(1, 429, Duration::from_secs(1));
    let mut config = fake.client_config();
    // Make our own backoff negligible, so only Retry-After can explain the gap.
    config.initial_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(2);

    client(config).send_sms(TO, "code 6").await.unwrap();

    let requests = fake.requests();
    assert_eq!(statuses(&fake), [Some(429), Some(201)]);
    assert_eq!(requests[0].response_code, Some(20429));
    let gap = requests[1].received_at - requests[0].received_at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}, before Retry-After");
}

#[tokio::test]
async fn retry_after_beyond_the_limit_gives_up_at_once() {
    let fake = fake().await;
    fake.fail_next_with_retry_after(1, 429, Duration::from_secs(120));
    let mut config = fake.client_config();
    config.max_retry_after = Duration::from_secs(10);
    let started = Instant::now();

    let err = client(config).send_sms(TO, "code 7").await.unwrap_err();

    assert!(matches!(err, Error::Api { http_status: 429, code: Some(20429), attempts: 1, .. }), "{err:?}");
    assert!(!err.is_permanent(), "the caller may retry later");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn slow_twilio_times_out_after_retries() {
    let fake = fake().await;
    fake.delay_next(2, Duration::from_secs(30));
    let mut config = fake.client_config();
    config.request_timeout = Duration::from_millis(200);
    config.max_attempts = 2;

    let err = client(config).send_sms(TO, "code 8").await.unwrap_err();

    assert!(
        matches!(err, Error::Timeout { timeout, attempts: 2 } if timeout == Duration::from_millis(200)),
        "{err:?}"
    );
    assert!(!err.is_permanent());
    assert!(err.may_have_been_sent());
    assert_eq!(fake.wait_for_requests(2, WAIT).await.unwrap().len(), 2);
    assert!(fake.messages().is_empty());
    fake.shutdown().await;
}

#[tokio::test]
async fn timeout_then_success() {
    let fake = fake().await;
    fake.delay_next(1, Duration::from_secs(30));
    let mut config = fake.client_config();
    config.request_timeout = Duration::from_millis(200);

    client(config).send_sms(TO, "code 9").await.unwrap();

    assert_eq!(fake.messages().len(), 1);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    // Take a free port and release it, so nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = TwilioConfig::new("AC00000000000000000000000000000000", "token", TEST_FROM)
        .with_base_url(format!("http://127.0.0.1:{port}"));
    config.initial_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(2);

    let err = client(config).send_sms(TO, "code 10").await.unwrap_err();

    assert!(matches!(err, Error::Transport { attempts: 3, .. }), "{err:?}");
    assert!(!err.is_permanent());
    assert!(!err.may_have_been_sent(), "a refused connection carried nothing");
}

#[test]
fn invalid_config_is_rejected_before_any_request() {
    let config = TwilioConfig::new("SK00000000000000000000000000000000", "token", TEST_FROM);
    let err = TwilioClient::new(config).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { field: "account_sid", .. }), "{err:?}");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn debug_output_never_contains_the_token() {
    let fake = fake().await;
    let config = fake.client_config();
    let client = client(config.clone());
    for debug in [format!("{config:?}"), format!("{config:#?}"), format!("{client:?}")] {
        assert!(!debug.contains(fake.auth_token()), "{debug}");
        assert!(debug.contains("***"), "{debug}");
    }
}

/// A `MakeWriter` collecting everything the subscriber prints.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_mask_the_number_and_omit_token_and_body() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread test runtime: every span and event of this test is emitted on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = fake().await;
    let client = client(fake.client_config());
    fake.fail_next(1, 503);
    let sent = client.send_sms(TO, "Your code is 918273").await.unwrap();
    let _ = client.send_sms("+15005550001", "Your code is 918273").await.unwrap_err();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("+1******1234"), "{logs}");
    assert!(logs.contains(&sent.sid), "{logs}");
    assert!(logs.contains("retrying"), "{logs}");
    assert!(logs.contains("21211"), "{logs}");
    for secret in [fake.auth_token(), "918273", TO, "+15005550001"] {
        assert!(!logs.contains(secret), "logs leak {secret:?}:\n{logs}");
    }
}
