//! The scenarios: each starts a node, drives the sample, checks every result and measures.

use crate::measure::{Latencies, cpu_time, peak_rss_bytes, rss_bytes};
use crate::node::{Node, NodeConfig, Outcome, StoreKind, WAIT_LIMIT};
use crate::report::{Check, Percentiles, Phase, Report, Resources};
use crate::sender::{Delivery, FreezableClock, Ids};
use crate::{BenchArgs, Scenario};
use anyhow::{Context, bail};
use durable_core::EventKind;
use durable_runtime::RuntimeMetrics;
use durable_store::StoreMetrics;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use jiff::Timestamp;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

/// Verifications in flight at once by default (`--concurrency`).
const VERIFY_CONCURRENCY: usize = 10_000;

/// Failures listed in a check (the rest are only counted).
const MAX_LISTED_FAILURES: usize = 5;

struct Ctx {
    store: StoreKind,
    args: BenchArgs,
    n: u64,
    c: usize,
    window: Duration,
    data_dir: PathBuf,
    started_at: String,
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<Report> {
    let store = store_kind(&args.store)?;
    let n = args.instances.unwrap_or(match args.scenario {
        Scenario::Verify | Scenario::Timeout | Scenario::Fsync => 1000,
        Scenario::Park => 10_000,
        Scenario::Latency => 200,
    });
    if n == 0 || n > u64::from(u32::MAX) {
        bail!("--instances must be between 1 and {}", u32::MAX);
    }
    // Over HTTP every request in flight holds a connection (HTTP/1.1), and each costs a file
    // descriptor at both ends: keep the default well below the usual fd limits.
    let c = args.concurrency.unwrap_or(match args.scenario {
        Scenario::Latency | Scenario::Fsync => 1,
        _ if args.via_http => 100,
        // Like a population of 10,000 clients: as many as the engine caches executions by
        // default. Starting every verification at once measured the start queue instead: each
        // execution left the cache before its second turn, and every one in flight held memory.
        Scenario::Verify => (n as usize).min(VERIFY_CONCURRENCY),
        Scenario::Timeout | Scenario::Park => 1000,
    });
    if c == 0 {
        bail!("--concurrency must be at least 1");
    }
    let window = args.window.unwrap_or(match args.scenario {
        Scenario::Timeout => Duration::from_secs(10),
        Scenario::Park => Duration::from_secs(3600),
        _ => Duration::from_secs(90),
    });
    let (temp, data_dir) = match &args.data_dir {
        Some(dir) => (None, dir.clone()),
        None => {
            // In the system temp directory; BENCHMARKS.md says to check it is a real disk
            // (fsync on a RAM disk costs nothing and would flatter every number).
            let temp = tempfile::Builder::new().prefix("durable-bench-").tempdir()?;
            let path = temp.path().to_owned();
            (Some(temp), path)
        }
    };
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let keep = args.keep;
    let ctx = Ctx {
        store,
        n,
        c: c.min(n as usize).max(1),
        window,
        data_dir,
        started_at: Timestamp::now()
            .round(jiff::Unit::Second)
            .map_or_else(|_| String::new(), |t| t.to_string()),
        args,
    };
    let observe = crate::observe::Observe::start(ctx.args.metrics, ctx.args.tracing).await?;
    let mut result = match ctx.args.scenario {
        Scenario::Verify => verify(&ctx).await,
        Scenario::Timeout => timeout(&ctx).await,
        Scenario::Park => park(&ctx).await,
        Scenario::Latency => latency(&ctx).await,
        Scenario::Fsync => fsync(&ctx).await,
    };
    let observed = observe.finish().await;
    if let Ok(report) = &mut result {
        report.extra.extend(observed);
    }
    if keep {
        if let Some(temp) = temp {
            eprintln!("kept the data directory {}", temp.keep().display());
        }
        if let StoreKind::Postgres { schema, .. } = &ctx.store {
            eprintln!("kept the PostgreSQL schema {schema}");
        }
    } else if let Err(e) = ctx.config()?.drop_store().await {
        eprintln!("note: could not drop the bench schema: {e:#}");
    }
    result
}

fn store_kind(store: &str) -> anyhow::Result<StoreKind> {
    if store == "sqlite" {
        return Ok(StoreKind::Sqlite);
    }
    if store.starts_with("postgres://") || store.starts_with("postgresql://") {
        // A schema of its own per run: runs never see each other's instances, and the size of
        // the schema is the size of this run's data.
        let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
        return Ok(StoreKind::Postgres { url: store.to_owned(), schema });
    }
    bail!("unknown --store '{store}': use sqlite or a postgres:// URL")
}

impl Ctx {
    /// The run's instance ids (`--random-ids` or counter-prefixed).
    fn ids(&self) -> Ids {
        Ids::new(self.args.random_ids)
    }

