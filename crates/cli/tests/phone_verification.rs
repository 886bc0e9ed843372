//! The seed's SMS phone verification, end to end through the real binary and its HTTP API, with
//! a fake Twilio on loopback.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_right_code_completes_true_and_the_code_is_never_stored() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable = Durable::start(
        &dir.path().join("data"),
        &Launch { twilio: Some(twilio.base_url()), ..Default::default() },
    );
    let to = phone(1);
    let start = durable.start_verification(&format!("\"{to}\"")).await;
    let sms = twilio.wait_for_message_to(&to, DEADLINE).await.unwrap();
    assert_eq!(sms.from, durable_twilio::fake::TEST_FROM);
    let code = code_of(&sms.body);
    assert_eq!(durable.answer(&start, &code.parse::<u32>().unwrap().to_string()).await, 202);
    let done = durable.finished(&start).await;
    assert_eq!(done["runtimeStatus"], "Completed");
    assert_eq!(done["output"], true);
    assert_eq!(done["input"], to.as_str());

    // The code is nowhere: not in the database files, not in status with history and outputs,
    // not in the logs.
    let url =
        format!("{}&showHistory=true&showHistoryOutput=true", start["statusQueryGetUri"].as_str().unwrap());
    let with_history = durable.http.get(url).send().await.unwrap().text().await.unwrap();
    assert!(with_history.contains("TaskCompleted"));
    let marker = format!("is {code}");
    assert!(!with_history.contains(&marker));
    let log = durable.log();
    assert!(!log.contains(&code), "the code appears in the log");
    assert!(!log.contains(KEY), "the system key appears in the log");
    assert!(!log.contains(&to), "the full phone number appears in the log");
    let data = dir.path().join("data");
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("durable.db") {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(&format!("code is {code}")), "{} holds the SMS text", path.display());
            assert!(!text.contains(&format!("\"{code}\"")), "{} holds the code", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_timeouts_and_early_answers() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let launch =
        Launch { twilio: Some(twilio.base_url()), args: vec!["--verification-window".into(), "5s".into()] };
    let durable = Durable::start(&dir.path().join("data"), &launch);

    // Three wrong codes, then the right one.
    let start = durable.start_verification(&format!("\"{}\"", phone(2))).await;
    let code = sms_code(&twilio, &phone(2)).await;
    for n in 0..3 {
        assert_eq!(durable.answer(&start, &wrong(&code, n)).await, 202);
    }
    assert_eq!(durable.answer(&start, &format!("\"{code}\"")).await, 202);
    let done = durable.finished(&start).await;
    assert_eq!((done["runtimeStatus"].as_str(), done["output"].as_bool()), (Some("Completed"), Some(true)));

    // Four wrong codes.
    let start = durable.start_verification(&format!("\"{}\"", phone(3))).await;
    let code = sms_code(&twilio, &phone(3)).await;
    for n in 0..4 {
        assert_eq!(durable.answer(&start, &wrong(&code, n)).await, 202);
    }
    let done = durable.finished(&start).await;
    assert_eq!((done["runtimeStatus"].as_str(), done["output"].as_bool()), (Some("Completed"), Some(false)));
    // After the instance finished, a late answer is 410 Gone.
    assert_eq!(durable.answer(&start, &format!("\"{code}\"")).await, 410);

    // No answer: the 5 s window expires.
    let start = durable.start_verification(&format!("\"{}\"", phone(4))).await;
    sms_code(&twilio, &phone(4)).await;
    let done = durable.finished(&start).await;
    assert_eq!((done["runtimeStatus"].as_str(), done["output"].as_bool()), (Some("Completed"), Some(false)));

    // The answer arrives before the orchestrator waits: Twilio is slow to confirm the SMS, so
    // the activity is still running when the user answers with the code it already received.
    twilio.delay_next(1, Duration::from_secs(2));
    let start = durable.start_verification(&format!("\"{}\"", phone(5))).await;
    let request =
        twilio.wait_for_requests(twilio.requests().len() + 1, DEADLINE).await.unwrap().pop().unwrap();
    let body = request.params.iter().find(|(k, _)| k == "Body").unwrap().1.clone();
    assert_eq!(durable.answer(&start, &format!("\"{}\"", code_of(&body))).await, 202);
    assert_eq!(
        durable.status(&start).await["runtimeStatus"],
        "Running",
        "the answer came before the challenge"
    );
    let done = durable.finished(&start).await;
    assert_eq!((done["runtimeStatus"].as_str(), done["output"].as_bool()), (Some("Completed"), Some(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_bad_requests() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable = Durable::start(
        &dir.path().join("data"),
        &Launch { twilio: Some(twilio.base_url()), ..Default::default() },
    );

    // An empty phone number is refused before any instance exists (E.164 only).
    for body in ["\"\"", ""] {
        let response = durable.post(&durable.url("/api/orchestrators/E4_SmsPhoneVerification"), body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert!(response.text().await.unwrap().contains("E.164"), "{body}");
    }

    // Twilio refuses the number (21211): the instance fails with Twilio's message.
    let start = durable.start_verification("\"+15005550001\"").await;
    let done = durable.finished(&start).await;
    assert_eq!(done["runtimeStatus"], "Failed");
    let message = done["output"].as_str().unwrap();
    assert!(message.contains("21211") && message.contains("is not a valid phone number"), "{message}");

    // Raise to an unknown instance: 404.
    let unknown = start["sendEventPostUri"]
        .as_str()
        .unwrap()
        .replace(start["id"].as_str().unwrap(), "no-such-instance")
        .replace("{eventName}", "SmsChallengeResponse");
    let response =
        durable.http.post(unknown).header("content-type", "application/json").body("1").send().await.unwrap();
    assert_eq!(response.status(), 404);

    // Bad JSON (and the octal-looking 0042 of the original) on a running instance: 400.
    let start = durable.start_verification(&format!("\"{}\"", phone(6))).await;
    sms_code(&twilio, &phone(6)).await;
    assert_eq!(durable.answer(&start, "{not json").await, 400);
    assert_eq!(durable.answer(&start, "0042").await, 400);
    // Not a code of the right shape: refused without using an attempt.
    assert_eq!(durable.answer(&start, "\"12345\"").await, 400);

    // Missing or wrong key: 401.
    let no_key = durable.http.get(
        durable.url(&format!("/runtime/webhooks/durabletask/instances/{}", start["id"].as_str().unwrap())),
    );
    assert_eq!(no_key.send().await.unwrap().status(), 401);
    let response = durable
        .http
        .post(durable.url("/api/orchestrators/E4_SmsPhoneVerification"))
        .header("x-functions-key", "wrong")
        .body("\"+14255550000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(!durable.log().contains(KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_verification_and_restart_still_completes() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let launch = Launch { twilio: Some(twilio.base_url()), ..Default::default() };
    let durable = Durable::start(&data, &launch);
    let mut pending = Vec::new();
    for n in 0..5 {
        let start = durable.start_verification(&format!("\"{}\"", phone(100 + n))).await;
        let code = sms_code(&twilio, &phone(100 + n)).await;
        pending.push((start, code));
    }
    // One answer is acknowledged before the crash; it must survive it.
    assert_eq!(durable.answer(&pending[0].0, &format!("\"{}\"", pending[0].1)).await, 202);
    durable.kill9();

    let durable = Durable::start(&data, &launch);
    for (start, code) in &pending[1..] {
        let start = rebase(start, &durable.base);
        assert_eq!(durable.answer(&start, &format!("\"{code}\"")).await, 202);
    }
    for (start, _) in &pending {
        let done = durable.finished(&rebase(start, &durable.base)).await;
        assert_eq!(
            (done["runtimeStatus"].as_str(), done["output"].as_bool()),
            (Some("Completed"), Some(true)),
            "{done}"
        );
    }
    assert_eq!(twilio.messages().len(), 5, "no SMS was sent twice");
    assert!(durable.terminate().success(), "SIGTERM stops the server cleanly");
}

/// The management URLs of `start` pointed at a server that now listens elsewhere.
fn rebase(start: &serde_json::Value, base: &str) -> serde_json::Value {
    let old = start["statusQueryGetUri"].as_str().unwrap();
    let old_base = &old[..old.find("/runtime").unwrap()];
    serde_json::from_str(&start.to_string().replace(old_base, base)).unwrap()
}
