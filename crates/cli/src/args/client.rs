//! Arguments of the client commands (everything but `serve` and `bench`). Every command's
//! `--help` ends with examples that can be pasted as they are.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

pub(crate) const TOP_HELP: &str = "\
Quick start:
  durable serve          # in a terminal of its own: a server on 127.0.0.1:7071
  ID=$(durable start E4_SmsPhoneVerification --input +14255550123)
  durable watch \"$ID\"

The client commands find the server with --url (DURABLE_URL) and its key with
--key (DURABLE_SYSTEM_KEY), --data-dir (DURABLE_DATA_DIR), `durable login`, or
./durable-data/system.key.

Exit codes:
  0  success (with --wait and watch: the instance Completed)
  1  error (the message says what to do)
  2  invalid command line
  3  the instance Failed (status --wait, watch)
  4  the instance was Terminated (status --wait, watch)
  5  --timeout passed first (status --wait, watch, terminate --wait)";

pub(crate) const BENCH_EXAMPLES: &str = "\
Examples:
  durable bench verify -n 10000
  durable bench latency --via-http
  durable bench park -n 100000 --restart-check --data-dir /mnt/disk/bench";

/// Where the server is and how to authenticate.
#[derive(Debug, Args)]
#[command(next_help_heading = "Connection")]
pub(crate) struct RemoteArgs {
    /// Base URL of the server [default: the URL saved by `durable login`, else
    /// http://127.0.0.1:7071].
    #[arg(long, env = "DURABLE_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The server's system key [default: from --data-dir, else the key saved by `durable login`,
    /// else ./durable-data/system.key].
    #[arg(long, env = "DURABLE_SYSTEM_KEY", value_name = "KEY")]
    pub key: Option<String>,
    /// The server's data directory, to read its system.key.
    #[arg(long, env = "DURABLE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// How results are printed.
#[derive(Debug, Args)]
#[command(next_help_heading = "Output")]
pub(crate) struct OutputArgs {
    /// text for people; json (one document) or jsonl (one JSON value per line) for scripts.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Text, value_name = "FORMAT")]
    pub output: Format,
    /// Short for --output json.
    #[arg(long, conflicts_with = "output")]
    pub json: bool,
    /// Colour statuses: auto (when stdout is a terminal and NO_COLOR is not set), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

impl OutputArgs {
    /// The format asked for, `--json` included.
    pub(crate) fn format(&self) -> Format {
        if self.json { Format::Json } else { self.output }
    }
}

// The enums below have no doc comments on purpose: the flags' help says it all, and clap then
// lists the values on one line.

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
    Jsonl,
}

/// When to colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Runtime statuses, as the API names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "PascalCase")]
pub(crate) enum StatusArg {
    Pending,
    Running,
    Completed,
    Failed,
    Terminated,
    Suspended,
    ContinuedAsNew,
}

impl StatusArg {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StatusArg::Pending => "Pending",
            StatusArg::Running => "Running",
            StatusArg::Completed => "Completed",
            StatusArg::Failed => "Failed",
            StatusArg::Terminated => "Terminated",
            StatusArg::Suspended => "Suspended",
            StatusArg::ContinuedAsNew => "ContinuedAsNew",
        }
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    durable_phone_verification::parse_duration(text)
}

/// How JSON-or-text arguments are read (shared wording of `start --input` and `raise`).
const JSON_OR_TEXT: &str = "Sent as JSON when it is JSON (42, true, null, \"text\", {\"a\": 1}); \
    anything else is sent as a JSON string, so 0042 and +14255550123 arrive as \"0042\" and \
    \"+14255550123\". Quote a string that looks like JSON: '\"42\"', or use --string.";

pub(crate) const START_EXAMPLES: &str = "\
Examples:
  durable start E4_SmsPhoneVerification --input +14255550123
  ID=$(durable start E4_SmsPhoneVerification --input +14255550123)
  durable start Approval --id expense-42 --input '{\"amount\": 42}'
  durable start E4_SmsPhoneVerification --input +14255550123 --json";