    fn config(&self) -> anyhow::Result<NodeConfig> {
        let mut config = NodeConfig::new(
            self.store.clone(),
            &self.data_dir,
            self.args.durability,
            self.args.via_http,
            self.window,
        )?;
        config.nodes = self.args.nodes.max(1);
        config.max_concurrent_turns = self.args.max_concurrent_turns;
        config.metrics = self.args.metrics;
        config.limits = self.args.limits;
        Ok(config)
    }

    fn report(&self, phases: Vec<Phase>, resources: Resources) -> Report {
        Report {
            scenario: self.args.scenario,
            started_at: self.started_at.clone(),
            instances: self.n,
            concurrency: self.c,
            store: match &self.store {
                StoreKind::Sqlite => "sqlite".into(),
                // The URL may hold a password: only the kind and schema are reported.
                StoreKind::Postgres { schema, .. } if self.args.nodes > 1 => {
                    format!("postgres (schema {schema}, {} nodes)", self.args.nodes)
                }
                StoreKind::Postgres { schema, .. } => format!("postgres (schema {schema})"),
            },
            durability: self.args.durability,
            via_http: self.args.via_http,
            window_secs: self.window.as_secs(),
            max_concurrent_turns: self.args.max_concurrent_turns,
            limits: self.args.limits,
            random_ids: self.args.random_ids,
            data_dir: self.data_dir.display().to_string(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            phases,
            resources,
            extra: Vec::new(),
            checks: Vec::new(),
            notes: Vec::new(),
        }
    }
}

// ------------------------------------------------------------------------------- measuring

/// Baselines at the start of a phase.
struct PhaseTimer {
    name: &'static str,
    t0: Instant,
    cpu0: Duration,
    store0: StoreMetrics,
    runtime0: RuntimeMetrics,
}

impl PhaseTimer {
    fn start(name: &'static str, node: Option<&Node>) -> Self {
        PhaseTimer {
            name,
            t0: Instant::now(),
            cpu0: cpu_time(),
            store0: node.map(Node::store_metrics).unwrap_or_default(),
            runtime0: node.map(Node::runtime_metrics).unwrap_or_default(),
        }
    }

