//! The command line's help, version and completions, from the real binary at a fixed width
//! (snapshots in `tests/snapshots/`; review changes with `cargo insta review`, or accept them
//! with `INSTA_UPDATE=always`).

use assert_cmd::Command;

/// The binary with a clean environment and an 80-column "terminal".
fn durable() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_durable"));
    cmd.env_clear().env("COLUMNS", "80").env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Every subcommand, from the top-level help.
fn subcommands() -> Vec<String> {
    let help = stdout(durable().arg("--help"));
    let list = help.split("Commands:\n").nth(1).unwrap().split("\n\n").next().unwrap();
    list.lines()
        .filter_map(|l| l.strip_prefix("  ").filter(|l| !l.starts_with(' ')))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn help_of_every_command_at_80_columns() {
    insta::assert_snapshot!("help", stdout(durable().arg("--help")));
    let commands = subcommands();
    assert!(commands.len() >= 17, "{commands:?}");
    for command in commands {
        let help = stdout(durable().args([command.as_str(), "--help"]));
        insta::assert_snapshot!(format!("help_{command}"), help);
    }
}

#[test]
fn every_command_has_examples_and_names_its_environment_without_values() {
    for command in subcommands() {
        let help =
            stdout(durable().args([command.as_str(), "--help"]).env("DURABLE_URL", "http://secret.invalid"));
        let examples = help.split("Examples:\n").nth(1).unwrap_or_default();
        assert!(
            examples.lines().next().is_some_and(|l| l.starts_with("  ") && l.contains("durable ")),
            "`durable {command} --help` has no examples"
        );
        // `[env: DURABLE_URL=]` looked like an empty value; a set value must not show either.
        assert!(
            !help.contains("=]") && !help.contains("secret.invalid"),
            "durable {command} --help:\n{help}"
        );
        for line in help.lines() {
            assert!(line.chars().count() <= 80 || line.starts_with("  durable "), "wider than 80: {line}");
        }
    }
}

#[test]
fn version_names_the_commit() {
    let version = stdout(durable().arg("--version"));
    let rest =
        version.trim().strip_prefix(&format!("durable {} (commit ", env!("CARGO_PKG_VERSION"))).unwrap();
    let commit = rest.strip_suffix(')').unwrap();
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{version}"
    );
}

#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _durable"),
        ("zsh", "#compdef durable"),
        ("fish", "complete -c durable"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[durable]"),
    ] {
        let script = stdout(durable().args(["completions", shell]));
        assert!(script.contains(marker), "{shell}: {}", &script[..script.len().min(300)]);
        assert!(
            script.contains("watch") && script.contains("created-from"),
            "{shell} completes subcommands and flags"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    let out = durable().args(["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("<ID>"));
    let out = durable().args(["list", "--status", "Done"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: Pending, Running"));
    let out = durable().args(["list", "--json", "--output", "jsonl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--json is short for --output json: not both");
    // No command: the help, on stderr, as a usage error.
    let out = durable().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Commands:"));
}
