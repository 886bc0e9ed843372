//! Helpers of the security end-to-end tests (limits, throttling, webhooks, hygiene), on top of
//! `common`: servers on a chosen port (for a public URL that must be known before the start),
//! config files, raw starts and waits on time-based budgets.
#![allow(dead_code)]

use crate::common::*;
use durable_twilio::fake::{TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The sample's start route.
pub(crate) const START: &str = "/api/orchestrators/E4_SmsPhoneVerification";

/// A free loopback port (bound, then released; the race with other tests is harmless on a
/// machine that does not hand ports out in order).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Writes `toml` into `dir/name` and returns `--config <path>`.
pub(crate) fn config(dir: &Path, name: &str, toml: &str) -> Vec<String> {
    let path = dir.join(name);
    std::fs::write(&path, toml).unwrap();
    vec!["--config".into(), path.display().to_string()]
}

/// How [`start`] runs the binary.
#[derive(Clone, Default)]
pub(crate) struct Options {
    /// Extra arguments.
    pub args: Vec<String>,
    /// Twilio base URL (None: development outbox).
    pub twilio: Option<String>,
    /// Port (None: any free one).
    pub port: Option<u16>,
    /// Leave DURABLE_SYSTEM_KEY / DURABLE_VERIFICATION_KEY unset (keys go to files).
    pub key_files: bool,
}

fn command(data_dir: &Path, options: &Options) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_durable"));
    let port = options.port.unwrap_or(0).to_string();
    cmd.arg("serve").arg("--port").arg(port).arg("--data-dir").arg(data_dir).args(&options.args);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info,durable=debug");
    if !options.key_files {
        cmd.env("DURABLE_SYSTEM_KEY", KEY).env("DURABLE_VERIFICATION_KEY", VERIFICATION_KEY);
    }
    if let Some(url) = &options.twilio {
        cmd.env("TwilioAccountSid", TEST_ACCOUNT_SID)
            .env("TwilioAuthToken", TEST_AUTH_TOKEN)
            .env("TwilioPhoneNumber", TEST_FROM)
            .env("TwilioApiBaseUrl", url);
    }
    cmd
}

fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.with_extension(format!("log.{}", std::process::id()))
}

/// Starts `durable serve` and waits for its "listening on" line.
pub(crate) fn start(data_dir: &Path, options: &Options) -> Durable {
    std::fs::create_dir_all(data_dir).unwrap();
    let log_path = log_path(data_dir);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
    let mut child =
        command(data_dir, options).stdout(Stdio::piped()).stderr(Stdio::from(log)).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let Ok(base) = rx.recv_timeout(DEADLINE) else {
        let _ = child.kill();
        panic!(
            "durable serve did not start; log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    };
    Durable {
        child,
        base,
        local_rpc: None,
        data_dir: data_dir.to_owned(),
        log_path,
        http: reqwest::Client::new(),
    }
}

/// Runs `durable serve` expecting it to refuse to start: returns its exit code and stderr.
pub(crate) fn refused_start(data_dir: &Path, options: &Options) -> (i32, String) {
    let mut child = command(data_dir, options).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (status.code().unwrap_or(-1), stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("durable serve did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP client whose connections come from `ip` (another loopback address is another
/// client address for the server).
pub(crate) fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip.parse::<IpAddr>().unwrap()).build().unwrap()
}

/// POSTs a start of the sample for `phone` (a JSON document) with the key, from `http`.
pub(crate) async fn start_from(
    durable: &Durable,
    http: &reqwest::Client,
    phone_json: &str,
) -> reqwest::Response {
    http.post(durable.url(START))
        .header("x-functions-key", KEY)
        .header("content-type", "application/json")
        .body(phone_json.to_owned())
        .send()
        .await
        .unwrap()
}

/// A start of the sample for `phone` (an E.164 number) from the default client.
pub(crate) async fn start_number(durable: &Durable, phone: &str) -> reqwest::Response {
    start_from(durable, &durable.http, &format!("\"{phone}\"")).await
}

/// Asserts a 429 from the limit `limit`: `Retry-After` in whole seconds (returned), our error
/// body naming the limit, and the promise that nothing happened.
pub(crate) async fn assert_rate_limited(response: reqwest::Response, limit: &str) -> u64 {
    assert_eq!(response.status(), 429, "expected 429 from '{limit}'");
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "RateLimited", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(&format!("'{limit}'")), "{message}");
    assert!(message.contains("no instance was created and no message sent"), "{message}");
    assert!(message.contains(&format!("retry in {retry_after} s")), "{message}");
    retry_after
}

/// Retries `attempt` until it yields `Some` (each `None` is a refusal that changed nothing),
/// up to [`DEADLINE`]; returns the value and how long it took. For budgets that come back with
/// time: the wait is the point, and it is bounded.
pub(crate) async fn until_some<T, F: Future<Output = Option<T>>>(
    mut attempt: impl FnMut() -> F,
) -> (T, Duration) {
    let t0 = Instant::now();
    loop {
        if let Some(v) = attempt().await {
            return (v, t0.elapsed());
        }
        assert!(t0.elapsed() < DEADLINE, "the budget never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Answers the verification `start` with `body` and returns the HTTP status.
pub(crate) async fn answer(durable: &Durable, start: &serde_json::Value, body: &str) -> u16 {
    durable.answer(start, body).await
}

/// Runs one verification of `phone` to its end: `wrong` wrong answers, then the right code if
/// `right`. Returns the output.
pub(crate) async fn verification(
    durable: &Durable,
    twilio: &durable_twilio::fake::FakeTwilio,
    phone: &str,
    wrong_answers: u32,
    right: bool,
) -> bool {
    let before = twilio.messages_to(phone).len();
    let response = start_number(durable, phone).await;
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    let start: serde_json::Value = response.json().await.unwrap();
    let code = {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let messages = twilio.messages_to(phone);
            if messages.len() > before {
                break code_of(&messages.last().unwrap().body);
            }
            assert!(Instant::now() < deadline, "no SMS to {phone}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    for n in 0..wrong_answers {
        assert_eq!(answer(durable, &start, &wrong(&code, n)).await, 202);
    }
    if right {
        assert_eq!(answer(durable, &start, &format!("\"{code}\"")).await, 202);
    }
    let done = durable.finished(&start).await;
    done["output"].as_bool().unwrap()
}