/// `durable start`.
#[derive(Debug, Args)]
#[command(after_help = START_EXAMPLES)]
pub(crate) struct StartArgs {
    /// Orchestrator name, e.g. E4_SmsPhoneVerification.
    pub name: String,
    /// The orchestrator's input.
    #[arg(long, long_help = format!("The orchestrator's input. {JSON_OR_TEXT}"))]
    pub input: Option<String>,
    /// Send --input as a JSON string even if it looks like JSON.
    #[arg(long, requires = "input")]
    pub string: bool,
    /// Instance id [default: a new random one]. A finished instance with this id is replaced.
    #[arg(long)]
    pub id: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub(crate) const STATUS_EXAMPLES: &str = "\
Examples:
  durable status \"$ID\"
  durable status \"$ID\" --history
  durable status \"$ID\" --wait --timeout 2m   # exit code: 0 Completed, 3 Failed,
                                              # 4 Terminated, 5 still running
  durable status \"$ID\" --json";

/// `durable status`.
#[derive(Debug, Args)]
#[command(after_help = STATUS_EXAMPLES)]
pub(crate) struct StatusArgs {
    /// Instance id.
    pub id: String,
    /// Include the history.
    #[arg(long)]
    pub history: bool,
    /// Wait until the instance finishes; the exit code tells how it ended (0 Completed, 3 Failed,
    /// 4 Terminated, 5 --timeout passed first).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long, e.g. 30s, 2m [default: wait as long as it takes].
    #[arg(long, value_parser = duration, requires = "wait", value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Show values in full instead of cutting them to the terminal's width.
    #[arg(long)]
    pub wide: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub(crate) const WATCH_EXAMPLES: &str = "\
Examples:
  durable watch \"$ID\"
  durable watch \"$ID\" --timeout 5m
  durable watch \"$ID\" --output jsonl | grep TaskCompleted";

/// `durable watch`.
#[derive(Debug, Args)]
#[command(after_help = WATCH_EXAMPLES)]
pub(crate) struct WatchArgs {
    /// Instance id.
    pub id: String,
    /// Give up after this long, e.g. 30s, 2m [default: until the instance finishes].
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Show values in full instead of cutting them to the terminal's width.
    #[arg(long)]
    pub wide: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub(crate) const RAISE_EXAMPLES: &str = "\
Examples:
  durable raise \"$ID\" SmsChallengeResponse 0042     # sent as the string \"0042\"
  durable raise \"$ID\" SmsChallengeResponse \"$CODE\"
  durable raise \"$ID\" Approval true                 # sent as JSON true
  durable raise \"$ID\" Order '{\"sku\": \"A-1\", \"qty\": 2}'";

/// `durable raise`.
#[derive(Debug, Args)]
#[command(after_help = RAISE_EXAMPLES)]
pub(crate) struct RaiseArgs {
    /// Instance id.
    pub id: String,
    /// Event name, e.g. SmsChallengeResponse.
    pub event: String,
    /// The event data [default: null].
    #[arg(long_help = format!("The event data [default: null]. {JSON_OR_TEXT}"))]
    pub data: Option<String>,
    /// Send DATA as a JSON string even if it looks like JSON.
    #[arg(long, requires = "data")]
    pub string: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `durable suspend`, `resume` and `rewind`: an instance and a reason.
#[derive(Debug, Args)]
pub(crate) struct LifecycleArgs {
    /// Instance id.
    pub id: String,
    /// Why (recorded in the history).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub(crate) const TERMINATE_EXAMPLES: &str = "\
Examples:
  durable terminate \"$ID\"
  durable terminate \"$ID\" --reason \"user gave up\"
  durable terminate \"$ID\" --wait && durable purge \"$ID\"";

/// `durable terminate`.
#[derive(Debug, Args)]
#[command(after_help = TERMINATE_EXAMPLES)]
pub(crate) struct TerminateArgs {
    /// Instance id.
    pub id: String,
    /// Why (recorded in the history; the terminated instance's output).
    #[arg(long)]
    pub reason: Option<String>,
    /// Wait until the instance has stopped (termination is asynchronous).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long, e.g. 30s [default: wait as long as it takes].
    #[arg(long, value_parser = duration, requires = "wait", value_name = "DURATION")]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub(crate) const SUSPEND_EXAMPLES: &str = "\
Examples:
  durable suspend \"$ID\" --reason \"investigating\"
  durable resume \"$ID\"";

pub(crate) const RESUME_EXAMPLES: &str = "\
Examples:
  durable resume \"$ID\"
  durable resume \"$ID\" --reason \"fixed the mail server\"";

pub(crate) const REWIND_EXAMPLES: &str = "\
Only a Failed instance can be rewound: its failed steps run again, what had
succeeded is kept. To run any finished instance again from the start, use
`durable restart`.

Examples:
  durable rewind \"$ID\"
  durable rewind \"$ID\" --reason \"the payment API is back\"";

pub(crate) const RESTART_EXAMPLES: &str = "\
Examples:
  NEW=$(durable restart \"$ID\")       # a new instance, same name and input
  durable restart \"$ID\" --same-id    # the same id again (it must have finished)";

/// `durable restart`.
#[derive(Debug, Args)]
#[command(after_help = RESTART_EXAMPLES)]
pub(crate) struct RestartArgs {
    /// Instance id.
    pub id: String,
    /// Keep the instance id (the instance must have finished) instead of a new random one.
    #[arg(long)]
    pub same_id: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub(crate) const LIST_EXAMPLES: &str = "\
Examples:
  durable list
  durable list --status Running --status Pending   # or --status Running,Pending
  durable list --prefix order- --created-from 2026-01-01T00:00:00Z
  durable list --all --output jsonl > instances.jsonl";

/// `durable list`.
#[derive(Debug, Args)]
#[command(after_help = LIST_EXAMPLES)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show at most this many instances (a hint says when there are more).
    #[arg(long, default_value_t = 100, conflicts_with = "all", value_name = "N")]
    pub limit: u32,
    /// Show every instance.
    #[arg(long)]
    pub all: bool,
    /// Show every column in full instead of fitting the table to the terminal's width.
    #[arg(long)]
    pub wide: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Instance filters of `list` and `purge`.
#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// Only instances with these statuses (repeat the flag or separate with commas).
    #[arg(long = "status", value_name = "STATUS", value_enum, value_delimiter = ',', ignore_case = true)]
    pub statuses: Vec<StatusArg>,
    /// Only ids starting with this prefix.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Created at or after this time (RFC 3339, e.g. 2026-01-01T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub created_from: Option<String>,
    /// Created at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub created_to: Option<String>,
}

pub(crate) const PURGE_EXAMPLES: &str = "\
Purging by filter lists what matches and asks before deleting; without a
terminal, pass --yes.

Examples:
  durable purge \"$ID\"                     # a finished instance
  durable purge \"$ID\" --force             # even one that is still running
  durable purge --status Failed --dry-run   # what would go
  durable purge --created-to 2026-01-01T00:00:00Z --yes";

/// `durable purge`.
#[derive(Debug, Args)]
#[command(after_help = PURGE_EXAMPLES)]
pub(crate) struct PurgeArgs {
    /// Instance id (omit it to purge by filter).
    #[arg(conflicts_with_all = ["statuses", "created_from", "created_to", "dry_run", "yes"])]
    pub id: Option<String>,
    /// With no id: only these statuses [default: Completed, Failed, Terminated].
    #[arg(long = "status", value_name = "STATUS", value_enum, value_delimiter = ',', ignore_case = true)]
    pub statuses: Vec<StatusArg>,
    /// With no id: created at or after this time (RFC 3339, e.g. 2026-01-01T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub created_from: Option<String>,
    /// With no id: created at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub created_to: Option<String>,
    /// Also purge instances that have not finished (they are deleted while they run).
    #[arg(long)]
    pub force: bool,
    /// List what the filters match; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (needed when not on a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Show every column in full (with --dry-run).
    #[arg(long)]
    pub wide: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub(crate) const OUTBOX_EXAMPLES: &str = "\
A server without Twilio settings keeps its SMS in the data directory's
outbox.jsonl. This command reads that file: run it where the server's data
directory is, or pass --data-dir.

Examples:
  durable outbox
  durable outbox --to +14255550123 --last
  CODE=$(durable outbox --instance \"$ID\" --code --wait)   # waits for the SMS";

/// `durable outbox`.
#[derive(Debug, Args)]
#[command(after_help = OUTBOX_EXAMPLES)]
pub(crate) struct OutboxArgs {
    /// The server's data directory.
    #[arg(long, env = "DURABLE_DATA_DIR", default_value = "durable-data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Only messages to this number.
    #[arg(long, value_name = "PHONE")]
    pub to: Option<String>,
    /// Only messages sent by this instance.
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
    /// Only the newest matching message.
    #[arg(long)]
    pub last: bool,
    /// Print only the verification code of the newest matching message.
    #[arg(long, conflicts_with_all = ["output", "json"])]
    pub code: bool,
    /// Wait until a matching message arrives (at most DURATION, default 30s).
    #[arg(long, value_parser = duration, num_args = 0..=1, default_missing_value = "30s", value_name = "DURATION")]
    pub wait: Option<Duration>,
    /// Show messages in full instead of fitting the table to the terminal's width.
    #[arg(long)]
    pub wide: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub(crate) const KEY_EXAMPLES: &str = "\
Examples:
  KEY=$(durable key)                            # the key of ./durable-data
  durable key --data-dir /var/lib/durable
  durable key --create --data-dir new-data    # before the first start";

/// `durable key`.
#[derive(Debug, Args)]
#[command(after_help = KEY_EXAMPLES)]
pub(crate) struct KeyArgs {
    /// The server's data directory.
    #[arg(long, env = "DURABLE_DATA_DIR", default_value = "durable-data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Create the key file if there is none (`durable serve` also creates it on first start).
    #[arg(long)]
    pub create: bool,
}

pub(crate) const LOGIN_EXAMPLES: &str = "\
Checks the URL and key (found as for every client command) against the server
and saves them in a file only you can read, $XDG_CONFIG_HOME/durable/client.toml
(by default ~/.config/durable/client.toml). Client commands then use them from
any directory; --url, --key, --data-dir and DURABLE_* variables still win.

Examples:
  durable login                   # where `durable serve` runs (./durable-data)
  durable login --url http://10.0.0.5:7071 --key \"$KEY\"
  durable logout";

/// `durable login`.
#[derive(Debug, Args)]
#[command(after_help = LOGIN_EXAMPLES)]
pub(crate) struct LoginArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub(crate) const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  durable completions bash > ~/.local/share/bash-completion/completions/durable
  durable completions zsh > ~/.zfunc/_durable   # fpath+=(~/.zfunc) in .zshrc
  durable completions fish > ~/.config/fish/completions/durable.fish
  durable completions powershell | Out-String | Invoke-Expression";

/// `durable completions`.
#[derive(Debug, Args)]
#[command(after_help = COMPLETIONS_EXAMPLES)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    /// Help text is wrapped by clap at the terminal's width; at 80 columns, nothing of ours
    /// should need it (a wrapped example cannot be pasted).
    #[test]
    fn examples_fit_80_columns() {
        for text in [
            super::TOP_HELP,
            super::BENCH_EXAMPLES,
            super::START_EXAMPLES,
            super::STATUS_EXAMPLES,
            super::WATCH_EXAMPLES,
            super::RAISE_EXAMPLES,
            super::TERMINATE_EXAMPLES,
            super::SUSPEND_EXAMPLES,
            super::RESUME_EXAMPLES,
            super::REWIND_EXAMPLES,
            super::RESTART_EXAMPLES,
            super::LIST_EXAMPLES,
            super::PURGE_EXAMPLES,
            super::OUTBOX_EXAMPLES,
            super::KEY_EXAMPLES,
            super::LOGIN_EXAMPLES,
            super::COMPLETIONS_EXAMPLES,
        ] {
            for line in text.lines() {
                assert!(line.chars().count() <= 80, "{} columns: {line}", line.chars().count());
            }
        }
    }
}
