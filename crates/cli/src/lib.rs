//! The `durable` command: `durable serve` runs a node (engine, Durable Functions compatible HTTP
//! API, phone-verification sample, embedded SQLite); the other commands are clients of a
//! server's HTTP API.
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     durable_cli::main()
//! }
//! ```

mod args;
mod outbox;
mod remote;
mod serve;

use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Bench(args) => durable_bench::run(args).await,
        Command::Start { name, input, id, remote } => {
            remote::start(&remote::Api::new(&remote)?, &name, input.as_deref(), id.as_deref()).await
        }
        Command::Status { id, history, remote } => {
            remote::status(&remote::Api::new(&remote)?, &id, history).await
        }
        Command::Raise { id, event, data, remote } => {
            remote::raise(&remote::Api::new(&remote)?, &id, &event, &data).await
        }
        Command::Terminate { id, reason, remote } => {
            remote::lifecycle(&remote::Api::new(&remote)?, &id, "terminate", reason.as_deref()).await
        }
        Command::Suspend { id, reason, remote } => {
            remote::lifecycle(&remote::Api::new(&remote)?, &id, "suspend", reason.as_deref()).await
        }
        Command::Resume { id, reason, remote } => {
            remote::lifecycle(&remote::Api::new(&remote)?, &id, "resume", reason.as_deref()).await
        }
        Command::List { statuses, prefix, created_from, created_to, top, all, remote } => {
            let args = remote::ListArgs {
                statuses: &statuses,
                prefix: prefix.as_deref(),
                created_from: created_from.as_deref(),
                created_to: created_to.as_deref(),
                top,
                all,
            };
            remote::list(&remote::Api::new(&remote)?, args).await
        }
        Command::Purge { id, force, created_from, created_to, statuses, remote } => {
            let args = remote::PurgeArgs {
                id: id.as_deref(),
                force,
                created_from: created_from.as_deref(),
                created_to: created_to.as_deref(),
                statuses: &statuses,
            };
            remote::purge(&remote::Api::new(&remote)?, args).await
        }
        Command::Outbox { data_dir, to, json } => outbox(&data_dir, to.as_deref(), json),
        Command::Key { data_dir } => {
            std::fs::create_dir_all(&data_dir)?;
            println!("{}", durable_server::keys::load_or_create_system_key(&data_dir)?);
            Ok(())
        }
    }
}

fn outbox(data_dir: &std::path::Path, to: Option<&str>, json: bool) -> anyhow::Result<()> {
    let messages: Vec<_> = durable_phone_verification::DevOutbox::read(data_dir)?
        .into_iter()
        .filter(|m| to.is_none_or(|t| m.to == t))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&messages)?);
        return Ok(());
    }
    if messages.is_empty() {
        eprintln!("the development outbox in {} is empty", data_dir.display());
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header(vec!["Sent", "To", "Message"]);
    for m in messages {
        table.add_row(vec![m.sent_at, m.to, m.body]);
    }
    println!("{table}");
    Ok(())
}
