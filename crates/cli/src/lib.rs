//! The `durable` command: `durable serve` runs a node (engine, Durable Functions compatible HTTP
//! API, phone-verification sample, embedded SQLite); the other commands are clients of a
//! server's HTTP API, plus a few that read the server's data directory (`outbox`, `key`).
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     durable_cli::main()
//! }
//! ```

mod args;
mod config;
mod exit;
mod history;
mod instances;
mod list;
mod local;
mod outbox;
mod output;
mod remote;
mod serve;
mod table;

use args::{Cli, Command};
use clap::{CommandFactory, FromArgMatches};
use instances::Verb;
use output::{BOLD, RED, is_broken_pipe, paint};
use std::io::Write;
use std::process::ExitCode;

/// Runs the command line; returns the process exit code (see `durable --help`).
pub fn main() -> ExitCode {
    let command = command();
    let cli = match command.clone().try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        // Help and --version exit 0, usage errors 2; a closed pipe is not an error here either.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.exit_code() == 0 { exit::OK } else { exit::USAGE });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            report(&anyhow::Error::new(e).context("cannot start the async runtime"));
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(run(cli.command, command)) {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`durable list | head -1`): nothing left to say to anyone.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::from(exit::ERROR)
        }
    }
}

/// The command line, with environment variables named in `--help` but never their values
/// (`[env: DURABLE_URL]`, not `[env: DURABLE_URL=]` or a secret).
fn command() -> clap::Command {
    fn hide_env_values(command: clap::Command) -> clap::Command {
        command.mut_args(|arg| arg.hide_env_values(true)).mut_subcommands(hide_env_values)
    }
    hide_env_values(Cli::command())
}

async fn run(command: Command, cli: clap::Command) -> anyhow::Result<u8> {
    match command {
        Command::Serve(args) => serve::run(args).await.map(|()| exit::OK),
        Command::Bench(args) => durable_bench::run(args).await.map(|()| exit::OK),
        Command::Start(args) => instances::start(args).await,
        Command::Status(args) => instances::status(args).await,
        Command::Watch(args) => history::watch(args).await,
        Command::Raise(args) => instances::raise(args).await,
        Command::Terminate(args) => instances::terminate(args).await,
        Command::Suspend(args) => instances::lifecycle(Verb::Suspend, args).await,
        Command::Resume(args) => instances::lifecycle(Verb::Resume, args).await,
        Command::Rewind(args) => instances::lifecycle(Verb::Rewind, args).await,
        Command::Restart(args) => instances::restart(args).await,
        Command::List(args) => list::list(args).await,
        Command::Purge(args) => list::purge(args).await,
        Command::Outbox(args) => local::outbox(args).await,
        Command::Key(args) => local::key(args),
        Command::Login(args) => local::login(args).await,
        Command::Logout => local::logout(),
        Command::Completions(args) => local::completions(args, cli),
    }
}

/// `error: …` on stderr: the whole chain of causes on one line, each said once (a cause whose
/// text its context already quotes is left out).
fn report(error: &anyhow::Error) {
    let message = error.chain().map(ToString::to_string).fold(String::new(), |message, cause| {
        if message.contains(&cause) {
            message
        } else if message.is_empty() {
            cause
        } else {
            format!("{message}: {cause}")
        }
    });
    let prefix = paint(output::stderr_color(), Some(&format!("{BOLD}{RED}")), "error");
    let _ = writeln!(std::io::stderr().lock(), "{prefix}: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn usage_errors_exit_with_the_documented_code() {
        let e = command().try_get_matches_from(["durable", "no-such-command"]).unwrap_err();
        assert_eq!(e.exit_code(), i32::from(exit::USAGE));
    }

    #[test]
    fn a_cause_already_quoted_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use (os error 98)");
        let e = anyhow::Error::new(io).context(
            "cannot listen on 127.0.0.1:7071: Address already in use (os error 98); pick another --port",
        );
        let chain: String = e.chain().map(ToString::to_string).fold(String::new(), |m, c| {
            if m.contains(&c) {
                m
            } else if m.is_empty() {
                c
            } else {
                format!("{m}: {c}")
            }
        });
        assert_eq!(chain.matches("Address already in use").count(), 1, "{chain}");
    }
}
