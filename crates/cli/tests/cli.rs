//! The CLI as a client, against a real server running without Twilio (development outbox):
//! every command, its human output at 80 columns (snapshots), its JSON, its exit codes and the
//! advice of its errors.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a run printed and how it ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// `durable` with a clean environment aimed at `server`, in an 80-column "terminal".
fn cli(server: &Durable) -> Command {
    let mut cmd = bare();
    cmd.env("DURABLE_URL", &server.base).env("DURABLE_SYSTEM_KEY", KEY);
    cmd
}

/// `durable` with a clean environment: no server, no key, no saved login.
fn bare() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_durable"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent-home")
        .env("COLUMNS", "80");
    cmd
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn durable(server: &Durable, args: &[&str]) -> Run {
    run(cli(server).args(args))
}

/// Starts a verification for `phone`; returns the id `start` printed.
fn start(server: &Durable, phone: &str, id: Option<&str>) -> String {
    let mut args = vec!["start", "E4_SmsPhoneVerification", "--input", phone];
    if let Some(id) = id {
        args.extend(["--id", id]);
    }
    let run = durable(server, &args).ok();
    let id = run.stdout.trim().to_owned();
    assert!(!id.is_empty() && !id.contains(char::is_whitespace), "start prints the id alone: {}", run.stdout);
    id
}

/// The code the instance sent, taken as the README does.
fn code(server: &Durable, id: &str) -> String {
    let run = run(cli(server)
        .args(["outbox", "--instance", id, "--code", "--wait", "--data-dir"])
        .arg(&server.data_dir))
    .ok();
    run.stdout.trim().to_owned()
}

/// Starts and answers a verification: it completes `true`.
fn verified(server: &Durable, phone: &str, id: Option<&str>) -> String {
    let id = start(server, phone, id);
    let code = code(server, &id);
    durable(server, &["raise", &id, "SmsChallengeResponse", &code]).ok();
    durable(server, &["status", &id, "--wait", "--timeout", "60s"]).ok();
    id
}

fn server() -> (tempfile::TempDir, Durable) {
    let dir = tempfile::tempdir().unwrap();
    let server = Durable::start(&dir.path().join("data"), &Launch::default());
    (dir, server)
}

