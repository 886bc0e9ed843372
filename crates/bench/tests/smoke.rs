//! Every scenario at a tiny size: the engine must produce the right result for every instance
//! and the report must hold the measurements. Correctness only: no timing is asserted.

use clap::Parser;
use durable_bench::{BenchArgs, Report, run_report};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn args(args: &[&str]) -> BenchArgs {
    Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).expect("valid arguments").bench
}

async fn bench(a: &[&str]) -> Report {
    let report = run_report(args(a)).await.expect("the benchmark runs");
    report.ensure_passed().expect("every instance ends as expected");
    // The JSON summary is what scripts read: it must serialize.
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["phases"].is_array());
    assert!(!report.to_text().is_empty());
    report
}

fn assert_all_checked(report: &Report, n: u64) {
    assert_eq!(report.checks.len(), 1);
    assert_eq!(report.checks[0].checked, n);
    assert_eq!(report.checks[0].passed, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ends_every_instance_true() {
    let r = bench(&["verify", "-n", "20", "-c", "5"]).await;
    assert_all_checked(&r, 20);
    let p = r.phase("verify").unwrap();
    assert_eq!(p.count, 20);
    assert_eq!(p.latency[0].count, 20);
    // Start, activity result, answer: three turns each, or two when the answer (raised as soon
    // as the SMS is "sent", inside the activity) is delivered together with the activity result.
    assert!((40..=60).contains(&r.resources.runtime.turns), "{}", r.resources.runtime.turns);
    assert!(r.resources.store.transactions > 0);
    assert!(r.resources.db_bytes > 0);
}

/// `--limits` charges the sample's limits on every start (and refuses none); by default they
/// are lifted, and the report says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_with_limits_charged_over_http_ends_every_instance_true() {
    let r = bench(&["verify", "-n", "20", "--via-http", "--limits"]).await;
    assert!(r.limits);
    assert!(r.to_text().contains("abuse limits: charged on every start"));
    assert_all_checked(&r, 20);
    let lifted = bench(&["verify", "-n", "5"]).await;
    assert!(!lifted.limits);
    assert!(lifted.to_text().contains("abuse limits: LIFTED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_over_http_ends_every_instance_true() {
    let r = bench(&["verify", "-n", "10", "--via-http"]).await;
    assert!(r.via_http);
    assert_all_checked(&r, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_ends_every_instance_false_with_one_due_time() {
    let r = bench(&["timeout", "-n", "20", "--window", "1s"]).await;
    assert_all_checked(&r, 20);
    let fire = r.phase("timers fire").unwrap();
    assert_eq!(fire.latency[0].count, 20);
    // In-process the engine clock stands still during the start: one due time for all.
    assert_eq!(r.extra("timer due spread (s)"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_turn_limit_still_runs_everything() {
    let r =
        bench(&["timeout", "-n", "20", "--window", "1s", "--spread", "1s", "--max-concurrent-turns", "3"])
            .await;
    assert_all_checked(&r, 20);
    assert_eq!(r.max_concurrent_turns, Some(3));
    assert!(r.to_text().contains("max concurrent turns: 3 per node"), "{}", r.to_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_over_http_ends_every_instance_false() {
    let r = bench(&["timeout", "-n", "10", "--window", "1s", "--via-http"]).await;
    assert_all_checked(&r, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn park_then_reopen_then_drain() {
    let r = bench(&["park", "-n", "20", "--restart-check"]).await;
    assert_all_checked(&r, 20);
    assert_eq!(r.phases.len(), 3, "park, reopen, drain");
    assert_eq!(r.phase("drain (answer all)").unwrap().count, 20);
    assert!(r.extra("database bytes per waiting instance (db + WAL)").unwrap() > 0.0);
    assert!(r.extra("reopen: until a new verification completed (s)").is_some());
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["extra"]["waiting instances"].as_f64() == Some(20.0), "{}", json["extra"]);
    // After the reopen the cache is cold: every answer replays its instance (the probe's first
    // turn counts as a cache miss too).
    assert_eq!(r.resources.runtime.replays, 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn park_over_http_reopens_too() {
    let r = bench(&["park", "-n", "10", "--via-http", "--restart-check"]).await;
    assert_all_checked(&r, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_runs_one_at_a_time() {
    let r = bench(&["latency", "-n", "5", "--durability", "normal"]).await;
    assert_all_checked(&r, 5);
    assert_eq!(r.concurrency, 1);
    assert_eq!(r.phases[0].latency[0].count, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_measures_both_patterns() {
    let r = bench(&["fsync", "-n", "10"]).await;
    assert_eq!(r.phases.len(), 2);
    assert!(r.phases.iter().all(|p| p.count == 10 && p.latency[0].count == 10));
}

#[tokio::test]
async fn unknown_stores_are_refused() {
    let e = run_report(args(&["verify", "--store", "mysql"])).await.unwrap_err();
    assert!(e.to_string().contains("unknown --store"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verify_timeout_and_park() {
    // Only for the server's URL; the bench makes (and drops) a schema of its own per run.
    let Some(db) = durable_store_postgres::testing::database().await else { return };
    let url = db.url().to_owned();
    let r = bench(&["verify", "-n", "10", "--store", &url]).await;
    assert_all_checked(&r, 10);
    assert!(r.store.starts_with("postgres"), "{}", r.store);
    assert!(!r.store.contains(&url), "the URL may hold a password and is never reported");
    assert!(r.resources.db_bytes > 0, "the size of the run's schema");
    let r = bench(&["verify", "-n", "5", "--store", &url, "--via-http"]).await;
    assert_all_checked(&r, 5);
    let r = bench(&["timeout", "-n", "5", "--window", "1s", "--store", &url]).await;
    assert_all_checked(&r, 5);
    let r = bench(&["park", "-n", "5", "--store", &url, "--restart-check"]).await;
    assert_all_checked(&r, 5);
}

#[test]
fn windows_are_whole_seconds() {
    assert!(Cli::try_parse_from(["bench", "timeout", "--window", "500ms"]).is_err());
    assert!(Cli::try_parse_from(["bench", "timeout", "--window", "1.5s"]).is_err());
    assert_eq!(args(&["timeout", "--window", "2m"]).window, Some(std::time::Duration::from_secs(120)));
}
