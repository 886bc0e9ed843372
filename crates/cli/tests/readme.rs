//! README.md is what a newcomer copies: its shell walkthrough runs here against the real
//! binary, its Rust example is `examples/approval.rs`, and its config file starts a server.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const README: &str = include_str!("../../../README.md");
const DEADLINE: Duration = Duration::from_secs(60);
/// The address the README's commands use (`durable serve`'s default).
const README_ADDRESS: &str = "127.0.0.1:7071";

/// A fenced code block with the `<!-- readme-test: … -->` marker on the line before it, if any.
struct Block {
    marker: Option<String>,
    lang: String,
    code: String,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    let mut previous = "";
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let marker = previous
                .trim()
                .strip_prefix("<!-- readme-test:")
                .and_then(|m| m.strip_suffix("-->"))
                .map(|m| m.trim().to_owned());
            let mut code = String::new();
            for line in lines.by_ref() {
                if line.starts_with("```") {
                    break;
                }
                code.push_str(line);
                code.push('\n');
            }
            blocks.push(Block { marker, lang: lang.trim().to_owned(), code });
            previous = "";
        } else {
            previous = line;
        }
    }
    blocks
}

/// The `durable` binary's directory first on the PATH, as after `cargo install`.
fn path_with_durable() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_durable")).parent().unwrap().display().to_string();
    format!("{bin}:{}", std::env::var("PATH").unwrap_or_default())
}

/// A command with a clean environment: a fresh HOME (no saved login), `durable` on the PATH.
fn clean(mut cmd: Command, dir: &Path) -> Command {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    cmd.current_dir(dir).env_clear().env("PATH", path_with_durable()).env("HOME", home);
    cmd
}

/// Spawns `cmd` and waits for its `listening on URL` line on stdout.
fn listening(mut cmd: Command, log: &Path) -> (Child, String) {
    let log_file = std::fs::File::create(log).unwrap();
    let mut child = cmd.stdout(Stdio::piped()).stderr(log_file).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(url) => (child, url),
        Err(_) => {
            let _ = child.kill();
            panic!("the server did not start: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let all = blocks(README);
    let servers: Vec<&Block> = all.iter().filter(|b| b.marker.as_deref() == Some("background")).collect();
    let steps: Vec<&Block> = all.iter().filter(|b| b.marker.as_deref() == Some("run")).collect();
    assert_eq!(servers.len(), 1, "one server block");
    assert!(steps.len() >= 4, "the walkthrough's blocks are marked to run ({} found)", steps.len());
    assert!(steps.iter().chain(&servers).all(|b| b.lang == "sh"));

    let dir = tempfile::tempdir().unwrap();
    // The server block as written, in its own "terminal". The only change: DURABLE_PORT=0, so
    // tests can run side by side; the client blocks then get its address in place of
    // 127.0.0.1:7071 (in DURABLE_URL, and in the curl URLs).
    let server_line = servers[0].code.trim();
    assert!(!server_line.contains('\n'), "the server block is one command");
    let mut cmd = clean(Command::new("bash"), dir.path());
    cmd.arg("-c").arg(format!("exec {server_line}")).env("DURABLE_PORT", "0");
    let (child, url) = listening(cmd, &dir.path().join("server.log"));
    let _server = Killed(child);
    let address = url.trim_start_matches("http://");

    let script = steps.iter().map(|b| b.code.as_str()).collect::<Vec<_>>().join("\n");
    assert!(script.contains(README_ADDRESS), "the curl steps use the default address");
    let script = format!("set -euo pipefail\n{}", script.replace(README_ADDRESS, address));
    let mut cmd = clean(Command::new("bash"), dir.path());
    cmd.arg("-c").arg(&script).env("DURABLE_URL", &url);
    let out = run_with_deadline(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walkthrough failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log\n{}",
        out.status,
        std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
    );
    // What the README promises.
    assert!(stdout.contains("Status    Completed") && stdout.contains("Output    true"), "{stdout}");
    assert!(stdout.contains("ExecutionCompleted"), "the history: {stdout}");
    assert!(stdout.contains("terminated "), "{stdout}");
    assert!(stdout.contains("purged "), "{stdout}");
    assert!(stdout.contains("HTTP/1.1 202 Accepted"), "{stdout}");
    assert!(stdout.contains("\"runtimeStatus\""), "{stdout}");
}

fn run_with_deadline(mut cmd: Command) -> std::process::Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("the walkthrough did not finish within {DEADLINE:?}");
        }
    }
}

#[test]
fn the_readme_rust_example_is_examples_approval_rs() {
    let rust: Vec<Block> = blocks(README).into_iter().filter(|b| b.lang == "rust").collect();
    assert_eq!(rust.len(), 1, "one Rust example");
    let example = include_str!("../../../examples/approval.rs");
    assert!(
        rust[0].code == example,
        "README.md's Rust block must be examples/approval.rs exactly (CI builds the example); copy the file into the README"
    );
}

#[test]
fn the_readme_config_file_starts_a_server() {
    let toml: Vec<Block> = blocks(README).into_iter().filter(|b| b.lang == "toml").collect();
    assert_eq!(toml.len(), 1, "one config example");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("durable.toml"), &toml[0].code).unwrap();
    // As written, except the port (tests run side by side).
    let mut cmd = clean(Command::new(env!("CARGO_BIN_EXE_durable")), dir.path());
    cmd.args(["serve", "--config", "durable.toml", "--port", "0"]);
    let (child, url) = listening(cmd, &dir.path().join("server.log"));
    let _server = Killed(child);
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("code_digits=6"), "the [verification] section applies: {log}");

    // The task hub of [server.http] is in the management URLs.
    let out = clean(Command::new(env!("CARGO_BIN_EXE_durable")), dir.path())
        .args(["start", "E4_SmsPhoneVerification", "--input", "+14255550123", "--json", "--url", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let started: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(started["statusQueryGetUri"].as_str().unwrap().contains("taskHub=Verification"), "{started}");
    let deadline = Instant::now() + DEADLINE;
    while !dir.path().join("durable-data").join("durable.db").exists() {
        assert!(Instant::now() < deadline, "no database in the data directory the file names");
        std::thread::sleep(Duration::from_millis(20));
    }
}
