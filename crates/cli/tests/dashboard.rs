//! The dashboard in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`)
//! driven over WebDriver, against the real `durable` binary.
//!
//! Signs in, lists and filters instances, opens one and reads its timeline, raises an event
//! from the page, terminates an instance, runs the try-it page to a `true` result, signs out,
//! and checks that no page ever shows a verification code, a guess or the key (the try-it
//! page's development outbox message excepted: it stands in for the user's phone).
//!
//! Set `DURABLE_SCREENSHOTS_DIR` to keep screenshots of the list and instance pages (the ones
//! in `docs/` come from this test).

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Codes of 10 digits: a substring search for one cannot hit a timestamp or an id by chance.
const DIGITS: usize = 10;

/// `chromedriver` on a free loopback port, killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (Debian: apt-get install -y chromium chromium-driver; .ci/run does it)");
        let deadline = Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        ChromeDriver { child, url: format!("http://127.0.0.1:{port}") }
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--disable-dev-shm-usage", "--window-size=1280,1000"] }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The code in an SMS body ("Your verification code is 0123456789").
fn code_in(body: &str) -> String {
    let code = body.rsplit(' ').next().unwrap().to_owned();
    assert!(code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit()), "{body}");
    code
}

/// The code sent for `instance` (waits for the SMS in the development outbox).
async fn outbox_code(durable: &Durable, instance: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let messages = durable_phone_verification::DevOutbox::read(&durable.data_dir).unwrap();
        if let Some(m) = messages.iter().find(|m| m.reference.starts_with(&format!("{instance}:"))) {
            return code_in(&m.body);
        }
        assert!(Instant::now() < deadline, "no SMS for {instance}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a verification with a chosen id; returns the 202 body.
async fn start(durable: &Durable, id: &str, phone: &str) -> serde_json::Value {
    let url = durable.url(&format!("/api/orchestrators/E4_SmsPhoneVerification/{id}"));
    let response = durable.post(&url, &format!("\"{phone}\"")).await;
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

/// Waits until `css` matches an element whose text contains `text`.
async fn wait_text(c: &Client, css: &str, text: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(elements) = c.find_all(Locator::Css(css)).await {
            for e in elements {
                if let Ok(t) = e.text().await
                    && t.contains(text)
                {
                    return t;
                }
            }
        }
        if Instant::now() >= deadline {
            let page = c.find(Locator::Css("body")).await.unwrap().text().await.unwrap_or_default();
            panic!(
                "no {css} with text {text:?} on {}; the page says:\n{page}",
                c.current_url().await.unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(c: &Client, css: &str) {
    c.wait().at_most(DEADLINE).for_element(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// The ids in the instances table, in order.
async fn listed(c: &Client) -> Vec<String> {
    let mut ids = Vec::new();
    for cell in c.find_all(Locator::Css("table.instances td.id a")).await.unwrap() {
        ids.push(cell.text().await.unwrap());
    }
    ids
}

/// Every page the test sees goes through here: none shows the key, a code or a guess.
struct Secrets {
    forbidden: Vec<String>,
}

impl Secrets {
    async fn check(&self, c: &Client) {
        let source = c.source().await.unwrap();
        let url = c.current_url().await.unwrap();
        for secret in &self.forbidden {
            assert!(!source.contains(secret.as_str()), "{url} shows a secret ({}…)", &secret[..3]);
            assert!(!url.as_str().contains(secret.as_str()), "a secret in the URL {url}");
        }
    }
}

fn save_screenshot(png: &[u8], name: &str) {
    if let Ok(dir) = std::env::var("DURABLE_SCREENSHOTS_DIR") {
        std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser_and_shows_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let launch = Launch { args: vec!["--code-digits".into(), DIGITS.to_string()], twilio: None };
    let durable = Durable::start(&dir.path().join("data"), &launch);

    // Instances to look at: one verified through the API, one to answer from the page, one to
    // terminate, and one of another phone.
    let done = start(&durable, "dash-done", "+14255550101").await;
    let done_code = outbox_code(&durable, "dash-done").await;
    let wrong_guess = format!("{:010}", (done_code.parse::<u64>().unwrap() + 1) % 10_000_000_000);
    assert_eq!(durable.answer(&done, &format!("\"{wrong_guess}\"")).await, 202);
    assert_eq!(durable.answer(&done, &format!("\"{done_code}\"")).await, 202);
    assert_eq!(durable.finished(&done).await["output"], true);
    start(&durable, "dash-wait", "+14255550102").await;
    let wait_code = outbox_code(&durable, "dash-wait").await;
    start(&durable, "dash-doomed", "+14255550103").await;
    start(&durable, "other-1", "+14255550104").await;
    outbox_code(&durable, "other-1").await;

    let driver = ChromeDriver::start();
    let c = driver.browser().await;
    let mut secrets = Secrets {
        forbidden: vec![KEY.to_owned(), done_code.clone(), wrong_guess.clone(), wait_code.clone()],
    };

    // Sign in: a wrong key is refused, the right one lands on the instances page.
    c.goto(&durable.url("/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/sign-in"));
    type_into(&c, "#key", "not-the-key").await;
    click(&c, "form.card button[type=submit]").await;
    wait_text(&c, ".flash.error", "not valid").await;
    type_into(&c, "#key", KEY).await;
    click(&c, "form.card button[type=submit]").await;
    wait_text(&c, "h1", "Instances").await;
    secrets.check(&c).await;

    // Counts and the list, newest first.
    assert_eq!(wait_text(&c, "[data-count=Total]", "4").await, "4");
    assert_eq!(c.find(Locator::Css("[data-count=Completed]")).await.unwrap().text().await.unwrap(), "1");
    assert_eq!(listed(&c).await, ["other-1", "dash-doomed", "dash-wait", "dash-done"]);
    save_screenshot(&c.screenshot().await.unwrap(), "dashboard-instances.png");

    // Filters: by status, then by id prefix.
    c.find(Locator::Css("#f-status")).await.unwrap().select_by_value("Completed").await.unwrap();
    click(&c, "form.filters button[type=submit]").await;
    wait_text(&c, "table.instances", "dash-done").await;
    assert_eq!(listed(&c).await, ["dash-done"]);
    c.goto(&durable.url("/")).await.unwrap();
    type_into(&c, "#f-prefix", "dash-").await;
    click(&c, "form.filters button[type=submit]").await;
    wait_text(&c, "table.instances", "dash-wait").await;
    assert_eq!(listed(&c).await, ["dash-doomed", "dash-wait", "dash-done"]);
    secrets.check(&c).await;

    // An instance: its history and its timeline (activity bar, timer bar, event marks).
    click(&c, "table.instances a[href='/instances/dash-done']").await;
    wait_text(&c, "h1", "dash-done").await;
    wait_text(&c, ".summary", "Completed").await;
    c.find(Locator::Css("svg[data-timeline] rect[data-kind=activity][data-outcome=completed]"))
        .await
        .unwrap();
    c.find(Locator::Css("svg[data-timeline] rect[data-kind=timer][data-outcome=cancelled]")).await.unwrap();
    assert_eq!(
        c.find_all(Locator::Css("svg[data-timeline] polygon.event")).await.unwrap().len(),
        2,
        "two answers"
    );
    let caption = wait_text(&c, "figure.timeline figcaption", "activities").await;
    assert!(caption.starts_with("1 activities, 1 timers"), "{caption}");
    wait_text(&c, "table.history", "E4_SendSmsChallenge").await;
    save_screenshot(&c.screenshot().await.unwrap(), "dashboard-instance.png");
    secrets.check(&c).await;

    // Raise an event from the page: invalid JSON is caught before sending, then the answer.
    c.goto(&durable.url("/instances/dash-wait")).await.unwrap();
    wait_text(&c, ".summary", "Running").await;
    wait_text(&c, ".waiting", "SmsChallengeResponse").await;
    click(&c, "details[data-action=raise-event] summary").await;
    type_into(&c, "#ev-name", "SmsChallengeResponse").await;
    type_into(&c, "#ev-data", "12345x").await;
    wait_text(&c, "[data-json-msg]", "Not valid JSON").await;
    click(&c, "details[data-action=raise-event] button[type=submit]").await;
    type_into(&c, "#ev-data", &format!("\"{wait_code}\"")).await;
    click(&c, "details[data-action=raise-event] button[type=submit]").await;
    wait_text(&c, "#action-result", "Event 'SmsChallengeResponse' raised.").await;
    wait_text(&c, ".summary", "Completed").await;
    // The form was cleared once the answer was sent; nothing on the page shows it.
    assert_eq!(
        c.find(Locator::Css("#ev-data")).await.unwrap().prop("value").await.unwrap().as_deref(),
        Some("")
    );
    secrets.check(&c).await;
    let wait_status: serde_json::Value = durable
        .http
        .get(durable.url("/runtime/webhooks/durabletask/instances/dash-wait"))
        .header("x-functions-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(wait_status["output"], true, "the answer raised from the page verified it");

    // Terminate from the page.
    c.goto(&durable.url("/instances/dash-doomed")).await.unwrap();
    click(&c, "details[data-action=terminate] summary").await;
    type_into(&c, "#t-reason", "stopped from the dashboard").await;
    click(&c, "details[data-action=terminate] button[type=submit]").await;
    wait_text(&c, "#action-result", "Termination requested").await;
    wait_text(&c, ".summary", "Terminated").await;
    wait_text(&c, ".payloads", "stopped from the dashboard").await;
    secrets.check(&c).await;

    // The try-it page: a number, the SMS in the development outbox, the answer, `true`.
    click(&c, "nav a[href='/try/phone-verification']").await;
    type_into(&c, "#phone", "+14255550199").await;
    click(&c, "form.card button[type=submit]").await;
    let sms = wait_text(&c, "blockquote[data-sms]", "Your verification code is").await;
    let code = code_in(&sms);
    let source = c.source().await.unwrap();
    assert_eq!(source.matches(code.as_str()).count(), 1, "the code appears only in the outbox message");
    type_into(&c, "#code", &code).await;
    click(&c, "form[data-clear] button[type=submit]").await;
    wait_text(&c, "#action-result", "Answer sent.").await;
    wait_text(&c, "[data-output=true]", "Verified").await;
    assert_eq!(
        c.find(Locator::Css("#code")).await.unwrap().prop("value").await.unwrap().as_deref(),
        Some("")
    );
    // Everywhere else, this code is a secret too.
    let try_it_instance = c.current_url().await.unwrap().path().rsplit('/').next().unwrap().to_owned();
    secrets.forbidden.push(code);
    c.goto(&durable.url(&format!("/instances/{try_it_instance}"))).await.unwrap();
    wait_text(&c, ".summary", "Completed").await;
    secrets.check(&c).await;
    c.goto(&durable.url("/")).await.unwrap();
    wait_text(&c, "[data-count=Total]", "5").await;
    secrets.check(&c).await;

    // Sign out: the session is gone.
    click(&c, "form.signout button").await;
    wait_text(&c, "h1", "Sign in").await;
    c.goto(&durable.url("/instances/dash-done")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/sign-in"), "signed out");
    secrets.check(&c).await;
    c.close().await.unwrap();
}
