//! End-to-end harness: the real `durable` binary on 127.0.0.1:0 with a temp data dir, talking
//! to a fake Twilio on loopback.
#![allow(dead_code)]

use durable_twilio::fake::{FakeTwilio, FakeTwilioOptions, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous, for small shared CI machines.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);
/// The system key the tests configure.
pub(crate) const KEY: &str = "e2e-test-system-key-0123456789abcdef";
/// A verification MAC key (64 hex digits), shared by restarts of a test's server.
pub(crate) const VERIFICATION_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A running `durable serve`.
pub(crate) struct Durable {
    pub child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub http: reqwest::Client,
    /// `rpcBaseUrl` of the key-less local RPC endpoint, when started with `--local-rpc-port`.
    pub local_rpc: Option<String>,
}

/// How to start a server.
#[derive(Clone, Default)]
pub(crate) struct Launch {
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// Twilio base URL (None: no Twilio, the development outbox is used).
    pub twilio: Option<String>,
}

impl Durable {
    /// Starts the binary and waits for its "listening on" line.
    pub(crate) fn start(data_dir: &Path, launch: &Launch) -> Durable {
        Durable::start_with_env(data_dir, launch, &[])
    }

    /// [`start`](Self::start) with extra environment variables.
    pub(crate) fn start_with_env(data_dir: &Path, launch: &Launch, env: &[(&str, &str)]) -> Durable {
        std::fs::create_dir_all(data_dir).unwrap();
        let log_path = data_dir.with_extension(format!("log.{}", std::process::id()));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_durable"));
        cmd.arg("serve").arg("--port").arg("0").arg("--data-dir").arg(data_dir);
        cmd.args(&launch.args);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DURABLE_SYSTEM_KEY", KEY)
            .env("DURABLE_VERIFICATION_KEY", VERIFICATION_KEY)
            .env("RUST_LOG", "info,durable=debug")
            .envs(env.iter().copied());
        if let Some(url) = &launch.twilio {
            cmd.env("TwilioAccountSid", TEST_ACCOUNT_SID)
                .env("TwilioAuthToken", TEST_AUTH_TOKEN)
                .env("TwilioPhoneNumber", TEST_FROM)
                .env("TwilioApiBaseUrl", url);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::from(log)).spawn().expect("start durable");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // "local rpc listening on" (if any) comes before "listening on".
        let mut local_rpc = None;
        let base = loop {
            match rx.recv_timeout(DEADLINE) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("local rpc listening on ") {
                        local_rpc = Some(url.to_owned());
                    } else if let Some(url) = line.strip_prefix("listening on ") {
                        break url.to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "durable serve did not start; log:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
            }
        };
        Durable {
            child,
            base,
            data_dir: data_dir.to_owned(),
            log_path,
            http: reqwest::Client::new(),
            local_rpc,
        }
    }

    /// Kills the process without warning (SIGKILL).
    pub(crate) fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").arg("-TERM").arg(&pid).status().unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "durable did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POST with the key header and a JSON body.
    pub(crate) async fn post(&self, url: &str, body: &str) -> reqwest::Response {
        self.http
            .post(url)
            .header("x-functions-key", KEY)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// Starts the sample for `phone` (a JSON document) through the sample's route; returns the
    /// 202 body.
    pub(crate) async fn start_verification(&self, phone_json: &str) -> Value {
        let response = self.post(&self.url("/api/orchestrators/E4_SmsPhoneVerification"), phone_json).await;
        assert_eq!(response.status(), 202, "{:?}", response.text().await);
        response.json().await.unwrap()
    }

    /// Like [`start_verification`](Self::start_verification), owning its argument (for
    /// `join_all`).
    pub(crate) async fn start_verification_owned(&self, phone_json: String) -> Value {
        self.start_verification(&phone_json).await
    }

    /// Raises the answer through the `sendEventPostUri` of `start` (as a client of the original
    /// would); returns the status code.
    pub(crate) async fn answer(&self, start: &Value, body: &str) -> u16 {
        let url = start["sendEventPostUri"].as_str().unwrap().replace("{eventName}", "SmsChallengeResponse");
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    }

    /// Polls the status URL until the instance finishes (deadline-bounded); returns the body.
    pub(crate) async fn finished(&self, start: &Value) -> Value {
        let url = start["statusQueryGetUri"].as_str().unwrap().to_owned();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let response = self.http.get(&url).send().await.unwrap();
            let code = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            if code == 200 {
                return body;
            }
            assert_eq!(code, 202, "{body}");
            assert!(Instant::now() < deadline, "instance did not finish: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The instance's status body.
    pub(crate) async fn status(&self, start: &Value) -> Value {
        self.http
            .get(start["statusQueryGetUri"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Durable {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fake Twilio with the test credentials.
pub(crate) async fn fake_twilio() -> FakeTwilio {
    FakeTwilio::start(FakeTwilioOptions::default()).await.unwrap()
}

/// The code in an SMS body ("Your verification code is 0042").
pub(crate) fn code_of(body: &str) -> String {
    let code =
        body.strip_prefix("Your verification code is ").unwrap_or_else(|| panic!("unexpected SMS: {body}"));
    assert!(code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit()), "{body}");
    code.to_owned()
}

/// The code of the SMS sent to `to` (waits for it).
pub(crate) async fn sms_code(twilio: &FakeTwilio, to: &str) -> String {
    code_of(&twilio.wait_for_message_to(to, DEADLINE).await.unwrap().body)
}

/// A wrong code (different from `code`).
pub(crate) fn wrong(code: &str, n: u32) -> String {
    let c: u32 = code.parse().unwrap();
    format!("\"{:04}\"", (c + 1 + n) % 10_000)
}

/// A fresh phone number per test (the fake filters messages by recipient).
pub(crate) fn phone(n: u32) -> String {
    format!("+1425555{n:04}")
}

/// Instances the server knows (all statuses).
pub(crate) async fn instance_count(durable: &Durable) -> usize {
    let response = durable
        .http
        .get(durable.url("/runtime/webhooks/durabletask/instances?top=1000"))
        .header("x-functions-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Vec<Value>>().await.unwrap().len()
}
