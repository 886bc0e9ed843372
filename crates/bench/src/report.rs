//! The summary of a run: human text or JSON.

use serde::Serialize;
use std::fmt::Write;

/// Latency percentiles of one measurement, in milliseconds (from an HDR histogram at 3
/// significant digits).
#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    /// What was measured, e.g. "start → completion".
    pub what: String,
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// One timed part of a scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    /// Name, e.g. "verify", "park", "drain", "reopen".
    pub name: String,
    /// Operations done in the phase (verifications, fsyncs, …).
    pub count: u64,
    /// Wall-clock seconds.
    pub secs: f64,
    /// `count / secs`.
    pub per_sec: f64,
    /// Process CPU seconds (user + system, all threads) spent in the phase.
    pub cpu_secs: f64,
    /// CPU milliseconds per operation.
    pub cpu_ms_per_op: f64,
    /// Store transactions committed in the phase (with synchronous=FULL each is one WAL fsync).
    pub transactions: u64,
    /// Transactions per operation.
    pub transactions_per_op: f64,
    /// Orchestration turns committed in the phase.
    pub turns: u64,
    /// Executions rebuilt from history in the phase (execution-cache misses).
    pub replays: u64,
    /// Latencies measured in the phase.
    pub latency: Vec<Percentiles>,
}

/// Resource use at the end of the run (or where a scenario says).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Resources {
    /// Peak resident set size of the process (`VmHWM`), MiB.
    pub peak_rss_mib: f64,
    /// Database main file, bytes.
    pub db_bytes: u64,
    /// Write-ahead log, bytes.
    pub wal_bytes: u64,
    /// `(db + wal) / instances`.
    pub db_bytes_per_instance: f64,
    /// Store counters since the store was opened.
    pub store: durable_store::StoreMetrics,
    /// Runtime counters since the runtime started.
    pub runtime: durable_runtime::RuntimeMetrics,
}

/// A correctness check of the run.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What every instance must have done, e.g. "Completed with output true".
    pub expected: String,
    /// Instances checked.
    pub checked: u64,
    /// Instances that did.
    pub passed: u64,
    /// A few that did not, with what happened instead.
    pub failures: Vec<String>,
}

impl Check {
    /// True when every checked instance passed.
    pub fn ok(&self) -> bool {
        self.passed == self.checked && self.failures.is_empty()
    }
}

/// Everything a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: crate::Scenario,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// Verifications (or fsync writes).
    pub instances: u64,
    /// Most in flight at once.
    pub concurrency: usize,
    /// Store kind.
    pub store: String,
    /// SQLite durability.
    pub durability: crate::Durability,
    /// Driven over HTTP.
    pub via_http: bool,
    /// Verification window, seconds.
    pub window_secs: u64,
    /// `--max-concurrent-turns`, when set (otherwise the runtime's default).
    pub max_concurrent_turns: Option<usize>,
    /// `--limits`: the sample's abuse limits were charged on every start (with budgets none
    /// reached); otherwise they were lifted.
    pub limits: bool,
    /// `--random-ids`: instances were named with random-looking ids (otherwise counter-prefixed).
    pub random_ids: bool,
    /// Where the database was.
    pub data_dir: String,
    /// Logical CPUs of the machine.
    pub cpus: usize,
    /// Timed phases, in order.
    pub phases: Vec<Phase>,
    /// Resource use.
    pub resources: Resources,
    /// Scenario-specific numbers (name → value), e.g. RSS per waiting instance; a JSON object.
    #[serde(serialize_with = "as_object")]
    pub extra: Vec<(String, f64)>,
    /// Correctness checks.
    pub checks: Vec<Check>,
    /// Remarks on how to read the numbers.
    pub notes: Vec<String>,
}

/// Scripts look values up by name, so the pairs become a JSON object (in their order).
fn as_object<S: serde::Serializer>(pairs: &[(String, f64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

impl Report {
    /// An error naming the failed checks, if any.
    pub fn ensure_passed(&self) -> anyhow::Result<()> {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.ok())
            .map(|c| {
                format!(
                    "{} of {} instances did not end {}; e.g. {}",
                    c.checked - c.passed.min(c.checked),
                    c.checked,
                    c.expected,
                    c.failures.join("; ")
                )
            })
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("benchmark check failed: {}", failed.join(" / "))
        }
    }

    /// The value of an `extra` entry.
    pub fn extra(&self, name: &str) -> Option<f64> {
        self.extra.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// The phase called `name`.
    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// The human-readable summary.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "durable bench {:?}: {} instance(s), concurrency {}, store {} ({:?}), {}, window {} s, {} CPU(s), started {}",
            self.scenario,
            self.instances,
            self.concurrency,
            self.store,
            self.durability,
            if self.via_http { "over HTTP" } else { "in-process client" },
            self.window_secs,
            self.cpus,
            self.started_at,
        );
        if let Some(turns) = self.max_concurrent_turns {
            let _ = writeln!(s, "max concurrent turns: {turns} per node");
        }
        let _ = writeln!(
            s,
            "abuse limits: {}",
            if self.limits {
                "charged on every start (one number per verification, budgets raised so none refuses)"
            } else {
                "LIFTED for the benchmark (`durable serve` enforces them; --limits charges them)"
            }
        );
        if self.random_ids {
            let _ = writeln!(s, "instance ids: random, as `durable serve` generates them");
        }
        let _ = writeln!(s, "data directory: {}", self.data_dir);
        for p in &self.phases {
            let _ = writeln!(
                s,
                "\n{}: {} in {:.3} s = {:.0}/s; CPU {:.2} s = {:.3} ms per op; {} transactions (≈fsyncs) = {:.2} per op; {} turns, {} replays",
                p.name,
                p.count,
                p.secs,
                p.per_sec,
                p.cpu_secs,
                p.cpu_ms_per_op,
                p.transactions,
                p.transactions_per_op,
                p.turns,
                p.replays
            );
            for l in &p.latency {
                let _ = writeln!(
                    s,
                    "  {} (ms, n={}): p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  mean {:.3}",
                    l.what, l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.mean_ms
                );
            }
        }
        let r = &self.resources;
        if self.scenario == crate::Scenario::Fsync {
            let _ = writeln!(s, "\npeak RSS {:.1} MiB", r.peak_rss_mib);
            for n in &self.notes {
                let _ = writeln!(s, "note: {n}");
            }
            return s;
        }
        let _ = writeln!(
            s,
            "\nresources: peak RSS {:.1} MiB; database {} + WAL {} bytes = {:.0} bytes per instance",
            r.peak_rss_mib, r.db_bytes, r.wal_bytes, r.db_bytes_per_instance
        );
        let _ = writeln!(
            s,
            "store: {} transactions (≈fsyncs with durability full), {} turns, {} activity completions, {} client writes",
            r.store.transactions, r.store.turns, r.store.activity_completions, r.store.client_writes
        );
        let _ = writeln!(
            s,
            "runtime: {} turns, {} replays, {} discarded turns, {} activities, {} events delivered directly, {} cached executions",
            r.runtime.turns,
            r.runtime.replays,
            r.runtime.turns_discarded,
            r.runtime.activities,
            r.runtime.direct_events,
            r.runtime.cached_executions
        );
        for (name, value) in &self.extra {
            let _ = writeln!(s, "{name}: {value:.3}");
        }
        for c in &self.checks {
            let verdict = if c.ok() { "OK" } else { "FAILED" };
            let _ = writeln!(s, "check: {}/{} ended {} — {verdict}", c.passed, c.checked, c.expected);
            for f in &c.failures {
                let _ = writeln!(s, "  {f}");
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}
