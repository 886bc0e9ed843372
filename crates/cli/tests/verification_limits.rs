//! The abuse limits of `durable serve`, end to end through the real binary and a fake Twilio:
//! each limit answers 429 with `Retry-After`, creates nothing and sends nothing; its budget
//! comes back by itself; limits survive a restart and are shared by two nodes on PostgreSQL.

mod common;
mod security;

use common::*;
use security::*;
use std::time::Duration;

/// A server whose limits are the defaults, except `[verification.limits]` lines in `limits`.
fn limited(
    dir: &std::path::Path,
    twilio: &durable_twilio::fake::FakeTwilio,
    name: &str,
    limits: &str,
) -> Durable {
    let args = config(dir, &format!("{name}.toml"), &format!("[verification.limits]\n{limits}\n"));
    start(&dir.join(name), &Options { args, twilio: Some(twilio.base_url()), ..Default::default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_per_number_refuses_and_comes_back() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable = limited(dir.path(), &twilio, "a", "sms_per_number = { max = 2, per = \"2s\" }");
    let (x, y) = (phone(11), phone(12));
    for _ in 0..2 {
        assert_eq!(start_number(&durable, &x).await.status(), 202);
    }
    let retry = assert_rate_limited(start_number(&durable, &x).await, "SMS per phone number").await;
    assert!(retry <= 1, "one SMS comes back every second: {retry}");
    assert_eq!(start_number(&durable, &y).await.status(), 202, "other numbers are not affected");
    twilio.wait_for_messages(3, DEADLINE).await.unwrap();
    assert_eq!(instance_count(&durable).await, 3, "the refused start created nothing");
    // The budget comes back by itself: one SMS per 2 s / 2 = 1 s.
    let (_, waited) = until_some(|| async {
        let r = start_number(&durable, &x).await;
        (r.status() == 202).then_some(())
    })
    .await;
    assert!(waited >= Duration::from_millis(200), "came back after {waited:?}");
    twilio.wait_for_messages(4, DEADLINE).await.unwrap();
    assert_eq!(twilio.messages_to(&x).len(), 3, "no SMS for a refused start");
    assert!(!durable.log().contains(&x), "the number appears in clear in the log");
    // Each refusal is counted, by limit (a loopback scrape needs no key).
    let metrics = durable.http.get(durable.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let refused = metrics
        .lines()
        .find(|l| {
            l.starts_with("durable_starts_limited_total{")
                && l.contains(r#"limit="SMS per phone number""#)
                && l.contains(r#"orchestrator="E4_SmsPhoneVerification""#)
        })
        .unwrap_or_else(|| panic!("no refusal counted:\n{metrics}"));
    let count: f64 = refused.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_per_client_and_the_global_sms_budget() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();

    let durable = limited(dir.path(), &twilio, "client", "starts_per_client = { max = 3, per = \"1h\" }");
    for n in 0..3 {
        assert_eq!(start_number(&durable, &phone(20 + n)).await.status(), 202);
    }
    assert_rate_limited(start_number(&durable, &phone(23)).await, "starts per client address").await;
    // Another client address has a budget of its own.
    let other = client_from("127.0.0.2");
    assert_eq!(start_from(&durable, &other, &format!("\"{}\"", phone(24))).await.status(), 202);
    twilio.wait_for_messages(4, DEADLINE).await.unwrap();
    assert!(twilio.messages_to(&phone(23)).is_empty());
    drop(durable);

    let durable = limited(dir.path(), &twilio, "global", "sms_global = { max = 3, per = \"1h\" }");
    for n in 0..3 {
        assert_eq!(start_number(&durable, &phone(30 + n)).await.status(), 202);
    }
    assert_rate_limited(start_number(&durable, &phone(33)).await, "SMS for all numbers").await;
    assert_rate_limited(
        start_from(&durable, &other, &format!("\"{}\"", phone(34))).await,
        "SMS for all numbers",
    )
    .await;
    twilio.wait_for_messages(7, DEADLINE).await.unwrap();
    assert!(twilio.messages_to(&phone(33)).is_empty() && twilio.messages_to(&phone(34)).is_empty());
    assert_eq!(instance_count(&durable).await, 3);
}

/// Wrong answers across verifications lock a number out; the lockout ends by itself; a
/// success gives the reserved answers back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_answers_lock_a_number_out_until_the_budget_refills() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable =
        limited(dir.path(), &twilio, "answers", "failed_answers_per_number = { max = 8, per = \"4s\" }");
    let x = phone(40);
    // Two verifications, all 4 answers wrong: the 8 answers of the budget are spent.
    assert!(!verification(&durable, &twilio, &x, 4, false).await);
    assert!(!verification(&durable, &twilio, &x, 4, false).await);
    let sent = twilio.messages_to(&x).len();
    assert_rate_limited(start_number(&durable, &x).await, "failed answers per phone number").await;
    assert_eq!(twilio.messages_to(&x).len(), sent, "a locked number gets no SMS");
    // Other numbers are not locked.
    assert!(verification(&durable, &twilio, &phone(41), 0, true).await);
    // The lockout ends by itself (4 answers come back in 2 s).
    let (_, waited) = until_some(|| async {
        let r = start_number(&durable, &x).await;
        if r.status() == 202 {
            return Some(r.json::<serde_json::Value>().await.unwrap());
        }
        assert_eq!(r.status(), 429);
        None
    })
    .await;
    assert!(waited >= Duration::from_millis(500), "the lockout lasted {waited:?}");
}

/// A verification reserves its answers when it starts; a success gives them all back, a
/// failure gives back those it did not use, once the number has used more than half its budget
/// (below that nothing is written: the reservation comes back by itself). Without the refunds
/// the budget of 8 answers would be spent by the first two verifications.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_numbers_get_their_reserved_answers_back() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable =
        limited(dir.path(), &twilio, "refunds", "failed_answers_per_number = { max = 8, per = \"1h\" }");
    let x = phone(45);
    // 4 of 8 reserved, half the budget left: nothing comes back.
    assert!(verification(&durable, &twilio, &x, 3, true).await);
    // 8 of 8 reserved: this success gives its 4 back.
    assert!(verification(&durable, &twilio, &x, 0, true).await);
    // The refunds are written in batches, off the verification's path: wait for them.
    let (start, _) = until_some(|| async {
        let r = start_number(&durable, &x).await;
        (r.status() == 202).then_some(r)
    })
    .await;
    let start: serde_json::Value = start.json().await.unwrap();
    let code = {
        let (m, _) =
            until_some(|| async { (twilio.messages_to(&x).len() == 3).then(|| twilio.messages_to(&x)) })
                .await;
        code_of(&m[2].body)
    };
    for n in 0..4 {
        assert_eq!(answer(&durable, &start, &wrong(&code, n)).await, 202);
    }
    assert_eq!(durable.finished(&start).await["output"], false);
    // 4 still reserved by the first verification + 4 wrong answers: the budget is spent.
    assert_rate_limited(start_number(&durable, &x).await, "failed answers per phone number").await;
}

/// A real user who mistypes and asks again a few times is never locked out by the defaults;
/// once verified, the reserved answers come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_mistypes_and_asks_again_is_never_locked_out() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable =
        start(&dir.path().join("data"), &Options { twilio: Some(twilio.base_url()), ..Default::default() });
    let me = phone(50);
    assert!(!verification(&durable, &twilio, &me, 4, false).await, "all four typed wrong");
    assert!(!verification(&durable, &twilio, &me, 4, false).await, "all four wrong again");
    assert!(verification(&durable, &twilio, &me, 3, true).await, "three typos, then right");
    assert!(verification(&durable, &twilio, &me, 2, true).await);
    assert!(verification(&durable, &twilio, &me, 0, true).await, "five verifications in a few seconds");
}

/// The figure of issue 10: SMS to one number under a flood of starts (default limits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_starts_sends_one_number_five_sms() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable =
        start(&dir.path().join("data"), &Options { twilio: Some(twilio.base_url()), ..Default::default() });
    let victim = phone(60);
    let t0 = std::time::Instant::now();
    let mut accepted = 0;
    let mut refused = 0;
    while t0.elapsed() < Duration::from_secs(10) {
        let burst = (0..50).map(|_| start_number(&durable, &victim));
        for r in futures::future::join_all(burst).await {
            match r.status().as_u16() {
                202 => accepted += 1,
                429 => refused += 1,
                s => panic!("unexpected {s}"),
            }
        }
    }
    let sms = twilio.wait_for_messages(accepted, DEADLINE).await.unwrap().len();
    eprintln!(
        "flood: {} starts for one number in 10 s: {accepted} accepted, {refused} refused with 429, {sms} SMS",
        accepted + refused
    );
    assert_eq!(accepted, 5, "5 SMS per 10 min");
    assert_eq!(twilio.messages_to(&victim).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn country_codes_can_be_limited() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let durable = limited(dir.path(), &twilio, "c", "country_codes = [\"44\"]");
    let response = start_number(&durable, "+14255550123").await;
    assert_eq!(response.status(), 400);
    let message = response.text().await.unwrap();
    assert!(message.contains("allowed country codes: +44"), "{message}");
    assert_eq!(start_number(&durable, "+447700900123").await.status(), 202);
    twilio.wait_for_messages(1, DEADLINE).await.unwrap();
    assert_eq!(twilio.messages()[0].to, "+447700900123");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_survive_a_restart() {
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let args =
        config(dir.path(), "l.toml", "[verification.limits]\nsms_per_number = { max = 2, per = \"1h\" }\n");
    let options = Options { args, twilio: Some(twilio.base_url()), ..Default::default() };
    let durable = start(&dir.path().join("data"), &options);
    let x = phone(70);
    for _ in 0..2 {
        assert_eq!(start_number(&durable, &x).await.status(), 202);
    }
    assert_rate_limited(start_number(&durable, &x).await, "SMS per phone number").await;
    assert!(durable.terminate().success());
    let durable = start(&dir.path().join("data"), &options);
    let retry = assert_rate_limited(start_number(&durable, &x).await, "SMS per phone number").await;
    assert!(retry > 1000, "still about 30 min to wait: {retry}");
    assert_eq!(start_number(&durable, &phone(71)).await.status(), 202);
}

/// Two nodes on one PostgreSQL schema share every budget: a flood through both nodes gets
/// exactly the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgresql_share_the_limits() {
    let Some(db) = durable_store_postgres::testing::database().await else { return };
    let twilio = fake_twilio().await;
    let dir = tempfile::tempdir().unwrap();
    let mut args =
        config(dir.path(), "pg.toml", "[verification.limits]\nsms_per_number = { max = 3, per = \"1h\" }\n");
    args.extend(["--store".into(), db.url().into(), "--postgres-schema".into(), db.schema().into()]);
    let options = Options { args, twilio: Some(twilio.base_url()), ..Default::default() };
    let a = start(&dir.path().join("a"), &options);
    let b = start(&dir.path().join("b"), &options);
    let x = phone(80);
    let flood = (0..20).map(|i| start_number(if i % 2 == 0 { &a } else { &b }, &x));
    let statuses: Vec<u16> =
        futures::future::join_all(flood).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 17, "{statuses:?}");
    twilio.wait_for_messages(3, DEADLINE).await.unwrap();
    // A node started later sees the same budget.
    drop(a);
    let c = start(&dir.path().join("c"), &options);
    assert_rate_limited(start_number(&c, &x).await, "SMS per phone number").await;
    assert_eq!(twilio.messages_to(&x).len(), 3);
}