/// Times and MACs change from run to run; widths stay.
fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", "YYYY-MM-DD hh:mm:ss");
    settings.add_filter(r"\d{2}:\d{2}:\d{2}\.\d{3}", "hh:mm:ss.mmm");
    settings.add_filter(r#""tag":"[0-9a-f]{6,}"#, r#""tag":"<mac>"#);
    settings.add_filter(r#""mac":"[0-9a-f]{6,}"#, r#""mac":"<mac>"#);
    settings
}

#[test]
fn the_cli_drives_a_verification_with_captured_ids_and_codes() {
    let (_dir, server) = server();
    assert!(
        server.log().contains("Twilio is NOT configured"),
        "the server says loudly that SMS go to the outbox"
    );
    let id = start(&server, "+14255550100", None);
    let code = code(&server, &id);
    assert_eq!(code.len(), 4, "{code}");
    let raised = durable(&server, &["raise", &id, "SmsChallengeResponse", &code]).ok();
    assert_eq!(raised.stdout.trim(), format!("raised SmsChallengeResponse on {id}"));
    let done = durable(&server, &["status", &id, "--wait"]).ok();
    assert!(
        done.stdout.contains("Status    Completed") && done.stdout.contains("Output    true"),
        "{}",
        done.stdout
    );

    let status = durable(&server, &["status", &id, "--history", "--json"]).ok().json();
    assert_eq!(
        (status["runtimeStatus"].as_str(), status["output"].as_bool()),
        (Some("Completed"), Some(true))
    );
    assert!(status["historyEvents"].as_array().unwrap().len() >= 4);
    let line = durable(&server, &["status", &id, "--output", "jsonl"]).ok();
    assert_eq!(line.stdout.lines().count(), 1, "jsonl: one line");
    let started =
        durable(&server, &["start", "E4_SmsPhoneVerification", "--input", "+14255550101", "--json"])
            .ok()
            .json();
    assert!(started["statusQueryGetUri"].is_string(), "--json prints the 202 body: {started}");
}

#[test]
fn human_output_fits_80_columns_with_ids_whole() {
    let (_dir, server) = server();
    let done = verified(&server, "+14255550110", Some("0123456789abcdef0123456789abcd01"));
    let stopped = start(&server, "+14255550111", Some("0123456789abcdef0123456789abcd02"));
    durable(&server, &["terminate", &stopped, "--reason", "user gave up", "--wait"]).ok();
    let waiting = start(&server, "+14255550112", Some("0123456789abcdef0123456789abcd03"));
    code(&server, &waiting); // parked on its timer

    let list = durable(&server, &["list"]).ok();
    let status = durable(&server, &["status", &done]).ok();
    let history = durable(&server, &["status", &done, "--history"]).ok();
    for out in [&list, &status, &history] {
        for line in out.stdout.lines() {
            assert!(line.chars().count() <= 80, "{} columns: {line}", line.chars().count());
        }
    }
    for id in [&done, &stopped, &waiting] {
        assert!(
            list.stdout.lines().any(|l| l.starts_with(&format!("{id}  "))),
            "{id} whole:\n{}",
            list.stdout
        );
    }
    assert_eq!(list.stderr.trim(), "3 instances");
    settings().bind(|| {
        insta::assert_snapshot!("list_80", list.stdout);
        insta::assert_snapshot!("status_80", status.stdout);
        insta::assert_snapshot!("history_80", history.stdout);
    });
    let wide = durable(&server, &["list", "--wide"]).ok();
    assert!(
        wide.stdout.contains("UPDATED (UTC)") && wide.stdout.contains("\"user gave up\""),
        "{}",
        wide.stdout
    );
    // Without a terminal and without COLUMNS, nothing is cut (output for other programs).
    let piped = run(cli(&server).arg("list").env_remove("COLUMNS")).ok();
    assert!(piped.stdout.contains("E4_SmsPhoneVerification  "), "{}", piped.stdout);

    let jsonl = durable(&server, &["list", "--output", "jsonl"]).ok();
    let lines: Vec<Value> = jsonl.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(durable(&server, &["list", "--json"]).ok().json().as_array().unwrap().len(), 3);
    let terminated = durable(&server, &["list", "--status", "Terminated,Completed", "--json"]).ok().json();
    assert_eq!(terminated.as_array().unwrap().len(), 2);
}

#[test]
fn colour_only_on_a_terminal_or_when_asked() {
    let (_dir, server) = server();
    verified(&server, "+14255550120", None);
    let green = "\x1b[32mCompleted";
    assert!(!durable(&server, &["list"]).ok().stdout.contains('\x1b'), "a pipe gets no colour");
    assert!(durable(&server, &["list", "--color", "always"]).ok().stdout.contains(green));
    // A terminal.
    assert!(in_terminal(&server, "list", "", &[]).1.contains(green), "a terminal gets colour");
    assert!(
        !in_terminal(&server, "list", "", &[("NO_COLOR", "1")]).1.contains('\x1b'),
        "NO_COLOR turns it off"
    );
    assert!(!in_terminal(&server, "list --color never", "", &[]).1.contains('\x1b'));
}

/// Runs `durable ARGS` on a pseudo-terminal (through `script`), typing `input`; returns the exit
/// code and everything the terminal showed.
fn in_terminal(server: &Durable, args: &str, input: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    use std::io::Write;
    let mut cmd = Command::new("script");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent-home")
        .env("COLUMNS", "80")
        .env("TERM", "xterm")
        .env("DURABLE_URL", &server.base)
        .env("DURABLE_SYSTEM_KEY", KEY)
        .envs(env.iter().copied())
        .args(["-qec", &format!("{} {args}", env!("CARGO_BIN_EXE_durable")), "/dev/null"]);
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn list_says_when_there_are_more() {
    let (_dir, server) = server();
    for n in 0..3 {
        start(&server, &format!("+1425555013{n}"), None);
    }
    let two = durable(&server, &["list", "--limit", "2"]).ok();
    assert_eq!(two.stdout.lines().count(), 3, "header and two rows: {}", two.stdout);
    assert!(two.stderr.contains("there are more: raise --limit or pass --all"), "{}", two.stderr);
    let all = durable(&server, &["list", "--all"]).ok();
    assert_eq!(all.stdout.lines().count(), 4);
    assert!(!all.stderr.contains("more"));
    let json = durable(&server, &["list", "--limit", "2", "--json"]).ok();
    assert_eq!(json.json().as_array().unwrap().len(), 2);
    assert!(json.stderr.contains("there are more"), "the hint is on stderr, JSON stays clean");
}

#[test]
fn waiting_says_how_the_instance_ended_in_the_exit_code() {
    let (_dir, server) = server();
    let done = verified(&server, "+14255550140", None);
    assert_eq!(durable(&server, &["status", &done, "--wait"]).code, 0);
    // Twilio refuses the number (21211, the fake's magic invalid number): the verification fails.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let twilio = rt.block_on(fake_twilio());
    let twilio_dir = tempfile::tempdir().unwrap();
    let launch = Launch { twilio: Some(twilio.base_url()), ..Default::default() };
    let with_twilio = Durable::start(&twilio_dir.path().join("data"), &launch);
    let failed = start(&with_twilio, "+15005550001", None);
    let run = durable(&with_twilio, &["status", &failed, "--wait", "--timeout", "60s"]);
    assert_eq!(run.code, 3, "Failed: {}{}", run.stdout, run.stderr);
    let stopped = start(&server, "+14255550141", None);
    durable(&server, &["terminate", &stopped, "--reason", "user gave up"]).ok();
    assert_eq!(durable(&server, &["status", &stopped, "--wait"]).code, 4);
    let waiting = start(&server, "+14255550142", None);
    let begun = Instant::now();
    let run = durable(&server, &["status", &waiting, "--wait", "--timeout", "300ms"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("did not finish within --timeout 300ms"), "{}", run.stderr);
    assert!(begun.elapsed() < Duration::from_secs(30));
    assert!(
        run.stdout.contains("Status    Running") || run.stdout.contains("Status    Pending"),
        "{}",
        run.stdout
    );
    // terminate --wait returns once it has stopped.
    let run = durable(&server, &["terminate", &waiting, "--wait"]).ok();
    assert_eq!(run.stdout.trim(), format!("terminated {waiting}"));
}

#[test]
fn watch_prints_the_history_as_it_grows_until_the_end() {
    let (_dir, server) = server();
    let id = start(&server, "+14255550150", None);
    let mut watch = cli(&server)
        .args(["watch", &id, "--output", "jsonl"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut events: Vec<Value> = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let next = |events: &mut Vec<Value>| {
        let line =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("watch printed");
        events.push(serde_json::from_str(&line).unwrap());
        events.last().unwrap()["EventType"].as_str().unwrap().to_owned()
    };
    // The instance parks on its timer before anything is raised: watch shows it live.
    while next(&mut events) != "TimerCreated" {}
    let code = code(&server, &id);
    durable(&server, &["raise", &id, "SmsChallengeResponse", &code]).ok();
    while next(&mut events) != "ExecutionCompleted" {}
    let status = wait_exit(&mut watch);
    assert_eq!(status, Some(0), "watch ends with the instance, exit code 0 for Completed");
    let types: Vec<&str> = events.iter().map(|e| e["EventType"].as_str().unwrap()).collect();
    for t in ["ExecutionStarted", "TimerCreated", "EventRaised", "ExecutionCompleted"] {
        assert_eq!(types.iter().filter(|x| **x == t).count(), 1, "{t} once: {types:?}");
    }
    // Text: the whole history of a finished instance, then its end.
    let text = durable(&server, &["watch", &id]).ok();
    assert!(
        text.stdout.contains("TimerCreated")
            && text.stdout.lines().last().unwrap().contains("Completed output=true"),
        "{}",
        text.stdout
    );
    let stopped = start(&server, "+14255550151", None);
    durable(&server, &["terminate", &stopped, "--wait"]).ok();
    assert_eq!(durable(&server, &["watch", &stopped]).code, 4);
    let waiting = start(&server, "+14255550152", None);
    assert_eq!(durable(&server, &["watch", &waiting, "--timeout", "300ms"]).code, 5);
}

fn wait_exit(child: &mut std::process::Child) -> Option<i32> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "the command did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn restart_runs_an_instance_again_and_rewind_explains_itself() {
    let (_dir, server) = server();
    let done = verified(&server, "+14255550160", None);
    let run = durable(&server, &["restart", &done]).ok();
    let new = run.stdout.trim();
    assert!(!new.is_empty() && new != done, "a new id: {}", run.stdout);
    let status = durable(&server, &["status", new, "--json"]).ok().json();
    assert_eq!(status["input"], "+14255550160", "same name and input");
    let same = durable(&server, &["restart", &done, "--same-id"]).ok();
    assert_eq!(same.stdout.trim(), done);
    // The instance runs again under its id: restarting it again with the same id is refused.
    let run = durable(&server, &["restart", &done, "--same-id"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("terminate it first") && run.stderr.contains("--same-id"), "{}", run.stderr);
    let run = durable(&server, &["restart", "no-such-instance"]);
    assert!(run.stderr.contains("no instance 'no-such-instance'"), "{}", run.stderr);

    // Rewind: only for a Failed instance (`rewind_runs_a_failed_verification_again` rewinds one;
    // `rewind_refusals_become_advice` covers every refusal, 501 included).
    let completed = verified(&server, "+14255550161", None);
    let run = durable(&server, &["rewind", &completed]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(&format!("only a Failed instance can be rewound, and {completed} is Completed")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("`durable restart {completed}`")) && !run.stderr.contains("POST"),
        "{}",
        run.stderr
    );
    let run = durable(&server, &["rewind", "no-such-instance"]);
    assert!(run.stderr.contains("no instance 'no-such-instance'"), "{}", run.stderr);
}

/// A stand-in for a server: answers `POST …/rewind` with `status` and any GET with a Completed
/// instance. Returns its base URL.
fn fake_server(status: u16) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request);
            let (code, body) = if request.starts_with("GET") {
                (200, r#"{"instanceId":"x","runtimeStatus":"Completed"}"#.to_owned())
            } else {
                let kind = match status {
                    404 => "InstanceNotFound",
                    501 => "NotImplemented",
                    202 => "",
                    _ => "InstanceNotFailed",
                };
                (
                    status,
                    format!(
                        r#"{{"error":"{kind}","message":"instance is not in a state that allows rewind"}}"#
                    ),
                )
            };
            let body = if code == 202 { String::new() } else { body };
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

#[test]
fn rewind_refusals_become_advice() {
    let rewind = |status: u16| {
        run(bare().args(["rewind", "x", "--reason", "retry", "--key", KEY, "--url", &fake_server(status)]))
    };
    let accepted = rewind(202).ok();
    assert_eq!(accepted.stdout.trim(), "rewind requested for x");
    for status in [409, 412, 410] {
        let refused = rewind(status);
        assert_eq!(refused.code, 1);
        assert_eq!(
            refused.stderr.trim(),
            "error: only a Failed instance can be rewound, and x is Completed; `durable restart x` runs it again from the start",
            "{status}"
        );
    }
    let missing = rewind(404);
    assert!(
        missing.stderr.contains("no instance 'x'") && missing.stderr.contains("durable list"),
        "{}",
        missing.stderr
    );
    let unsupported = rewind(501);
    assert!(
        unsupported.stderr.contains("cannot rewind instances (501)")
            && unsupported.stderr.contains("`durable restart x`"),
        "{}",
        unsupported.stderr
    );
}

#[test]
fn purge_by_filter_lists_asks_and_deletes() {
    let (_dir, server) = server();
    let a = verified(&server, "+14255550170", None);
    let b = verified(&server, "+14255550171", None);
    let running = start(&server, "+14255550172", None);

    // Not on a terminal: no deletion without --yes.
    let run = durable(&server, &["purge", "--status", "Completed"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("this would purge 2 instances") && run.stderr.contains("--yes"),
        "{}",
        run.stderr
    );
    let dry = durable(&server, &["purge", "--status", "Completed", "--dry-run"]).ok();
    assert!(
        dry.stdout.contains(&a) && dry.stdout.contains(&b) && !dry.stdout.contains(&running),
        "{}",
        dry.stdout
    );
    assert!(dry.stderr.contains("2 instances (Completed) would be purged"), "{}", dry.stderr);
    assert_eq!(
        durable(&server, &["list", "--json"]).ok().json().as_array().unwrap().len(),
        3,
        "nothing deleted"
    );

    // On a terminal: asked; "n" keeps them, "y" deletes them.
    let on_terminal = |answer: &str| in_terminal(&server, "purge --status Completed", answer, &[]);
    let (_, said) = on_terminal("n\n");
    assert!(said.contains("Purge 2 instances (Completed) and their history? [y/N]"), "{said}");
    assert!(said.contains("nothing was purged"), "{said}");
    assert_eq!(durable(&server, &["list", "--json"]).ok().json().as_array().unwrap().len(), 3);
    let (code, said) = on_terminal("y\n");
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("purged 2 instances"), "{said}");
    assert_eq!(durable(&server, &["list", "--json"]).ok().json().as_array().unwrap().len(), 1);

    // Unfinished: CLI advice with the flag, then --force.
    let run = durable(&server, &["purge", &running]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--force") && !run.stderr.contains("force=true"), "{}", run.stderr);
    let run = durable(&server, &["purge", "--status", "Running", "--yes"]);
    assert!(run.stderr.contains("--force") && !run.stderr.contains("force=true"), "{}", run.stderr);
    durable(&server, &["purge", &running, "--force"]).ok();
    let run = durable(&server, &["purge", "--status", "Completed", "--yes"]).ok();
    assert!(run.stderr.contains("nothing to purge"), "{}", run.stderr);
    let run = durable(&server, &["purge"]);
    assert!(run.stderr.contains("--status") && run.stderr.contains("--dry-run"), "{}", run.stderr);
}

#[test]
fn event_data_and_input_that_are_not_json_are_sent_as_strings() {
    let (_dir, server) = server();
    // `+1…` and `0042` are not JSON: they travel as strings (the sample accepts "0042").
    let id = start(&server, "+14255550180", None);
    let status = durable(&server, &["status", &id, "--json"]).ok().json();
    assert_eq!(status["input"], "+14255550180");
    let run = durable(&server, &["raise", &id, "SmsChallengeResponse", "0042"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = durable(&server, &["raise", &id, "SmsChallengeResponse", "abc"]);
    assert!(run.code == 1 && run.stderr.contains("the event was refused"), "not a code: {}", run.stderr);
    let quoted = start(&server, "\"+14255550181\"", None);
    assert_eq!(durable(&server, &["status", &quoted, "--json"]).ok().json()["input"], "+14255550181");
}

#[test]
fn errors_say_which_flag_or_command_fixes_them() {
    let (dir, server) = server();
    // Nothing listens: is the server running?
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let refused = run(bare().args(["list", "--url", &format!("http://{closed}")]));
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains(&format!("is `durable serve` running at http://{closed}?")),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--url"), "{}", refused.stderr);

    // No key anywhere: every way to give one is named, and where we looked.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let out = run_in(bare().args(["list", "--url", &server.base]), &elsewhere);
    assert_eq!(out.code, 1);
    for fix in
        ["--key", "DURABLE_SYSTEM_KEY", "--data-dir", "durable login", "durable-data/system.key: not found"]
    {
        assert!(out.stderr.contains(fix), "{fix}: {}", out.stderr);
    }
    assert!(
        !out.stderr.contains("query parameter") && !out.stderr.contains("x-functions-key"),
        "{}",
        out.stderr
    );
    let wrong = durable(&server, &["list", "--key", "wrong"]);
    assert!(wrong.stderr.contains("refused the key from --key/DURABLE_SYSTEM_KEY"), "{}", wrong.stderr);

    let missing = durable(&server, &["status", "no-such-instance"]);
    assert!(
        missing.stderr.contains("no instance 'no-such-instance'")
            && missing.stderr.contains("`durable list`"),
        "{}",
        missing.stderr
    );
    let done = verified(&server, "+14255550190", None);
    let late = durable(&server, &["raise", &done, "SmsChallengeResponse", "1234"]);
    assert!(late.stderr.contains("no longer takes events"), "{}", late.stderr);
    let late = durable(&server, &["terminate", &done]);
    assert!(late.stderr.contains("nothing to terminate"), "{}", late.stderr);
    let unknown = durable(&server, &["start", "NoSuchOrchestrator"]);
    assert!(unknown.stderr.contains("registered: E4_SmsPhoneVerification"), "{}", unknown.stderr);
    let busy = start(&server, "+14255550191", Some("busy"));
    let again =
        durable(&server, &["start", "E4_SmsPhoneVerification", "--input", "+14255550192", "--id", &busy]);
    assert!(
        again.stderr.contains("pick another --id") && again.stderr.contains("durable terminate busy"),
        "{}",
        again.stderr
    );
    let bad_time = durable(&server, &["list", "--created-from", "yesterday"]);
    assert!(bad_time.code == 1 && bad_time.stderr.contains("--created-from"), "{}", bad_time.stderr);
    let bad_url = run(bare().args(["list", "--url", "127.0.0.1:7071"]));
    assert!(
        bad_url.stderr.contains("--url") && bad_url.stderr.contains("http://127.0.0.1:7071"),
        "{}",
        bad_url.stderr
    );
    // One line, no repeated causes.
    for out in [&wrong, &missing, &late, &unknown] {
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    }
}

fn run_in(cmd: &mut Command, dir: &Path) -> Run {
    run(cmd.current_dir(dir))
}

#[test]
fn the_key_is_found_from_any_directory() {
    let (dir, server) = server();
    // The server runs with DURABLE_SYSTEM_KEY; give its key a data directory of its own.
    let keys = dir.path().join("server-data");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("system.key"), format!("{KEY}\n")).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let list =
        |cmd: &mut Command| run_in(cmd.args(["list", "--url", &server.base]).env("HOME", &home), &elsewhere);

    assert_eq!(list(&mut bare()).code, 1, "no key from here");
    assert_eq!(list(bare().env("DURABLE_DATA_DIR", &keys)).code, 0);
    assert_eq!(list(bare().env("DURABLE_SYSTEM_KEY", KEY)).code, 0);
    let flag = run_in(
        bare().args(["list", "--url", &server.base, "--data-dir"]).arg(&keys).env("HOME", &home),
        &elsewhere,
    );
    assert_eq!(flag.code, 0, "{}", flag.stderr);
    // From the server's directory, ./durable-data is found.
    std::fs::create_dir_all(dir.path().join("durable-data")).unwrap();
    std::fs::copy(keys.join("system.key"), dir.path().join("durable-data/system.key")).unwrap();
    assert_eq!(run_in(bare().args(["list", "--url", &server.base]).env("HOME", &home), dir.path()).code, 0);

    // login checks and saves URL and key; then any directory works, with no flags at all.
    let bad = run_in(
        bare().args(["login", "--url", &server.base, "--key", "wrong"]).env("HOME", &home),
        &elsewhere,
    );
    assert_eq!(bad.code, 1, "a key the server refuses is not saved");
    let login = run_in(bare().args(["login", "--url", &server.base]).env("HOME", &home), dir.path()).ok();
    assert!(login.stdout.contains(&format!("logged in to {}", server.base)), "{}", login.stdout);
    let saved = home.join(".config/durable/client.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let anywhere = run_in(bare().arg("list").env("HOME", &home), &elsewhere);
    assert_eq!(anywhere.code, 0, "{}", anywhere.stderr);
    let xdg = dir.path().join("xdg");
    let other = run_in(bare().arg("list").env("HOME", &home).env("XDG_CONFIG_HOME", &xdg), &elsewhere);
    assert_eq!(other.code, 1, "XDG_CONFIG_HOME moves the file");
    run_in(bare().arg("logout").env("HOME", &home), &elsewhere).ok();
    assert!(!saved.exists());
    assert_eq!(run_in(bare().arg("list").env("HOME", &home), &elsewhere).code, 1);
}

#[test]
fn key_creates_a_key_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run1 = run(bare().arg("key").arg("--data-dir").arg(&data));
    assert_eq!(run1.code, 1);
    assert!(run1.stderr.contains("--create") && run1.stderr.contains("durable serve"), "{}", run1.stderr);
    assert!(!data.exists(), "nothing created");
    let created = run(bare().args(["key", "--create", "--data-dir"]).arg(&data)).ok();
    let key = created.stdout.trim().to_owned();
    assert_eq!(key.len(), 64);
    assert!(created.stderr.contains("created"));
    assert_eq!(run(bare().arg("key").arg("--data-dir").arg(&data)).ok().stdout.trim(), key);
    assert_eq!(run(bare().arg("key").env("DURABLE_DATA_DIR", &data)).ok().stdout.trim(), key);
}

#[test]
fn outbox_explains_an_empty_or_missing_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let run1 = run(bare().args(["outbox", "--data-dir"]).arg(dir.path().join("nowhere")));
    assert!(run1.code == 1 && run1.stderr.contains("--data-dir"), "{}", run1.stderr);
    let begun = Instant::now();
    let run2 = run(bare()
        .args(["outbox", "--code", "--instance", "x", "--wait", "300ms", "--data-dir"])
        .arg(dir.path()));
    assert_eq!(run2.code, 1);
    assert!(
        run2.stderr.contains("no SMS from instance x") && run2.stderr.contains("within 300ms"),
        "{}",
        run2.stderr
    );
    assert!(begun.elapsed() < Duration::from_secs(30));
    let empty = run(bare().args(["outbox", "--data-dir"]).arg(dir.path())).ok();
    assert!(empty.stderr.contains("is empty"));
}

/// Issue 9, defect 5: `durable list | head -1` panicked ("failed printing to stdout: Broken
/// pipe") once `head` had gone.
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let (_dir, server) = server();
    durable(&server, &["start", "E4_SmsPhoneVerification", "--input", "\"+14255550195\"", "--json"]).ok();
    for args in [&["list"][..], &["list", "--json"], &["status", "--help"], &["completions", "bash"]] {
        let mut child =
            cli(&server).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // The reader goes away before anything is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "durable {args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "durable {args:?}: {stderr}");
    }
}

#[test]
fn serve_finds_a_port_clash_before_creating_anything() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("new-data");
    let out = run(bare().args(["serve", "--port", &port, "--data-dir"]).arg(&data));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{}", out.stderr);
    assert!(out.stderr.contains("--port"), "{}", out.stderr);
    let error_line = out.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert_eq!(error_line.matches("in use").count(), 1, "said once: {error_line}");
    assert!(!data.exists(), "no data directory, keys or database for a server that cannot start");
}

/// `durable` aimed at the server at `base`, run off the async runtime (a fake Twilio in this
/// process must keep answering meanwhile).
async fn durable_at(base: &str, args: &[&str]) -> Run {
    let (base, args): (String, Vec<String>) =
        (base.to_owned(), args.iter().map(|a| (*a).to_owned()).collect());
    tokio::task::spawn_blocking(move || {
        let mut cmd = bare();
        cmd.env("DURABLE_URL", base).env("DURABLE_SYSTEM_KEY", KEY).args(args);
        run(&mut cmd)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_runs_a_failed_verification_again() {
    // Twilio refuses the number (a trial account): the SMS activity fails for good, and so does
    // the verification. Once the number is allowed, rewind sends the SMS again.
    let twilio = fake_twilio().await;
    twilio.set_trial_allow_list(Some(vec![]));
    let dir = tempfile::tempdir().unwrap();
    let launch = Launch { twilio: Some(twilio.base_url()), ..Default::default() };
    let server = Durable::start(&dir.path().join("data"), &launch);
    let to = phone(200);
    let started = durable_at(&server.base, &["start", "E4_SmsPhoneVerification", "--input", &to]).await.ok();
    let id = started.stdout.trim().to_owned();
    let failed = durable_at(&server.base, &["status", &id, "--wait", "--timeout", "60s"]).await;
    assert_eq!(failed.code, 3, "Failed first: {}{}", failed.stdout, failed.stderr);

    twilio.set_trial_allow_list(None);
    let rewound = durable_at(&server.base, &["rewind", &id, "--reason", "number allowed"]).await.ok();
    assert_eq!(rewound.stdout.trim(), format!("rewind requested for {id}"));
    let code = sms_code(&twilio, &to).await;
    durable_at(&server.base, &["raise", &id, "SmsChallengeResponse", &code]).await.ok();
    let done =
        durable_at(&server.base, &["status", &id, "--wait", "--timeout", "60s", "--history"]).await.ok();
    assert!(
        done.stdout.contains("Status    Completed") && done.stdout.contains("Output    true"),
        "{}",
        done.stdout
    );
    assert!(done.stdout.contains("ExecutionRewound"), "the history says it was rewound: {}", done.stdout);
    // Rewinding it again: it is not Failed any more.
    let again = durable_at(&server.base, &["rewind", &id]).await;
    assert!(
        again.stderr.contains(&format!("only a Failed instance can be rewound, and {id} is Completed")),
        "{}",
        again.stderr
    );
}