    fn finish(self, node: Option<&Node>, count: u64, latency: Vec<Percentiles>) -> Phase {
        let secs = self.t0.elapsed().as_secs_f64();
        let cpu_secs = cpu_time().saturating_sub(self.cpu0).as_secs_f64();
        let store = node.map(Node::store_metrics).unwrap_or_default();
        let runtime = node.map(Node::runtime_metrics).unwrap_or_default();
        let transactions = store.transactions.saturating_sub(self.store0.transactions);
        let per = |x: f64| if count == 0 { 0.0 } else { x / count as f64 };
        Phase {
            name: self.name.to_owned(),
            count,
            secs,
            per_sec: if secs > 0.0 { count as f64 / secs } else { 0.0 },
            cpu_secs,
            cpu_ms_per_op: per(cpu_secs * 1000.0),
            transactions,
            transactions_per_op: per(transactions as f64),
            turns: runtime.turns.saturating_sub(self.runtime0.turns),
            replays: runtime.replays.saturating_sub(self.runtime0.replays),
            latency,
        }
    }
}

async fn resources(node: &Node, config: &NodeConfig, instances: u64) -> anyhow::Result<Resources> {
    let (db_bytes, wal_bytes) = config.store_bytes().await?;
    Ok(Resources {
        peak_rss_mib: mib(peak_rss_bytes()),
        db_bytes,
        wal_bytes,
        db_bytes_per_instance: (db_bytes + wal_bytes) as f64 / instances.max(1) as f64,
        store: node.store_metrics(),
        runtime: node.runtime_metrics(),
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn progress(n: u64, what: &str) -> ProgressBar {
    // indicatif draws on stderr and hides itself when stderr is not a terminal, so stdout
    // carries only the summary.
    let bar = ProgressBar::new(n);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>8} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} {eta}")
    {
        bar.set_style(style.with_key("eta", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&eta_text(state.pos(), state.elapsed(), state.eta()));
        }));
    }
    bar.set_message(what.to_owned());
    bar
}

/// The time left, once there is something to extrapolate from: the first moments of a run
/// (nothing done yet, or under a second) give estimates like "4m" for a 0.2 s run.
fn eta_text(done: u64, elapsed: Duration, eta: Duration) -> String {
    if done == 0 || elapsed < Duration::from_secs(1) {
        return String::new();
    }
    format!("eta {}", indicatif::HumanDuration(eta))
}

/// Runs `f(0..n)` with at most `c` running at once, each on its own task (so the driver's
/// work spreads over the cores like real clients'); fails on the first error.
async fn run_all<T, F, Fut>(n: u64, c: usize, bar: &ProgressBar, f: F) -> anyhow::Result<Vec<T>>
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(c));
    let mut set = JoinSet::new();
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n as u32 {
        let permit = permits.clone().acquire_owned().await?;
        // Boxed: a client's future is several KiB, and the task would copy it in and out.
        let fut = Box::pin(f(i));
        set.spawn(async move {
            let r = fut.await;
            drop(permit);
            r
        });
        while let Some(done) = set.try_join_next() {
            out.push(done??);
            bar.inc(1);
        }
    }
    while let Some(done) = set.join_next().await {
        out.push(done??);
        bar.inc(1);
    }
    Ok(out)
}

/// Starts verifications `0..n` (at most `c` at once) and waits until each is parked on its
/// timer and its answer (two turns each): the first phase of `timeout` and `park`.
async fn start_all_and_wait(
    ctx: &Ctx,
    node: &Arc<Node>,
    ids: &Ids,
    bar_name: &str,
    phase: &'static str,
) -> anyhow::Result<Phase> {
    let bar = progress(ctx.n, bar_name);
    let turns0 = node.runtime_metrics().turns;
    let timer = PhaseTimer::start(phase, Some(node));
    run_all(ctx.n, ctx.c, &bar, |i| {
        let (node, id) = (node.clone(), ids.id(i));
        async move { node.start_verification(&id).await }
    })
    .await?;
    bar.set_message("waiting");
    wait_for_turns(node, turns0 + 2 * ctx.n, &bar, 2).await?;
    bar.finish_and_clear();
    Ok(timer.finish(Some(node), ctx.n, vec![]))
}

/// Shuts the node down (the store folds its WAL in at close) and measures the database per
/// waiting instance.
async fn close_and_measure(node: Arc<Node>, config: &NodeConfig, n: u64) -> anyhow::Result<(String, f64)> {
    Arc::into_inner(node).context("node still in use")?.shutdown().await;
    let (db, wal) = config.store_bytes().await?;
    Ok((
        "database bytes per waiting instance after close (db + WAL)".to_owned(),
        (db + wal) as f64 / n as f64,
    ))
}

