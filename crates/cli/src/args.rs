//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::IpAddr;
use std::path::PathBuf;

/// durable: Durable Functions for Rust.
///
/// `durable serve` runs the engine, the Durable Functions compatible HTTP API and the SMS
/// phone-verification sample on an embedded SQLite database. The other commands are a client
/// of that HTTP API.
#[derive(Debug, Parser)]
#[command(name = "durable", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: engine, HTTP API and the phone-verification sample.
    #[command(after_help = "Settings read only from the environment (or the config file):\n  \
        DURABLE_SYSTEM_KEY        the HTTP API key (default: generated into <data-dir>/system.key)\n  \
        DURABLE_VERIFICATION_KEY  64 hex digits: the MAC key of verification codes (default: <data-dir>/verification.key)\n  \
        TwilioAuthToken           the Twilio auth token (never pass it on the command line)\n  \
        RUST_LOG                  log filter, e.g. info or durable=debug\n\n\
        Without TwilioAccountSid, TwilioAuthToken and TwilioPhoneNumber, SMS go to the development outbox (`durable outbox`).")]
    Serve(ServeArgs),
    /// Benchmark the engine on the phone-verification sample (verify, timeout, park, latency,
    /// fsync); see BENCHMARKS.md.
    Bench(durable_bench::BenchArgs),
    /// Start an orchestration instance.
    Start {
        /// Orchestrator name, e.g. E4_SmsPhoneVerification.
        name: String,
        /// Input as JSON, e.g. '"+14255550123"'.
        #[arg(long)]
        input: Option<String>,
        /// Instance id (default: a random one).
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show an instance's status.
    Status {
        /// Instance id.
        id: String,
        /// Include the history.
        #[arg(long)]
        history: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Raise an event on an instance.
    Raise {
        /// Instance id.
        id: String,
        /// Event name, e.g. SmsChallengeResponse.
        event: String,
        /// Event data as JSON, e.g. 2168.
        data: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Terminate an instance (and its sub-orchestrations).
    Terminate {
        /// Instance id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Suspend an instance.
    Suspend {
        /// Instance id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Resume a suspended instance.
    Resume {
        /// Instance id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List instances.
    List {
        /// Only these statuses (repeatable): Pending, Running, Completed, Failed, Terminated, Suspended, ContinuedAsNew.
        #[arg(long = "status", value_name = "STATUS")]
        statuses: Vec<String>,
        /// Only ids starting with this prefix.
        #[arg(long)]
        prefix: Option<String>,
        /// Created at or after (RFC 3339).
        #[arg(long)]
        created_from: Option<String>,
        /// Created at or before (RFC 3339).
        #[arg(long)]
        created_to: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        top: u32,
        /// Follow continuation tokens and list everything.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete finished instances and their history: one by id, or all matching filters.
    Purge {
        /// Instance id (omit to purge by filter).
        id: Option<String>,
        /// Also purge an instance that has not finished.
        #[arg(long)]
        force: bool,
        /// With no id: created at or after (RFC 3339; required by the API).
        #[arg(long)]
        created_from: Option<String>,
        /// With no id: created at or before (RFC 3339).
        #[arg(long)]
        created_to: Option<String>,
        /// With no id: only these statuses (default: Completed, Failed, Terminated).
        #[arg(long = "status", value_name = "STATUS")]
        statuses: Vec<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show the messages of the development outbox (SMS kept when Twilio is not configured).
    Outbox {
        /// Data directory of the server.
        #[arg(long, env = "DURABLE_DATA_DIR", default_value = "durable-data")]
        data_dir: PathBuf,
        /// Only messages to this number.
        #[arg(long)]
        to: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the system key of a data directory (generating it if it does not exist yet).
    Key {
        /// Data directory of the server.
        #[arg(long, env = "DURABLE_DATA_DIR", default_value = "durable-data")]
        data_dir: PathBuf,
    },
}

/// Where the server is and how to authenticate.
#[derive(Debug, Args)]
pub struct Remote {
    /// Base URL of the server.
    #[arg(long, env = "DURABLE_URL", default_value = "http://127.0.0.1:7071")]
    pub url: String,
    /// System key (default: read from the data directory's system.key).
    #[arg(long, env = "DURABLE_SYSTEM_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Data directory to read the system key from when --key is not given.
    #[arg(long, env = "DURABLE_DATA_DIR", default_value = "durable-data")]
    pub data_dir: PathBuf,
    /// Print JSON instead of human-readable text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DurabilityArg {
    /// synchronous=FULL: every acknowledged write survives power loss (default).
    Full,
    /// synchronous=NORMAL: survives a crash of the process; faster.
    Normal,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings of `durable serve`. Precedence: flags, then environment, then the config file,
/// then defaults.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file: [server] (bind, port, data_dir, durability, allow_no_auth, fresh_store),
    /// [server.http] (task_hub, system_keys, max_body_bytes, wrong_keys_before_throttle,
    /// max_backlog, ...), [server.runtime] (concurrency, leases, cache), [verification] (window,
    /// attempts, code_digits, and [verification.limits]) and [twilio] (account_sid, auth_token,
    /// phone_number, api_base_url, public_base_url, request_timeout). See README.md.
    #[arg(long, env = "DURABLE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "DURABLE_BIND")]
    pub bind: Option<IpAddr>,
    /// Port to listen on; 0 picks a free one [default: 7071].
    #[arg(long, env = "DURABLE_PORT")]
    pub port: Option<u16>,
    /// Directory of the database and key files, created on first start [default: durable-data].
    #[arg(long, env = "DURABLE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Durability of SQLite commits [default: full].
    #[arg(long, value_enum, env = "DURABLE_DURABILITY")]
    pub durability: Option<DurabilityArg>,
    /// Store: `sqlite` (embedded file in the data directory) or a `postgres://user@host:port/db`
    /// URL shared by several nodes [default: sqlite].
    #[arg(long, env = "DURABLE_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// PostgreSQL schema of this task hub, so several hubs can share one database [default: durable].
    #[arg(long, env = "DURABLE_POSTGRES_SCHEMA")]
    pub postgres_schema: Option<String>,
    /// Serve the HTTP API without a key (local experiments only).
    #[arg(long)]
    pub no_auth: bool,
    /// Build management URLs from X-Forwarded-Host/Proto (only behind a proxy that sets them).
    #[arg(long)]
    pub trust_forwarded_headers: bool,
    /// Task hub name used in management URLs [default: DurableHub].
    #[arg(long, env = "DURABLE_TASK_HUB")]
    pub task_hub: Option<String>,
    /// How long users have to answer the SMS, e.g. 90s or 2m [default: 90s].
    #[arg(long)]
    pub verification_window: Option<String>,
    /// How many answers are checked [default: 4].
    #[arg(long)]
    pub verification_attempts: Option<u32>,
    /// Length of the verification code, 4 to 10 [default: 4].
    #[arg(long)]
    pub code_digits: Option<u32>,
    /// Lift the verification abuse limits (SMS per number, failed answers per number, starts
    /// per client, SMS for all numbers; see [verification.limits] and SECURITY.md). Local
    /// experiments only: without them anyone with the system key can send SMS without bound.
    #[arg(long)]
    pub no_verification_limits: bool,
    /// The public base URL of this server as Twilio reaches it, e.g. https://verify.example.com:
    /// SMS then ask Twilio for delivery status callbacks at <URL>/twilio/status, and the
    /// webhooks /twilio/status and /twilio/sms check Twilio's signature against this URL.
    #[arg(long, env = "DURABLE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Create a new, empty store even though the data directory was used before (it holds
    /// keys) and its database is missing or empty. Without it `serve` refuses to start there,
    /// since every instance would silently be gone.
    #[arg(long)]
    pub fresh_store: bool,
    /// Twilio account SID (AC…). With the auth token and phone number, SMS go through Twilio.
    #[arg(long, env = "TwilioAccountSid")]
    pub twilio_account_sid: Option<String>,
    /// Twilio sender number in E.164 form.
    #[arg(long, env = "TwilioPhoneNumber")]
    pub twilio_phone_number: Option<String>,
    /// Twilio API base URL [default: https://api.twilio.com].
    #[arg(long, env = "TwilioApiBaseUrl")]
    pub twilio_base_url: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text", env = "DURABLE_LOG_FORMAT")]
    pub log_format: LogFormat,
}
