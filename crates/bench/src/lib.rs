//! `durable bench`: runs the real engine (store, runtime, optionally the HTTP API) on the SMS
//! phone-verification sample and reports throughput, latency percentiles, CPU per instance,
//! memory, store transactions (≈ fsyncs) and database bytes. It measures; it changes nothing in
//! the engine.
//!
//! The sample is registered with a *bench SMS sender* that hands each (instance, code) to the
//! driver over a channel instead of sending anything, so the driver can answer at once.
//!
//! Scenarios (see [`Scenario`]): `verify`, `timeout`, `park`, `latency`, and `fsync` (the
//! machine's fsync rate, to put the others in context). `BENCHMARKS.md` at the repository root
//! records results and how to reproduce them.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use clap::Parser;
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     bench: durable_bench::BenchArgs,
//! }
//! let cli = Cli::parse_from(["bench", "verify", "--instances", "1000"]);
//! durable_bench::run(cli.bench).await?;
//! # Ok(()) }
//! ```

mod measure;
mod node;
mod observe;
pub mod otlp_sink;
mod report;
mod scenarios;
mod sender;

pub use report::{Check, Percentiles, Phase, Report, Resources};

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// N verifications, at most C in flight, each answered with the right code at once; every
    /// one must end `true`. Reports throughput and start-to-completion latency.
    Verify,
    /// N verifications that nobody answers, all timers due at the same instant (--window
    /// after the start); every one must end `false`. Reports timer lateness.
    Timeout,
    /// N verifications left waiting (long window): start rate, RSS and database bytes per
    /// waiting instance; then all are answered: drain rate. --restart-check also measures how
    /// long a reopen of the same database takes to serve again.
    Park,
    /// One verification at a time: raise-event → completion-committed latency.
    Latency,
    /// The machine's fsync rate: 4 KiB write + fdatasync in the data directory.
    Fsync,
}

/// Durability of the SQLite store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// synchronous=FULL: each transaction is one WAL fsync (default, as `durable serve`).
    #[default]
    Full,
    /// synchronous=NORMAL: no fsync per transaction; may lose the last commits on power loss.
    Normal,
}

/// Arguments of `durable bench`.
#[derive(Clone, Debug, Args)]
pub struct BenchArgs {
    /// Scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Verifications to run [default: verify 1000, timeout 1000, park 10000, latency 200,
    /// fsync 1000 (writes)].
    #[arg(long, short = 'n')]
    pub instances: Option<u64>,
    /// Most verifications in flight at once [default: verify 10,000 (a population of clients
    /// the size of the execution cache), timeout and park 1000, over HTTP 100, latency 1].
    #[arg(long, short = 'c')]
    pub concurrency: Option<usize>,
    /// Store: `sqlite` (a file in --data-dir) or a `postgres://` URL (the run works in a new
    /// schema `bench_…`, dropped afterwards unless --keep).
    #[arg(long, default_value = "sqlite")]
    pub store: String,
    /// SQLite durability.
    #[arg(long, value_enum, default_value_t = Durability::Full)]
    pub durability: Durability,
    /// Drive start, raise event and status through an in-process HTTP server on 127.0.0.1
    /// (keep-alive connections, x-functions-key) instead of the in-process client.
    #[arg(long)]
    pub via_http: bool,
    /// Print the summary as JSON on stdout (the progress bar stays on stderr).
    #[arg(long)]
    pub json: bool,
    /// Verification window, e.g. 2s or 1h [default: timeout 10s, park 1h, others 90s]. Whole
    /// seconds, at least 1 s (the sample's rule).
    #[arg(long, value_parser = parse_window)]
    pub window: Option<Duration>,
    /// Directory of the database [default: a new temporary directory, deleted afterwards].
    /// Use a directory on the disk you want to measure: fsync on a RAM disk costs nothing.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// park: after parking, close the store and runtime and reopen the same database; report
    /// how long until it serves again (open + one fresh verification end to end).
    #[arg(long)]
    pub restart_check: bool,
    /// park: stop after parking, leaving the instances waiting (with --keep, the database can
    /// be inspected).
    #[arg(long)]
    pub no_drain: bool,
    /// timeout: spread the timers' due times evenly over this span (e.g. `1s`) instead of one
    /// instant.
    #[arg(long, value_parser = parse_window)]
    pub spread: Option<Duration>,
    /// Run this many nodes (runtimes with their own connections) on one PostgreSQL schema
    /// (needs `--store postgres://…`; starts and answers are spread over the nodes).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Orchestration turns each node runs at once, including turns waiting for their commit
    /// [default: the runtime's, 500 per CPU]. More lets timer bursts flow through the group
    /// commit in smaller batches (lower timer lateness); fewer lets answers that arrive while an
    /// activity runs wait for its result instead of taking a turn of their own (less CPU).
    #[arg(long)]
    pub max_concurrent_turns: Option<usize>,
    /// Keep the temporary data directory (its path is printed).
    #[arg(long)]
    pub keep: bool,
    /// Record Prometheus metrics as `durable serve` does (the recorder installed, every metric
    /// counted); the summary says how many series were rendered at the end. [default: off]
    #[arg(long)]
    pub metrics: bool,
    /// Trace every orchestration over OTLP as `durable serve` does with
    /// OTEL_EXPORTER_OTLP_ENDPOINT set: to that endpoint when it is set, else to an in-process
    /// OTLP/HTTP receiver on 127.0.0.1 that decodes and counts the spans. [default: off]
    #[arg(long)]
    pub tracing: bool,
    /// Charge the sample's abuse limits on every start, as `durable serve` does (SMS per number,
    /// failed answers per number, SMS per minute, starts per client over HTTP), each
    /// verification with a number of its own and every budget raised so none refuses: measures
    /// what the limits cost. Without it the limits are lifted (the summary says which).
    #[arg(long)]
    pub limits: bool,
    /// Name the instances with random-looking ids, as `durable serve` does when the caller
    /// names none, so new rows land anywhere in the tables keyed by instance. [default: ids
    /// that start with a counter, so those tables only grow at their end]
    #[arg(long)]
    pub random_ids: bool,
}

impl BenchArgs {
    /// Arguments for `scenario` with every option at its default.
    pub fn new(scenario: Scenario) -> Self {
        BenchArgs {
            scenario,
            instances: None,
            concurrency: None,
            store: "sqlite".into(),
            durability: Durability::Full,
            via_http: false,
            json: false,
            window: None,
            data_dir: None,
            restart_check: false,
            no_drain: false,
            nodes: 1,
            max_concurrent_turns: None,
            spread: None,
            keep: false,
            metrics: false,
            tracing: false,
            limits: false,
            random_ids: false,
        }
    }
}

fn parse_window(text: &str) -> Result<Duration, String> {
    let d = durable_phone_verification::parse_duration(text)?;
    if d < Duration::from_secs(1) || d.subsec_nanos() != 0 {
        return Err(format!("'{text}': the verification window is whole seconds, at least 1s"));
    }
    Ok(d)
}

/// Runs the benchmark and prints its summary (text, or JSON with `--json`) on stdout. Fails if
/// any verification ended with the wrong result.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let json = args.json;
    let report = run_report(args).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    report.ensure_passed()
}

/// Runs the benchmark and returns its report without printing it. The report's checks say
/// whether every verification ended as it should; [`Report::ensure_passed`] turns a failed
/// check into an error.
pub async fn run_report(args: BenchArgs) -> anyhow::Result<Report> {
    scenarios::run(args).await
}
