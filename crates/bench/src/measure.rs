//! Process and file measurements (Linux `/proc`), and latency histograms.

use crate::report::Percentiles;
use hdrhistogram::Histogram;
use std::path::Path;
use std::time::Duration;

/// User + system CPU time of the whole process (all threads, including exited ones), from
/// `/proc/self/stat`. Resolution is one clock tick (usually 10 ms), which is why scenarios
/// report it over whole runs, never per operation.
pub(crate) fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // The command name (field 2) may contain spaces; fields after its closing parenthesis
    // start at field 3 (state), so utime (14) and stime (15) are the 12th and 13th.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let total = ticks(11) + ticks(12);
    Duration::from_secs_f64(total as f64 / hz as f64)
}

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`, …).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Current resident set size.
pub(crate) fn rss_bytes() -> u64 {
    status_bytes("VmRSS")
}

/// Peak resident set size of the process so far.
pub(crate) fn peak_rss_bytes() -> u64 {
    status_bytes("VmHWM")
}

/// Size of the SQLite database: the main file plus its write-ahead log. The WAL is counted
/// because that is disk the store occupies; it shrinks to the main file only at a checkpoint.
pub(crate) fn sqlite_bytes(db: &Path) -> (u64, u64) {
    let size = |suffix: &str| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        std::fs::metadata(p).map_or(0, |m| m.len())
    };
    (size(""), size("-wal"))
}

/// A latency histogram in microseconds, 1 µs to 1 h at 3 significant digits.
pub(crate) struct Latencies(Histogram<u64>);

impl Latencies {
    pub(crate) fn new() -> Self {
        Latencies(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"))
    }

    pub(crate) fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, self.0.high());
        self.0.saturating_record(us);
    }

    pub(crate) fn percentiles(&self, what: &str) -> Option<Percentiles> {
        if self.0.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Percentiles {
            what: what.to_owned(),
            count: self.0.len(),
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p90_ms: ms(self.0.value_at_quantile(0.90)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            max_ms: ms(self.0.max()),
            mean_ms: self.0.mean() / 1000.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_readings_are_plausible() {
        assert!(rss_bytes() > 0);
        assert!(peak_rss_bytes() >= rss_bytes() / 2);
        // Burn a little CPU so the reading can move; a reading never goes backwards.
        let before = cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_time() >= before);
    }

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let mut h = Latencies::new();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p = h.percentiles("x").unwrap();
        assert_eq!(p.count, 100);
        assert!((p.p50_ms - 50.0).abs() < 0.1, "{p:?}");
        assert!((p.p99_ms - 99.0).abs() < 0.1, "{p:?}");
        assert!((p.max_ms - 100.0).abs() < 0.1, "{p:?}");
        assert!(Latencies::new().percentiles("empty").is_none());
    }
}