/// Waits until the runtime has committed `target` turns (each verification takes two turns to
/// reach its wait: start → schedule the SMS activity, activity result → create the timer).
async fn wait_for_turns(node: &Node, target: u64, bar: &ProgressBar, per_item: u64) -> anyhow::Result<()> {
    let limit = Instant::now() + WAIT_LIMIT;
    let base = target.saturating_sub(bar.length().unwrap_or(0) * per_item);
    loop {
        let turns = node.runtime_metrics().turns;
        bar.set_position(turns.saturating_sub(base) / per_item.max(1));
        if turns >= target {
            return Ok(());
        }
        if Instant::now() > limit {
            bail!("the engine committed {turns} of {target} turns within {WAIT_LIMIT:?}");
        }
        // A driver-side poll of an in-memory counter; costs nothing measurable.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Routes each delivered code to the task that waits for it.
struct CodeRouter {
    waiting: Mutex<HashMap<u32, oneshot::Sender<u16>>>,
}

impl CodeRouter {
    fn spawn(mut codes: mpsc::UnboundedReceiver<Delivery>) -> Arc<Self> {
        let router = Arc::new(CodeRouter { waiting: Mutex::new(HashMap::new()) });
        let r = router.clone();
        tokio::spawn(async move {
            while let Some((index, code)) = codes.recv().await {
                let waiter = r.waiting.lock().expect("router lock").remove(&index);
                if let Some(tx) = waiter {
                    let _ = tx.send(code);
                }
            }
        });
        router
    }

    /// Register before starting the instance, so the code cannot arrive unannounced.
    fn expect(&self, index: u32) -> oneshot::Receiver<u16> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().expect("router lock").insert(index, tx);
        rx
    }
}

async fn code_for(rx: oneshot::Receiver<u16>, id: &str) -> anyhow::Result<u16> {
    match tokio::time::timeout(WAIT_LIMIT, rx).await {
        Ok(Ok(code)) => Ok(code),
        _ => bail!("no verification code was sent for {id} within {WAIT_LIMIT:?}"),
    }
}

struct Checker {
    check: Check,
    want: bool,
}

impl Checker {
    fn new(want: bool) -> Self {
        Checker {
            check: Check {
                expected: format!("Completed with output {want}"),
                checked: 0,
                passed: 0,
                failures: Vec::new(),
            },
            want,
        }
    }

    fn add(&mut self, id: &str, outcome: &Outcome) {
        self.check.checked += 1;
        if *outcome == Outcome::Verified(self.want) {
            self.check.passed += 1;
        } else if self.check.failures.len() < MAX_LISTED_FAILURES {
            self.check.failures.push(format!("{id}: {outcome:?}"));
        }
    }
}

// ------------------------------------------------------------------------------- scenarios

/// One verification, answered at once: (start → completion, answer → completion, outcome).
async fn verify_one(
    node: &Node,
    router: &CodeRouter,
    ids: &Ids,
    i: u32,
) -> anyhow::Result<(Duration, Duration, String, Outcome)> {
    let id = ids.id(i);
    let code = router.expect(i);
    let t0 = Instant::now();
    node.start_verification(&id).await?;
    let code = code_for(code, &id).await?;
    let t1 = Instant::now();
    node.answer(&id, code).await?;
    node.wait(&id).await?;
    let done = Instant::now();
    let outcome = node.outcome(&id).await?;
    Ok((done - t0, done - t1, id, outcome))
}

async fn verify(ctx: &Ctx) -> anyhow::Result<Report> {
    let config = ctx.config()?;
    let (node, codes) = Node::start(&config, None).await?;
    let node = Arc::new(node);
    let router = CodeRouter::spawn(codes);
    let ids = ctx.ids();
    let bar = progress(ctx.n, "verify");
    let timer = PhaseTimer::start("verify", Some(&node));
    let results = run_all(ctx.n, ctx.c, &bar, |i| {
        let (node, router, ids) = (node.clone(), router.clone(), ids.clone());
        async move { verify_one(&node, &router, &ids, i).await }
    })
    .await;
    bar.finish_and_clear();
    let results = results?;
    let mut total = Latencies::new();
    let mut answer = Latencies::new();
    let mut checker = Checker::new(true);
    for (t, a, id, outcome) in &results {
        total.record(*t);
        answer.record(*a);
        checker.add(id, outcome);
    }
    let latency = [total.percentiles("start → completion"), answer.percentiles("answer → completion")];
    let phase = timer.finish(Some(&node), ctx.n, latency.into_iter().flatten().collect());
    let resources = resources(&node, &config, ctx.n).await?;
    let mut report = ctx.report(vec![phase], resources);
    report.checks.push(checker.check);
    report.notes.push(notes_common(ctx));
    Arc::into_inner(node).context("node still in use")?.shutdown().await;
    Ok(report)
}

async fn timeout(ctx: &Ctx) -> anyhow::Result<Report> {
    let config = ctx.config()?;
    // In-process, the engine clock stands still while the verifications start, so every timer
    // is due at the same instant. The HTTP server runs on the system clock: there the due
    // times spread over the start phase (reported as the due spread).
    // With --spread, the frozen clock moves forward as codes are delivered, so the due times
    // spread evenly over that span instead of falling on one instant.
    let clock = (!ctx.args.via_http)
        .then(|| Arc::new(FreezableClock::frozen_with_spread(ctx.args.spread.unwrap_or_default(), ctx.n)));
    let (node, mut codes) = Node::start(&config, clock.clone()).await?;
    let node = Arc::new(node);
    let stepping = clock.clone();
    tokio::spawn(async move {
        while codes.recv().await.is_some() {
            if let Some(clock) = &stepping {
                clock.step();
            }
        }
    });
    let ids = ctx.ids();

    let start_phase = start_all_and_wait(ctx, &node, &ids, "start", "start (to waiting)").await?;
    if let Some(clock) = &clock {
        clock.thaw();
    }

    // Listen for every completion; the listener resolves when the completing turn is
    // committed, so the lateness below is fire → committed, without a status read in between.
    let listeners: Vec<_> =
        (0..ctx.n as u32).map(|i| node.store().listen_for_completion(&ids.id(i))).collect();
    let listening_at = Timestamp::now();
    let timer = PhaseTimer::start("timers fire", Some(&node));
    // Timers that fired before their listener existed (starting took longer than the window)
    // would never wake it: take those completions from the store, at their completion time.
    let early = finished_instances(&node).await?;
    if !early.is_empty() {
        eprintln!(
            "note: {} timer(s) fired before the bench listened (starting outlasted --window); their completion time \
             comes from the store",
            early.len()
        );
    }
    let mut woken = vec![None; ctx.n as usize];
    let mut pending = FuturesUnordered::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        match early.get(&ids.id(i as u32)) {
            Some(done) => woken[i] = Some(*done),
            None => pending.push(async move {
                let _ = listener.await;
                (i as u32, Timestamp::now())
            }),
        }
    }
    let bar = progress(ctx.n, "timers");
    bar.inc(early.len() as u64);
    while let Some((i, at)) = pending.next().await {
        woken[i as usize] = Some(at);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut fire_phase = timer.finish(Some(&node), ctx.n, vec![]);

    // After the measurement: due times from history, results, lateness.
    let mut late = Latencies::new();
    let mut checker = Checker::new(false);
    let (mut first_due, mut last_due, mut last_done) =
        (None::<Timestamp>, None::<Timestamp>, None::<Timestamp>);
    for (i, woke) in woken.into_iter().enumerate() {
        let id = ids.id(i as u32);
        let mut outcome = node.outcome(&id).await?;
        let mut done = woke.context("a completion was not observed")?;
        if matches!(outcome, Outcome::Other(_)) {
            // The listener may resolve spuriously: wait for real, at the cost of a later time.
            node.wait(&id).await?;
            done = Timestamp::now();
            outcome = node.outcome(&id).await?;
        }
        checker.add(&id, &outcome);
        let due = node
            .client()
            .history(&id)
            .await?
            .iter()
            .find_map(|e| match e.kind {
                EventKind::TimerCreated { fire_at, .. } => Some(fire_at),
                _ => None,
            })
            .with_context(|| format!("{id} has no TimerCreated in its history"))?;
        let lateness = done.duration_since(due);
        late.record(Duration::try_from(lateness).unwrap_or_default());
        first_due = Some(first_due.map_or(due, |t| t.min(due)));
        last_due = Some(last_due.map_or(due, |t| t.max(due)));
        last_done = Some(last_done.map_or(done, |t| t.max(done)));
    }
    let (first_due, last_due, last_done) = (
        first_due.context("no instances")?,
        last_due.context("no instances")?,
        last_done.context("no instances")?,
    );
    // The phase runs from the first due time to the last completion (the wait before the
    // first timer is idle time, and costs no CPU to speak of).
    fire_phase.secs = secs_between(first_due, last_done);
    fire_phase.per_sec = if fire_phase.secs > 0.0 { ctx.n as f64 / fire_phase.secs } else { 0.0 };
    fire_phase.latency = late.percentiles("lateness: due → completion committed").into_iter().collect();
    let resources = resources(&node, &config, ctx.n).await?;
    let mut report = ctx.report(vec![start_phase, fire_phase], resources);
    report.extra.push(("timer due spread (s)".into(), secs_between(first_due, last_due)));
    report.checks.push(checker.check);
    if listening_at > first_due {
        report.notes.push(format!(
            "the start phase took longer than the window: the first timer was due {:.3} s before the driver was listening, so lateness includes start time; use a longer --window",
            secs_between(first_due, listening_at)
        ));
    }
    if ctx.args.via_http {
        report.notes.push(
            "over HTTP the engine runs on the system clock, so the due times spread over the start phase (see the due spread) instead of all falling in the same instant".into(),
        );
    }
    report.notes.push(notes_common(ctx));
    Arc::into_inner(node).context("node still in use")?.shutdown().await;
    Ok(report)
}

fn secs_between(a: Timestamp, b: Timestamp) -> f64 {
    b.duration_since(a).as_secs_f64()
}

async fn park(ctx: &Ctx) -> anyhow::Result<Report> {
    let config = ctx.config()?;
    let (node, mut codes) = Node::start(&config, None).await?;
    let mut node = Arc::new(node);
    // Codes are kept in a flat table (2 bytes per instance) so the driver adds next to nothing
    // to the RSS measured per waiting instance.
    let n = ctx.n as usize;
    let collector = tokio::spawn(async move {
        let mut table = vec![u16::MAX; n];
        let mut got = 0;
        while got < n {
            match codes.recv().await {
                Some((i, code)) => {
                    if let Some(slot) = table.get_mut(i as usize) {
                        got += usize::from(*slot == u16::MAX);
                        *slot = code;
                    }
                }
                None => break,
            }
        }
        table
    });
    let ids = ctx.ids();
    let rss0 = rss_bytes();
    let (db0, wal0) = config.store_bytes().await?;

    let park_phase = start_all_and_wait(ctx, &node, &ids, "park", "park (start to waiting)").await?;
    let rss1 = rss_bytes();
    let (db1, wal1) = config.store_bytes().await?;
    let parked_resources = resources(&node, &config, ctx.n).await?;
    let codes = collector.await?;
    if codes.contains(&u16::MAX) {
        bail!("not every parked verification sent its code");
    }
    let mut phases = vec![park_phase];
    let mut extra = vec![
        ("waiting instances".to_owned(), ctx.n as f64),
        ("RSS after parking (MiB)".to_owned(), mib(rss1)),
        ("RSS per waiting instance (bytes)".to_owned(), rss1.saturating_sub(rss0) as f64 / ctx.n as f64),
        (
            "database bytes per waiting instance (db + WAL)".to_owned(),
            (db1 + wal1).saturating_sub(db0 + wal0) as f64 / ctx.n as f64,
        ),
        ("cached executions while parked".to_owned(), parked_resources.runtime.cached_executions as f64),
    ];

    if ctx.args.no_drain {
        // Leave the instances waiting (with --keep the parked database can be inspected).
        extra.push(close_and_measure(node, &config, ctx.n).await?);
        let mut report = ctx.report(phases, parked_resources);
        report.extra = extra;
        return Ok(report);
    }

    if ctx.args.restart_check {
        extra.push(close_and_measure(node, &config, ctx.n).await?);
        let timer = PhaseTimer::start("reopen (open + one verification)", None);
        let t0 = Instant::now();
        let (reopened, codes) = Node::start(&config, None).await?;
        let opened = t0.elapsed();
        let router = CodeRouter::spawn(codes);
        // The probe is a new instance (index n), so it cannot collide with the parked ones.
        let (_, _, probe_id, outcome) = verify_one(&reopened, &router, &ids, ctx.n as u32).await?;
        let serving = t0.elapsed();
        let mut phase = timer.finish(Some(&reopened), 1, vec![]);
        // Counters of the reopened node start at zero; the phase's own are what it did.
        phase.secs = serving.as_secs_f64();
        phases.push(phase);
        extra.push(("reopen: store + runtime open (s)".to_owned(), opened.as_secs_f64()));
        extra.push(("reopen: until a new verification completed (s)".to_owned(), serving.as_secs_f64()));
        if outcome != Outcome::Verified(true) {
            bail!("the probe verification {probe_id} after the reopen ended {outcome:?}");
        }
        node = Arc::new(reopened);
    }

    let bar = progress(ctx.n, "drain");
    let codes = Arc::new(codes);
    let timer = PhaseTimer::start("drain (answer all)", Some(&node));
    let results = run_all(ctx.n, ctx.c, &bar, |i| {
        let (node, id, codes) = (node.clone(), ids.id(i), codes.clone());
        async move {
            let t0 = Instant::now();
            node.answer(&id, codes[i as usize]).await?;
            node.wait(&id).await?;
            let took = t0.elapsed();
            Ok((took, id))
        }
    })
    .await;
    bar.finish_and_clear();
    let results = results?;
    let mut answer = Latencies::new();
    for (took, _) in &results {
        answer.record(*took);
    }
    let drain =
        timer.finish(Some(&node), ctx.n, answer.percentiles("answer → completion").into_iter().collect());
    phases.push(drain);
    let mut checker = Checker::new(true);
    for (_, id) in &results {
        checker.add(id, &node.outcome(id).await?);
    }
    let mut resources = resources(&node, &config, ctx.n).await?;
    resources.peak_rss_mib = mib(peak_rss_bytes());
    let mut report = ctx.report(phases, resources);
    report.extra = extra;
    report.checks.push(checker.check);
    report.notes.push(
        "RSS per waiting instance is the growth of the whole process while parking: engine (execution cache of up to 10,000 executions, timer heap, ready index), SQLite page caches, allocator slack, and 2 bytes per instance of the driver's code table".into(),
    );
    if ctx.args.restart_check {
        report.notes.push("the drain ran after the reopen, on a cold execution cache: every answer replays its history first".into());
    }
    report.notes.push(notes_common(ctx));
    Arc::into_inner(node).context("node still in use")?.shutdown().await;
    Ok(report)
}

async fn latency(ctx: &Ctx) -> anyhow::Result<Report> {
    let config = ctx.config()?;
    let (node, codes) = Node::start(&config, None).await?;
    let router = CodeRouter::spawn(codes);
    let ids = ctx.ids();
    // A few unrecorded rounds first: the first turns pay for lazily initialised state
    // (connections' statement caches, allocator pools) that a running server has paid long ago.
    let warmup = (ctx.n / 10).min(10) as u32;
    for i in 0..warmup {
        verify_one(&node, &router, &ids, i).await?;
    }
    let bar = progress(ctx.n, "latency");
    let timer = PhaseTimer::start("latency (one at a time)", Some(&node));
    let (mut to_code, mut answer) = (Latencies::new(), Latencies::new());
    let mut checker = Checker::new(true);
    for i in warmup..warmup + ctx.n as u32 {
        let id = ids.id(i);
        let code = router.expect(i);
        let turns = node.runtime_metrics().turns;
        let t0 = Instant::now();
        node.start_verification(&id).await?;
        let code = code_for(code, &id).await?;
        to_code.record(t0.elapsed());
        // The code is handed over inside the activity, before its result is committed; wait
        // until the instance is really waiting (its second turn committed, the timer set), as
        // it is when a person types the code, so the latency below is that of the answer's
        // own turn. One instance at a time, so the runtime's turn counter tells exactly.
        while node.runtime_metrics().turns < turns + 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let t1 = Instant::now();
        node.answer(&id, code).await?;
        node.wait(&id).await?;
        answer.record(t1.elapsed());
        checker.add(&id, &node.outcome(&id).await?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let latency = [
        answer.percentiles("raise event → completion committed (wait_for_completion)"),
        to_code.percentiles("start → SMS code delivered"),
    ];
    let phase = timer.finish(Some(&node), ctx.n, latency.into_iter().flatten().collect());
    let resources = resources(&node, &config, ctx.n + u64::from(warmup)).await?;
    let mut report = ctx.report(vec![phase], resources);
    report.checks.push(checker.check);
    report.notes.push(format!("{warmup} warm-up verification(s) ran first and are not counted"));
    report.notes.push(notes_common(ctx));
    node.shutdown().await;
    Ok(report)
}

async fn fsync(ctx: &Ctx) -> anyhow::Result<Report> {
    let path = ctx.data_dir.join("fsync-probe.bin");
    let n = ctx.n;
    let mut phases = Vec::new();
    for (name, append) in [("append 4 KiB + fdatasync", true), ("overwrite 4 KiB + fdatasync", false)] {
        let path = path.clone();
        let timer = PhaseTimer::start(name, None);
        let h = tokio::task::spawn_blocking(move || fsync_loop(&path, n, append)).await??;
        phases.push(timer.finish(None, n, h.percentiles("one write + fdatasync").into_iter().collect()));
    }
    let _ = std::fs::remove_file(&path);
    let mut report =
        ctx.report(phases, Resources { peak_rss_mib: mib(peak_rss_bytes()), ..Resources::default() });
    report.notes.push(
        "a SQLite commit with synchronous=FULL in WAL mode costs about one such fsync (appending to the WAL); compare transactions/s of the other scenarios with this rate".into(),
    );
    Ok(report)
}

/// `n` times: write 4 KiB (appending, or over the same block) and `fdatasync`.
fn fsync_loop(path: &Path, n: u64, append: bool) -> anyhow::Result<Latencies> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
    let block = vec![0x5au8; 4096];
    let mut h = Latencies::new();
    for i in 0..n {
        let offset = if append { i * 4096 } else { 0 };
        let t = Instant::now();
        file.write_all_at(&block, offset)?;
        file.sync_data()?;
        h.record(t.elapsed());
    }
    Ok(h)
}

fn notes_common(ctx: &Ctx) -> String {
    let who = if ctx.args.via_http { "engine, driver, HTTP server and client" } else { "engine and driver" };
    match ctx.store {
        StoreKind::Sqlite => format!(
            "CPU is the whole process ({who}); transactions are SQLite write transactions, each one WAL fsync with durability full"
        ),
        StoreKind::Postgres { .. } => format!(
            "CPU is this process only ({who}), not the PostgreSQL server's; transactions are store calls (one PostgreSQL transaction each, synchronous_commit on; --durability does not apply)"
        ),
    }
}

/// Every finished instance of the run, with its completion time.
async fn finished_instances(node: &Node) -> anyhow::Result<HashMap<String, Timestamp>> {
    use durable_core::RuntimeStatus::{Completed, Failed, Terminated};
    let mut query = durable_store::InstanceQuery {
        statuses: vec![Completed, Failed, Terminated],
        page_size: 1000,
        ..Default::default()
    };
    let mut done = HashMap::new();
    loop {
        let page = node.client().list(&query).await?;
        for state in page.instances {
            done.insert(state.instance_id, state.completed_at.unwrap_or(state.last_updated_at));
        }
        match page.continuation {
            Some(token) => query.continuation = Some(token),
            None => return Ok(done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_time_left_is_guessed_in_the_first_second() {
        let wild = Duration::from_secs(240);
        assert_eq!(eta_text(0, Duration::from_millis(100), wild), "");
        assert_eq!(eta_text(50, Duration::from_millis(200), wild), "");
        assert_eq!(eta_text(500, Duration::from_secs(2), Duration::from_secs(3)), "eta 3 seconds");
    }
}
