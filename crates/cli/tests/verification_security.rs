//! The phone verification as an attacker and an operator see it, end to end through the real
//! binary and a fake Twilio: same code on re-send, E.164 input only.

mod common;

use common::*;
use std::time::Duration;

/// Issue 9, defect 2: Twilio accepts the SMS, then the server dies before the activity's
/// completion is committed. The activity runs again after the restart and sends a second SMS:
/// it must carry the same code, and the code of the first SMS must verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_sms_after_a_kill_carries_the_same_code_and_verifies() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let launch = Launch { twilio: Some(twilio.base_url()), ..Default::default() };
    let durable = Durable::start(&data, &launch);
    let to = phone(901);
    // Twilio accepts the message but its answer never arrives before the kill.
    twilio.accept_then_delay_next(1, Duration::from_secs(600));
    let start = durable.start_verification(&format!("\"{to}\"")).await;
    let first = twilio.wait_for_messages(1, DEADLINE).await.unwrap().remove(0);
    assert_eq!(first.to, to);
    durable.kill9();

    let durable = Durable::start(&data, &launch);
    let sent = twilio.wait_for_messages(2, DEADLINE).await.unwrap();
    assert_eq!(sent[1].to, to, "the activity ran again after the restart");
    assert_eq!(code_of(&sent[1].body), code_of(&first.body), "the re-sent SMS carries the same code");
    let start = rebase(&start, &durable.base);
    assert_eq!(durable.answer(&start, &format!("\"{}\"", code_of(&first.body))).await, 202);
    let done = durable.finished(&start).await;
    assert_eq!(
        (done["runtimeStatus"].as_str(), done["output"].as_bool()),
        (Some("Completed"), Some(true)),
        "{done}"
    );
    assert!(!durable.log().contains(&code_of(&first.body)), "the code appears in the log");
}

/// Only E.164 numbers start a verification; anything else is a 400 that says what a valid
/// number looks like, before any instance exists, and the input never reaches Twilio or the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_numbers_must_be_e164_and_refusals_create_nothing() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable = Durable::start(
        &dir.path().join("data"),
        &Launch { twilio: Some(twilio.base_url()), ..Default::default() },
    );
    let huge = format!("\"+1{}\"", "7".repeat(200_000));
    let cases: [(&str, &str); 8] = [
        ("\"hello\"", "does not start with '+'"),
        ("\"+1\"", "has 1 digits"),
        ("\"+1 425 555 0123\"", "characters other than digits"),
        ("\"+04255550123\"", "starts with 0"),
        (r#""\"\\\"+14255550123\\\"\"""#, "encoded twice"),
        ("14255550123", "a number (put it in quotes"),
        ("{\"phone\":\"+14255550123\"}", "got an object"),
        (&huge, "digits"),
    ];
    for (body, why) in cases {
        let response = durable.post(&durable.url("/api/orchestrators/E4_SmsPhoneVerification"), body).await;
        assert_eq!(response.status(), 400, "{}", &body[..body.len().min(40)]);
        let error: serde_json::Value = response.json().await.unwrap();
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(why), "{message}");
        assert!(message.contains("E.164") && message.contains("+14255550123"), "{message}");
        assert!(message.len() < 1000, "the message is bounded: {} bytes", message.len());
    }
    assert_eq!(instance_count(&durable).await, 0, "no instance was created");
    assert!(twilio.requests().is_empty(), "nothing reached Twilio");
    assert!(!durable.log().contains(&"7".repeat(100)), "the huge input reached the log");

    // The right shape still works.
    let start = durable.start_verification("\"+14255550123\"").await;
    twilio.wait_for_message_to("+14255550123", DEADLINE).await.unwrap();
    assert_eq!(instance_count(&durable).await, 1);
    let status = durable.status(&start).await;
    assert_eq!(status["input"], "+14255550123");
}

/// The management URLs of `start` pointed at a server that now listens elsewhere.
fn rebase(start: &serde_json::Value, base: &str) -> serde_json::Value {
    let old = start["statusQueryGetUri"].as_str().unwrap();
    let old_base = &old[..old.find("/runtime").unwrap()];
    serde_json::from_str(&start.to_string().replace(old_base, base)).unwrap()
}
