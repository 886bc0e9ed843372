//! Command-line arguments.

pub(crate) mod client;

use clap::{Args, Parser, Subcommand, ValueEnum};
pub(crate) use client::*;
use std::net::IpAddr;
use std::path::PathBuf;

/// `durable --version`: the package version and the git commit it was built from.
pub(crate) const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("DURABLE_BUILD_COMMIT"), ")");

/// durable: Durable Functions for Rust.
///
/// `durable serve` runs the engine, the Durable Functions compatible HTTP API and the SMS
/// phone-verification sample on an embedded SQLite database. The other commands are a client
/// of that HTTP API.
#[derive(Debug, Parser)]
#[command(name = "durable", version = VERSION, after_help = client::TOP_HELP, arg_required_else_help = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a node: engine, HTTP API and the phone-verification sample.
    #[command(after_help = "Settings read only from the environment (or the config file):
  DURABLE_SYSTEM_KEY        the HTTP API key [default: <data-dir>/system.key,
                            generated on first start]
  DURABLE_VERIFICATION_KEY  64 hex digits: the MAC key of verification codes
                            [default: <data-dir>/verification.key]
  TwilioAuthToken           the Twilio auth token (never on the command line)
  RUST_LOG                  log filter, e.g. info or durable=debug

Without TwilioAccountSid, TwilioAuthToken and TwilioPhoneNumber, SMS go to the
development outbox (`durable outbox`).

Examples:
  durable serve
  durable serve --port 8080 --data-dir /var/lib/durable
  durable serve --config durable.toml")]
    Serve(ServeArgs),
    /// Benchmark the engine on the phone-verification sample (verify, timeout, park, latency,
    /// fsync); see BENCHMARKS.md.
    #[command(after_help = client::BENCH_EXAMPLES)]
    Bench(durable_bench::BenchArgs),
    /// Start an orchestration instance; prints its id.
    Start(StartArgs),
    /// Show an instance's status (and history); --wait waits for the end.
    Status(StatusArgs),
    /// Follow an instance: its history as it grows, until it finishes.
    Watch(WatchArgs),
    /// Raise an event on an instance.
    Raise(RaiseArgs),
    /// Terminate an instance.
    Terminate(TerminateArgs),
    /// Suspend an instance (it takes no turns until resumed; events are kept).
    #[command(after_help = client::SUSPEND_EXAMPLES)]
    Suspend(LifecycleArgs),
    /// Resume a suspended instance.
    #[command(after_help = client::RESUME_EXAMPLES)]
    Resume(LifecycleArgs),
    /// Run a Failed instance's failed steps again.
    #[command(after_help = client::REWIND_EXAMPLES)]
    Rewind(LifecycleArgs),
    /// Start an instance again with the same name and input; prints the new instance's id.
    Restart(RestartArgs),
    /// List instances.
    List(ListArgs),
    /// Delete instances and their history: one by id, or all that match filters.
    Purge(PurgeArgs),
    /// Show the SMS kept by the development outbox (a server without Twilio settings).
    Outbox(OutboxArgs),
    /// Print the system key of a data directory.
    Key(KeyArgs),
    /// Save a server's URL and key so client commands work from any directory.
    Login(LoginArgs),
    /// Forget what `durable login` saved.
    #[command(after_help = "Examples:\n  durable logout")]
    Logout,
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum DurabilityArg {
    /// synchronous=FULL: every acknowledged write survives power loss (default).
    Full,
    /// synchronous=NORMAL: survives a crash of the process; faster.
    Normal,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings of `durable serve`. Precedence: flags, then environment, then the config file,
/// then defaults.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML config file: [server] (bind, port, data_dir, durability, allow_no_auth, fresh_store,
    /// local_rpc_port, dashboard, trace_url), [server.http] (task_hub, system_keys, max_body_bytes,
    /// wrong_keys_before_throttle, max_backlog, ...), [server.runtime] (concurrency, leases,
    /// cache), [server.metrics], [verification] (window, attempts, code_digits, and
    /// [verification.limits]) and [twilio] (account_sid, auth_token, phone_number, api_base_url,
    /// public_base_url, request_timeout). See README.md.
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
    /// Also serve the API WITHOUT a key on 127.0.0.1:PORT (only there), like Durable Functions'
    /// local RPC endpoint: the Python and JavaScript client SDKs call it through
    /// `rpcBaseUrl` = http://127.0.0.1:PORT/durabletask/. 0 picks a free port. The main port keeps
    /// requiring the key. [default: off]
    #[arg(long, env = "DURABLE_LOCAL_RPC_PORT", value_name = "PORT", value_parser = parse_local_rpc_port)]
    pub local_rpc_port: Option<u16>,
    /// Build management URLs from X-Forwarded-Host/Proto (only behind a proxy that sets them).
    #[arg(long)]
    pub trust_forwarded_headers: bool,
    /// Do not serve the web dashboard under / (the API and /healthz, /readyz stay).
    #[arg(long)]
    pub no_dashboard: bool,
    /// Link each instance's trace on the dashboard to a trace viewer: a URL with {trace_id},
    /// e.g. http://localhost:16686/trace/{trace_id} (Jaeger). [default: the id only]
    #[arg(long, env = "DURABLE_TRACE_URL", value_name = "URL")]
    pub trace_url: Option<String>,
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
    /// Do not record metrics nor serve GET /metrics. [default: served]
    #[arg(long)]
    pub no_metrics: bool,
    /// Whether GET /metrics needs the system key: `auto` (not when listening on loopback),
    /// `none`, `key`. [default: auto]
    #[arg(long, value_enum, env = "DURABLE_METRICS_AUTH")]
    pub metrics_auth: Option<MetricsAuthArg>,
}

/// `--metrics-auth`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum MetricsAuthArg {
    /// The key only when the server listens on a non-loopback address.
    Auto,
    /// Never the key.
    None,
    /// Always the key.
    Key,
}

/// `--local-rpc-port`: a port, or `127.0.0.1:PORT` / `localhost:PORT` for those who spell the
/// address out. Any other address is refused: the endpoint has no key, so it is loopback-only.
pub(crate) fn parse_local_rpc_port(value: &str) -> Result<u16, String> {
    let value = value.trim();
    let port = match value.rsplit_once(':') {
        None => value,
        Some((host, port)) if host == "127.0.0.1" || host.eq_ignore_ascii_case("localhost") => port,
        Some((host, _)) => {
            return Err(format!(
                "the local RPC endpoint serves the API without a key, so it listens on 127.0.0.1 only, not on \
                 '{host}'; give just the port (e.g. 17071), and use the main port with the key from other machines"
            ));
        }
    };
    port.parse().map_err(|_| format!("'{port}' is not a port number (0 to 65535; 0 picks a free one)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_rpc_port_is_a_port_or_a_loopback_address_and_nothing_else() {
        assert_eq!(parse_local_rpc_port("17071"), Ok(17071));
        assert_eq!(parse_local_rpc_port("0"), Ok(0));
        assert_eq!(parse_local_rpc_port("127.0.0.1:17071"), Ok(17071));
        assert_eq!(parse_local_rpc_port("localhost:8000"), Ok(8000));
        for refused in ["0.0.0.0:17071", "192.168.0.2:17071", "[::1]:17071", "example.com:1"] {
            let message = parse_local_rpc_port(refused).unwrap_err();
            assert!(message.contains("127.0.0.1 only"), "{refused}: {message}");
        }
        for bad in ["", "port", "70000", "-1", "127.0.0.1:x"] {
            assert!(parse_local_rpc_port(bad).unwrap_err().contains("not a port number"), "{bad}");
        }
    }
}
