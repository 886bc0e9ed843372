//! The fake as a black box over HTTP: Twilio's answers, the inspection endpoint, waiting,
//! trial mode and shutdown.

use std::time::Duration;

use durable_twilio::TwilioClient;
use durable_twilio::fake::{self, FakeTwilio, FakeTwilioOptions, TEST_FROM};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);

async fn fake() -> FakeTwilio {
    FakeTwilio::start(FakeTwilioOptions::default()).await.expect("fake Twilio starts")
}

/// A raw form POST, to send what the real client never would.
async fn post(fake: &FakeTwilio, account_in_path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let url = format!("{}/2010-04-01/Accounts/{account_in_path}/Messages.json", fake.base_url());
    let response = reqwest::Client::new()
        .post(url)
        .basic_auth(fake.account_sid(), Some(fake.auth_token()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn missing_parameters_get_twilios_codes() {
    let fake = fake().await;
    let sid = fake.account_sid().to_owned();
    let to = ("To", "+14155551234");
    let from = ("From", TEST_FROM);
    let body = ("Body", "hello");
    for (form, code) in [(vec![from, body], 21604), (vec![to, body], 21603), (vec![to, from], 21602)] {
        let (status, json) = post(&fake, &sid, &form).await;
        assert_eq!(status, 400, "{json}");
        assert_eq!(json["code"], code, "{json}");
        assert_eq!(json["status"], 400);
        assert_eq!(json["more_info"], format!("https://www.twilio.com/docs/errors/{code}"));
    }
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn unknown_account_in_path_is_20404() {
    let fake = fake().await;
    let form = [("To", "+14155551234"), ("From", TEST_FROM), ("Body", "x")];
    let (status, json) = post(&fake, "AC11111111111111111111111111111111", &form).await;
    assert_eq!(status, 404);
    assert_eq!(json["code"], 20404);
    assert!(json["message"].as_str().unwrap().contains("was not found"), "{json}");
}

#[tokio::test]
async fn created_document_has_twilios_shape() {
    let fake = fake().await;
    let sid = fake.account_sid().to_owned();
    let (status, json) =
        post(&fake, &sid, &[("To", "+14155551234"), ("From", TEST_FROM), ("Body", "hi")]).await;
    assert_eq!(status, 201);
    for key in [
        "account_sid",
        "api_version",
        "body",
        "date_created",
        "date_sent",
        "date_updated",
        "direction",
        "error_code",
        "error_message",
        "from",
        "messaging_service_sid",
        "num_media",
        "num_segments",
        "price",
        "price_unit",
        "sid",
        "status",
        "subresource_uris",
        "to",
        "uri",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    assert_eq!(json["status"], "queued");
    assert_eq!(json["num_segments"], "1", "counts are strings");
    assert_eq!(json["num_media"], "0");
    assert_eq!(json["date_sent"], Value::Null);
    assert!(json["date_created"].as_str().unwrap().ends_with(" +0000"), "{json}");
    let message_sid = json["sid"].as_str().unwrap();
    assert_eq!(json["uri"], format!("/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json"));
}

#[tokio::test]
async fn inspection_endpoint_lists_and_filters_messages() {
    let fake = fake().await;
    let client = TwilioClient::new(fake.client_config()).unwrap();
    client.send_sms("+14155550001", "code 111111").await.unwrap();
    client.send_sms("+14155550002", "code 222222").await.unwrap();

    let http = reqwest::Client::new();
    let all: Vec<Value> =
        http.get(format!("{}/_fake/messages", fake.base_url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(all.len(), 2);
    let one: Vec<Value> = http
        .get(format!("{}/_fake/messages?to=%2B14155550002", fake.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["body"], "code 222222");
    assert_eq!(one[0]["params"][0], serde_json::json!(["To", "+14155550002"]));

    let deleted = http.delete(format!("{}/_fake/messages", fake.base_url())).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn waiting_wakes_on_arrival_and_times_out_with_context() {
    let fake = fake().await;
    let client = TwilioClient::new(fake.client_config()).unwrap();

    // The wait starts before the message exists and must be woken by its arrival.
    let (waited, sent) = tokio::join!(
        fake.wait_for_message_to("+14155559999", WAIT),
        client.send_sms("+14155559999", "code 3")
    );
    assert_eq!(waited.unwrap().sid, sent.unwrap().sid);

    let err = fake.wait_for_messages(2, Duration::from_millis(50)).await.unwrap_err();
    assert!(matches!(err, fake::Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("+14155559999"), "{err}");
}

#[tokio::test]
async fn trial_allow_list_rejects_unverified_numbers() {
    let fake = fake().await;
    fake.set_trial_allow_list(Some(vec!["+14155550001".to_owned()]));
    let client = TwilioClient::new(fake.client_config()).unwrap();

    let err = client.send_sms("+14155550002", "code").await.unwrap_err();
    assert_eq!(err.code(), Some(21608));
    assert!(err.is_permanent());
    client.send_sms("+14155550001", "code").await.unwrap();

    fake.set_trial_allow_list(None);
    client.send_sms("+14155550002", "code").await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let fake = fake().await;
    let base_url = fake.base_url();
    fake.shutdown().await;
    let err = reqwest::Client::new().get(format!("{base_url}/_fake/messages")).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}
