//! The CLI as a client, against a real server running without Twilio (development outbox).

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

fn durable(server: &Durable, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_durable"))
        .args(args)
        .arg("--url")
        .arg(&server.base)
        .env("DURABLE_SYSTEM_KEY", KEY)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(server: &Durable, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, stdout, stderr) = durable(server, &all);
    assert!(ok, "durable {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn outbox(data_dir: &std::path::Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_durable"))
        .args(["outbox", "--json", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_a_verification_through_the_http_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Durable::start(&data, &Launch::default());
    assert!(
        server.log().contains("Twilio is NOT configured"),
        "the server says loudly that SMS go to the outbox"
    );

    let started = json(&server, &["start", "E4_SmsPhoneVerification", "--input", "\"+14255550100\""]);
    let id = started["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + DEADLINE;
    let code = loop {
        if let Some(m) = outbox(&data).into_iter().find(|m| m["to"] == "+14255550100") {
            break code_of(m["body"].as_str().unwrap());
        }
        assert!(Instant::now() < deadline, "no SMS in the outbox");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (ok, stdout, stderr) =
        durable(&server, &["raise", &id, "SmsChallengeResponse", &format!("\"{code}\"")]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("raised SmsChallengeResponse"));
    let status = loop {
        let s = json(&server, &["status", &id, "--history"]);
        if s["runtimeStatus"] == "Completed" {
            break s;
        }
        assert!(Instant::now() < deadline, "not completed: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status["output"], true);
    assert!(status["historyEvents"].as_array().unwrap().len() >= 4);

    // Human-readable output.
    let (ok, stdout, _) = durable(&server, &["status", &id]);
    assert!(ok && stdout.contains("runtimeStatus:") && stdout.contains("Completed"), "{stdout}");

    // A second instance, terminated; then listing and purging.
    let other = json(
        &server,
        &["start", "E4_SmsPhoneVerification", "--input", "\"+14255550101\"", "--id", "cli-other"],
    );
    assert_eq!(other["id"], "cli-other");
    let (ok, _, stderr) = durable(&server, &["terminate", "cli-other", "--reason", "changed my mind"]);
    assert!(ok, "{stderr}");
    let terminated = loop {
        let s = json(&server, &["status", "cli-other"]);
        if s["runtimeStatus"] == "Terminated" {
            break s;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(terminated["output"], "changed my mind");
    let listed = json(&server, &["list", "--all", "--top", "1"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let completed = json(&server, &["list", "--status", "Completed"]);
    assert_eq!(completed.as_array().unwrap().len(), 1);
    let purged = json(&server, &["purge", "cli-other"]);
    assert_eq!(purged["instancesDeleted"], 1);

    // Errors are explained and exit non-zero.
    let (ok, _, stderr) = durable(&server, &["status", "cli-other"]);
    assert!(!ok && stderr.contains("404"), "{stderr}");
    let (ok, _, stderr) = durable(&server, &["raise", &id, "SmsChallengeResponse", "not json"]);
    assert!(!ok && stderr.contains("must be JSON"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_durable"))
        .args(["status", &id, "--url", &server.base])
        .env_remove("DURABLE_SYSTEM_KEY")
        .env("DURABLE_DATA_DIR", dir.path().join("nowhere"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[test]
fn the_key_command_creates_and_prints_the_system_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_durable"))
            .args(["key", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let first = run();
    assert_eq!(first.len(), 64);
    assert_eq!(run(), first);
}
