//! The PostgreSQL store of **durable**: a [`durable_store::Store`] that any number of
//! `durable serve` processes share through one database, with no broker. Orchestration turns,
//! activities and timers are spread over the nodes; a node that dies leaves its work to the
//! others when its leases expire.
//!
//! ```no_run
//! use durable_store::{CreateInstance, Store};
//! use durable_store_postgres::{PostgresStore, PostgresStoreOptions};
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), durable_store::Error> {
//! let mut options = PostgresStoreOptions::new("postgres://durable@db.internal/app");
//! options.schema = "orders_hub".into(); // one schema per task hub; created and migrated here
//! let store = PostgresStore::connect(options).await?; // cheap to clone
//!
//! store
//!     .create_instance(CreateInstance {
//!         instance_id: "order-42".into(),
//!         name: "ProcessOrder".into(),
//!         execution_id: "e1".into(),
//!         input: None,
//!         parent: None,
//!         created_at: durable_core::Timestamp::now(),
//!         trace: None,
//!     })
//!     .await?;
//! // Any node: wakes at once when some node enqueues work, or when a timer comes due.
//! store.wait_for_orchestration_work(Duration::from_secs(30)).await;
//! let work = store.fetch_orchestration_work(10, Duration::from_secs(60)).await?;
//! println!("{} instance(s) to run", work.len());
//! store.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Design
//!
//! **Leases are rows, fenced by tokens.** An orchestration lease is two columns of the
//! instance row, `lock_token` and `locked_until`; an activity lease the same two columns of the
//! activity row. A fetch takes ready rows with `SELECT … ORDER BY … LIMIT n FOR UPDATE SKIP
//! LOCKED`, stamps each with a fresh token from a sequence and returns them, so concurrent
//! fetchers on any nodes never get the same instance, and a candidate another fetcher holds is
//! skipped in favour of the next one rather than turned into "no work". Every later operation
//! (commit, complete, renew, abandon) names its token and succeeds only while the row still
//! carries it and `locked_until` is ahead: once a lease has expired and another node fetched
//! the work, the old holder's operations fail with [`Error::LeaseLost`] and write nothing.
//! History rows are keyed by (instance, execution, first event position) and a commit must
//! present the stored history length, so a turn can never be appended twice. No database lock
//! is held across user code.
//!
//! **Group commit in set-based functions.** Each write is a call of a PL/pgSQL function
//! created by the migrations, in autocommit mode, so one round trip is one transaction. The
//! four hot writes (turn commits, creates, client messages, activity completions) are grouped:
//! concurrent calls queue up and are sent together as one call of a batch function
//! (`commit_turns`, `create_instances`, `send_messages`, `complete_activities`) whose
//! statements each handle the whole batch, so a batch of 200 turns shares one round trip, one
//! transaction and one WAL flush, and runs each statement once rather than 200 times (on a
//! small server most of the time per call was statement start-up, not row work). A batch
//! starts as soon as a slot is free, so a lone call is never delayed to fill one. Each call
//! still gets exactly its own answer; calls the batch forms do not cover (sub-orchestrations,
//! messages to other instances, continue-as-new, creates of taken ids) use the single-call
//! functions (`commit_turn`, `create_instance`, …), where a whole turn travels as typed arrays
//! in one statement. A fetch returns the instance rows and their visible messages in one
//! result. Functions lock every instance row they will write in instance-id order first, which
//! keeps per-instance message order equal to commit order and concurrent writers free of
//! deadlocks; `synchronous_commit` is left on. Connections plan each statement once
//! (`plan_cache_mode=force_generic_plan`) and without sequential scans, so plans made while a
//! new hub's tables are empty stay right as they grow.
//!
//! **Finding work is an index probe.** Each instance row keeps `next_visible_at`, the earliest
//! visibility time of its inbox (`-infinity` when a message is visible now, NULL when the inbox
//! is empty), maintained exactly by the functions that write messages. A partial index on
//! `GREATEST(next_visible_at, locked_until)` then answers both "which instances are ready" and
//! "when does the next one become ready" (a timer comes due, a retry delay or a lease ends)
//! without scanning messages; instances parked on far timers cost nothing.
//!
//! **Timers are messages** with a future `visible_at`. Whichever node is alive fetches the
//! instance when it comes due, and the timer is consumed by the commit of the turn that
//! received it, so it fires exactly once in history even if that turn runs twice.
//!
//! **Notifications.** Each store keeps one dedicated connection that `LISTEN`s on a channel
//! named after the schema. Write operations wake this node's waiters at once and queue a
//! notification that this connection sends right after the data commit: `o` (orchestration
//! work), `a` (activity work), `c:<id>` (an instance finished, for
//! [`Store::listen_for_completion`] on other nodes). Notifications are deliberately not sent
//! inside the data transactions: PostgreSQL serializes the commits of notifying transactions
//! behind one lock held through the WAL flush, which would cap the cluster at one commit per
//! fsync. [`Store::wait_for_orchestration_work`] sleeps until a notification, the next due
//! time known from the index, or `max_wait`; while the listener is reconnecting it polls every
//! [`PostgresStoreOptions::fallback_poll`] instead, and after a reconnect every waiter looks
//! again, so a missed notification costs latency, never work.
//!
//! **Clocks.** Visibility and lease times come from [`PostgresStoreOptions::clock`] (the
//! system clock by default) of the node doing the operation, so nodes should keep their clocks
//! synchronized (NTP); skew shifts when leases expire and timers fire, but cannot break
//! fencing, which rests on tokens.
//!
//! **Schemas.** Everything lives in one schema (default `durable`), created and migrated at
//! [`PostgresStore::connect`] under an advisory lock, versioned in `<schema>.schema_version`; a
//! schema migrated by a newer build is refused. Several task hubs share a database by using
//! several schemas.
//!
//! **Deployment notes.** Each node uses [`PostgresStoreOptions::pool_size`] connections plus
//! one for the listener, which needs a real session: through PgBouncer use session pooling
//! (LISTEN does not work in transaction pooling). Connections are made without TLS for now
//! (`sslmode=disable`/`prefer`), so reach a remote server over a private network or a tunnel.
//!
//! **What a purge leaves.** A purge deletes the rows, but PostgreSQL keeps the old row versions
//! in the table files until `VACUUM` (autovacuum) marks their space free, and the bytes stay
//! until the space is reused; the WAL, replicas, WAL archives and backups keep them for their own
//! retention. Run `VACUUM` (or `VACUUM FULL`) on the schema's tables to make a purge final.
//!
//! Status-row timestamps are kept at microsecond precision (event timestamps inside histories
//! and messages keep full precision).

mod batch;
mod codec;
mod group;
mod limits;
mod notify;
mod ops;
mod read;
mod schema;
#[cfg(feature = "testing")]
pub mod testing;

use codec::{Micros, pg, retryable};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use durable_core::HistoryEvent;
use durable_store::{
    ActivityLease, ActivityOutcome, ActivityWorkItem, Backlog, Clock, CreateInstance, Error, InstancePage,
    InstanceQuery, InstanceState, LimitCharge, LimitRefund, MAX_MESSAGES_PER_WORK_ITEM, OrchestrationLease,
    OrchestrationWorkItem, PurgeFilter, Result, Store, StoreMetrics, SystemClock, TurnCommit,
};
use group::Group;
use notify::Signals;
use parking_lot::Mutex;
use schema::Sql;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio_postgres::types::ToSql;

pub use schema::SCHEMA_VERSION;

/// Options of [`PostgresStore::connect`].
#[derive(Clone)]
pub struct PostgresStoreOptions {
    /// Connection string (`postgres://user:password@host:port/db?...` or `host=... user=...`).
    pub url: String,
    /// Schema holding this task hub's tables (default `durable`): lower-case letters, digits
    /// and underscores. Created if missing. The notification channel has the same name.
    pub schema: String,
    /// Most pooled connections (default twice the CPU count, between 4 and 16). The listener
    /// uses one more.
    pub pool_size: usize,
    /// Longest sleep of a waiter while the listener connection is down (default 1 s).
    pub fallback_poll: Duration,
    /// Connect timeout of each connection (default 10 s, unless the URL sets one).
    pub connect_timeout: Duration,
    /// The clock for visibility and leases (default the system clock).
    pub clock: Arc<dyn Clock>,
}

impl PostgresStoreOptions {
    /// The defaults for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        PostgresStoreOptions {
            url: url.into(),
            schema: "durable".into(),
            pool_size: (cpus * 2).clamp(4, 16),
            fallback_poll: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for PostgresStoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never printed.
        f.debug_struct("PostgresStoreOptions")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("fallback_poll", &self.fallback_poll)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// The PostgreSQL store. Cheap to clone: clones share the pool and the listener.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    sql: Sql,
    schema: String,
    clock: Arc<dyn Clock>,
    fallback_poll: Duration,
    signals: Arc<Signals>,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
    metrics: Metrics,
    /// Task ids of the activity leases this store handed out, so a completion can build its
    /// `TaskCompleted`/`TaskFailed` event without first reading the row (one round trip).
    activity_tasks: Mutex<HashMap<i64, LeasedActivity>>,
    groups: Groups,
}

/// The group-commit queues of the hot writes (see `group.rs`).
struct Groups {
    turns: Group<TurnCommit, ()>,
    creates: Group<CreateInstance, ()>,
    limited_creates: Group<(CreateInstance, Vec<LimitCharge>), ()>,
    messages: Group<(String, HistoryEvent), ()>,
    completions: Group<batch::Completion, bool>,
}

impl Groups {
    /// Starts the collectors. They hold the store weakly: dropping the last store handle
    /// drops the queues, which ends them.
    fn start(store: &Weak<Inner>) -> Groups {
        fn group<I: Send + 'static, O: Send + 'static, Fut>(
            store: &Weak<Inner>,
            run: fn(PostgresStore, Vec<I>) -> Fut,
        ) -> Group<I, O>
        where
            Fut: Future<Output = Vec<Result<O>>> + Send + 'static,
        {
            let store = store.clone();
            let meters = durable_store::meters::CommitMeters::new("postgres");
            Group::start(move |items: Vec<I>| {
                let store = store.upgrade().map(|inner| PostgresStore { inner });
                let meters = meters.clone();
                async move {
                    match store {
                        Some(store) => {
                            let (operations, started) = (items.len(), std::time::Instant::now());
                            let results = run(store, items).await;
                            // A batch is one transaction: it committed if any call succeeded.
                            if results.iter().any(Result::is_ok) {
                                meters.committed(operations, started.elapsed());
                            }
                            results
                        }
                        None => items.iter().map(|_| Err(codec::closed())).collect(),
                    }
                }
            })
        }
        Groups {
            turns: group(store, |s, items| async move { s.commit_turn_batch(items).await }),
            creates: group(store, |s, items| async move { s.create_batch(items).await }),
            limited_creates: group(store, |s, items| async move { s.create_limited_batch(items).await }),
            messages: group(store, |s, items| async move { s.send_batch(items).await }),
            completions: group(store, |s, items| async move { s.complete_batch(items).await }),
        }
    }
}

#[derive(Clone, Copy)]
struct LeasedActivity {
    token: u64,
    task_id: u32,
    expires: Micros,
}

/// Entries kept in `activity_tasks` before expired ones are pruned.
const ACTIVITY_MEMO_PRUNE: usize = 4096;

/// How many times a call that lost a deadlock or serialization conflict runs again.
const RETRIES: usize = 3;

#[derive(Default)]
struct Metrics {
    transactions: AtomicU64,
    turns: AtomicU64,
    activity_completions: AtomicU64,
    client_writes: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.lock().take() {
            listener.abort();
        }
    }
}

impl PostgresStore {
    /// Connects, creates or migrates the schema, and starts the listener.
    ///
    /// Fails with [`Error::Invalid`] for a bad URL or schema name, and with
    /// [`Error::Unavailable`] when the server cannot be reached or its schema is newer than
    /// this build.
    pub async fn connect(options: PostgresStoreOptions) -> Result<PostgresStore> {
        schema::validate_schema_name(&options.schema)?;
        // The parser's message never repeats the URL (which may hold a password).
        let mut config: tokio_postgres::Config = options
            .url
            .parse()
            .map_err(|e| Error::Invalid(format!("the PostgreSQL connection string is not valid: {e}")))?;
        if config.get_application_name().is_none() {
            config.application_name("durable");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        // Notices a dead peer (a node behind a broken network) within about a minute.
        config.keepalives_idle(Duration::from_secs(30));
        // Plan every statement once per connection. The functions' statements take arrays and
        // ranges as parameters, so PostgreSQL's default (plan per call until a generic plan
        // looks as cheap) kept re-planning them on every call: a quarter of the server's CPU.
        // Those once-made plans must not depend on table statistics: a new task hub's tables
        // look empty when its connections first plan, and a sequential scan planned for an
        // empty inbox stays in the plan as the inbox grows to millions of rows. Every hot
        // statement has an index to use, so sequential scans are priced out (ad-hoc queries
        // without a usable index still scan).
        let options_flag = "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off";
        let session_options = match config.get_options() {
            Some(user) if !user.is_empty() => format!("{user} {options_flag}"),
            _ => options_flag.to_owned(),
        };
        config.options(&session_options);

        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot build the connection pool: {e}")))?;
        {
            let mut client = pool.get().await.map_err(unavailable)?;
            schema::migrate(&mut client, &options.schema).await?;
            // Keeps the per-session status counters few: those of ended sessions are folded.
            let fold = Sql::new(&options.schema).fold_instance_counts;
            if let Err(e) = client.batch_execute(&fold).await {
                tracing::warn!(error = %e, "folding the instance counters failed; counts stay exact");
            }
        }

        let signals = Arc::new(Signals::default());
        let (ready_tx, ready_rx) = oneshot::channel();
        let listener = tokio::spawn(notify::run(config, options.schema.clone(), signals.clone(), ready_tx));
        let store = PostgresStore {
            inner: Arc::new_cyclic(|weak| Inner {
                groups: Groups::start(weak),
                pool,
                sql: Sql::new(&options.schema),
                schema: options.schema,
                clock: options.clock,
                fallback_poll: options.fallback_poll,
                signals,
                listener: Mutex::new(Some(listener)),
                metrics: Metrics::default(),
                activity_tasks: Mutex::new(HashMap::new()),
            }),
        };
        ready_rx.await.map_err(|_| Error::Unavailable("the listener task stopped".into()))??;
        Ok(store)
    }

    /// The schema this store works in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// True while the listener connection is subscribed (diagnostics; without it waiters poll).
    pub fn is_listening(&self) -> bool {
        self.inner.signals.listening.load(Ordering::Acquire)
    }

    fn now(&self) -> Micros {
        Micros::of(self.inner.clock.now())
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.signals.closed.load(Ordering::Acquire) { Err(codec::closed()) } else { Ok(()) }
    }

    fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs one statement on a pooled connection (prepared once per connection), running it
    /// again when it lost a deadlock or serialization conflict (it was rolled back whole).
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<tokio_postgres::Row>> {
        self.check_open()?;
        let mut attempt = 0;
        loop {
            let client = self.inner.pool.get().await.map_err(unavailable)?;
            let stmt = client.prepare_cached(sql).await.map_err(pg)?;
            match client.query(&stmt, params).await {
                Ok(rows) => return Ok(rows),
                Err(e) if retryable(&e) && attempt < RETRIES => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "retrying a statement that lost a conflict");
                }
                Err(e) => return Err(pg(e)),
            }
        }
    }

    async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<tokio_postgres::Row> {
        self.query(sql, params)
            .await?
            .pop()
            .ok_or_else(|| codec::corrupt("a statement that returns one row returned none".into()))
    }

    /// Sleeps until `notify` fires, the next due time (from `due_sql`) passes, or `max_wait`
    /// ends. The waiter is registered before the due time is read, so a notification in
    /// between is not lost.
    async fn wait(&self, notify: &Notify, due_sql: &str, max_wait: Duration) {
        if self.check_open().is_err() {
            return;
        }
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut wait = max_wait;
        if !self.is_listening() {
            wait = wait.min(self.inner.fallback_poll);
        }
        match self.query_one(due_sql, &[]).await.map(|row| row.get::<_, Option<Micros>>(0)) {
            Ok(Some(due)) => {
                let now = self.now();
                if due <= now {
                    return;
                }
                wait = wait.min(due.since(now));
            }
            Ok(None) => {}
            Err(e) => {
                if self.check_open().is_err() {
                    return;
                }
                tracing::debug!(error = %e, "could not read the next due time; polling");
                wait = wait.min(self.inner.fallback_poll);
            }
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }

    /// The task id of a leased activity: remembered from the fetch, else read.
    async fn activity_task(&self, lease: &ActivityLease) -> Result<Option<u32>> {
        let known = self.inner.activity_tasks.lock().get(&lease.activity_id).copied();
        if let Some(a) = known.filter(|a| a.token == lease.token) {
            return Ok(Some(a.task_id));
        }
        let token = ops::token_param(lease.token);
        let rows = self.query(&self.inner.sql.activity_task, &[&lease.activity_id, &token]).await?;
        Ok(rows.first().and_then(|r| u32::try_from(r.get::<_, i64>(0)).ok()))
    }

    /// `create_instance` as its own call (replaces a finished instance, reports an unfinished one).
    async fn create_instance_single(&self, request: &CreateInstance) -> Result<()> {
        let p = ops::CreateParams::new(request)?;
        let now = self.now();
        let row = self
            .query_one(
                &self.inner.sql.create_instance,
                &[
                    &p.id,
                    &p.name,
                    &p.execution,
                    &p.input,
                    &p.parent_id,
                    &p.parent_execution,
                    &p.parent_task,
                    &p.created,
                    &p.start_event,
                    &now,
                ],
            )
            .await?;
        if let Some(status) = row.get::<_, Option<i16>>(0) {
            return Err(Error::AlreadyExists {
                instance_id: request.instance_id.clone(),
                status: codec::status_from(i64::from(status))?,
            });
        }
        self.count(&self.inner.metrics.transactions);
        self.count(&self.inner.metrics.client_writes);
        self.inner.signals.orchestration_work();
        Ok(())
    }

    /// `commit_turn` as its own call (any turn).
    async fn commit_turn_single(&self, commit: &TurnCommit) -> Result<()> {
        let params = ops::TurnParams::new(commit, self.now())?;
        let row = self.query_one(&self.inner.sql.commit_turn, &params.params()).await?;
        match row.get::<_, i32>("r_code") {
            0 => {}
            4 => return Err(Error::LeaseLost),
            _ => return Err(Error::Conflict(row.get::<_, Option<String>>("r_detail").unwrap_or_default())),
        }
        self.count(&self.inner.metrics.transactions);
        self.count(&self.inner.metrics.turns);
        let signals = &self.inner.signals;
        if row.get::<_, bool>("r_wake_orchestrations") {
            signals.orchestration_work();
        }
        if row.get::<_, bool>("r_wake_activities") {
            signals.activity_work();
        }
        if row.get::<_, bool>("r_finished") {
            signals.finished(&commit.lease.instance_id);
        }
        Ok(())
    }

    fn forget_activity(&self, activity_id: i64) {
        self.inner.activity_tasks.lock().remove(&activity_id);
    }
}

/// A pool error: the server cannot be reached (or the pool is closed).
fn unavailable(e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Closed => codec::closed(),
        deadpool_postgres::PoolError::Backend(e) => pg(e),
        e => Error::Unavailable(format!("cannot get a PostgreSQL connection: {e}")),
    }
}

fn lease_lost_if_none<T>(v: Option<T>) -> Result<T> {
    v.ok_or(Error::LeaseLost)
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn create_instance(&self, request: CreateInstance) -> Result<()> {
        self.check_open()?;
        if request.parent.is_some() {
            return self.create_instance_single(&request).await;
        }
        self.inner.groups.creates.call(request).await
    }

    async fn create_instance_limited(
        &self,
        request: CreateInstance,
        charges: Vec<LimitCharge>,
    ) -> Result<()> {
        if charges.is_empty() {
            return self.create_instance(request).await;
        }
        self.check_open()?;
        if request.parent.is_some() {
            return self.create_limited(&request, &charges).await;
        }
        self.inner.groups.limited_creates.call((request, charges)).await
    }

    async fn refund_limits(&self, refunds: Vec<LimitRefund>) -> Result<()> {
        self.refund(refunds).await
    }

    async fn limit_reference(&self, key: &str) -> Result<Option<String>> {
        self.reference(key).await
    }

    async fn ready_backlog(&self, at_most: u64) -> Result<Option<u64>> {
        self.backlog(at_most).await
    }

    async fn send_message(&self, instance_id: &str, event: HistoryEvent) -> Result<()> {
        self.check_open()?;
        self.inner.groups.messages.call((instance_id.to_owned(), event)).await
    }

    async fn get_instance(&self, instance_id: &str) -> Result<Option<InstanceState>> {
        let rows = self.query(&self.inner.sql.get_instance, &[&instance_id]).await?;
        rows.first().map(|r| read::instance_from_row(r, 0)).transpose()
    }

    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>> {
        let rows = self.query(&self.inner.sql.read_history, &[&instance_id]).await?;
        read::history_from_rows(&rows)?.ok_or_else(|| Error::NotFound { instance_id: instance_id.to_owned() })
    }

    async fn query_instances(&self, query: &InstanceQuery) -> Result<InstancePage> {
        let sql = &self.inner.sql;
        let (text, args, page_size) =
            read::query_statement(&sql.instances_table, sql.instance_columns, query)?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect();
        let rows = self.query(&text, &params).await?;
        read::page_from_rows(&rows, page_size)
    }

    async fn count_instances(&self) -> Result<durable_store::StatusCounts> {
        let rows = self.query(&self.inner.sql.count_instances, &[]).await?;
        read::counts_from_rows(&rows)
    }

    async fn purge_instance(&self, instance_id: &str) -> Result<u64> {
        let row = self.query_one(&self.inner.sql.purge_instance, &[&instance_id]).await?;
        self.count(&self.inner.metrics.transactions);
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn purge_instances(&self, filter: &PurgeFilter) -> Result<u64> {
        let statuses: Vec<i16> = filter.effective_statuses().into_iter().map(codec::status_code).collect();
        let from = filter.created_from.map_or(Micros(i64::MIN), Micros::of);
        let to = filter.created_to.map_or(Micros(i64::MAX), Micros::of);
        let row = self.query_one(&self.inner.sql.purge_matching, &[&statuses, &from, &to]).await?;
        self.count(&self.inner.metrics.transactions);
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    fn listen_for_completion(&self, instance_id: &str) -> oneshot::Receiver<()> {
        self.inner.signals.completions.listen(instance_id)
    }

    async fn fetch_orchestration_work(
        &self,
        max: usize,
        lease_duration: Duration,
    ) -> Result<Vec<OrchestrationWorkItem>> {
        self.check_open()?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.now();
        let until = now.plus(lease_duration);
        let max = i32::try_from(max).unwrap_or(i32::MAX);
        let max_messages = i32::try_from(MAX_MESSAGES_PER_WORK_ITEM).unwrap_or(i32::MAX);
        let rows =
            self.query(&self.inner.sql.fetch_orchestrations, &[&now, &until, &max, &max_messages]).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.count(&self.inner.metrics.transactions);
        let (items, stale) = ops::work_from_rows(&rows, until)?;
        for (instance_id, token) in stale {
            tracing::warn!(%instance_id, "leased an instance without visible messages; released it");
            self.query(&self.inner.sql.unlock_stale, &[&instance_id, &token]).await?;
        }
        Ok(items)
    }

    async fn lease_instance(
        &self,
        instance_id: &str,
        lease_duration: Duration,
    ) -> Result<Option<OrchestrationWorkItem>> {
        self.check_open()?;
        let now = self.now();
        let until = now.plus(lease_duration);
        let max_messages = i64::try_from(MAX_MESSAGES_PER_WORK_ITEM).unwrap_or(i64::MAX);
        let rows =
            self.query(&self.inner.sql.lease_instance, &[&instance_id, &now, &until, &max_messages]).await?;
        if let Some(item) = ops::items_from_rows(&rows, until)?.pop() {
            self.count(&self.inner.metrics.transactions);
            return Ok(Some(item));
        }
        // Not leased: say why (missing, finished), or that it is busy.
        match self.get_instance(instance_id).await? {
            None => Err(Error::NotFound { instance_id: instance_id.to_owned() }),
            Some(state) if state.status.is_terminal() => {
                Err(Error::InstanceFinished { instance_id: instance_id.to_owned(), status: state.status })
            }
            Some(_) => Ok(None),
        }
    }

    async fn commit_turn(&self, commit: TurnCommit) -> Result<()> {
        self.check_open()?;
        if batch::batchable(&commit) {
            self.inner.groups.turns.call(commit).await
        } else {
            self.commit_turn_single(&commit).await
        }
    }

    async fn rewind_instance(&self, rewind: durable_store::RewindCommit) -> Result<()> {
        self.check_open()?;
        let p = ops::RewindParams::new(&rewind)?;
        let row = self.query_one(&self.inner.sql.rewind_instance, &p.params()).await?;
        match row.get::<_, i32>("r_code") {
            0 => {}
            1 => return Err(Error::NotFound { instance_id: rewind.instance_id.clone() }),
            _ => return Err(Error::Conflict(row.get::<_, Option<String>>("r_detail").unwrap_or_default())),
        }
        self.count(&self.inner.metrics.transactions);
        self.inner.signals.orchestration_work();
        if !rewind.activities.is_empty() {
            self.inner.signals.activity_work();
        }
        Ok(())
    }

    async fn set_stall(&self, instance_id: &str, reason: Option<&str>) -> Result<()> {
        let rows = self.query(&self.inner.sql.set_stall, &[&instance_id, &reason, &self.now()]).await?;
        if rows.is_empty() {
            return Err(Error::NotFound { instance_id: instance_id.to_owned() });
        }
        self.count(&self.inner.metrics.transactions);
        Ok(())
    }

    async fn abandon_orchestration_work(
        &self,
        lease: &OrchestrationLease,
        retry_after: Duration,
    ) -> Result<()> {
        let now = self.now();
        let retry_at = (!retry_after.is_zero()).then(|| now.plus(retry_after));
        let token = ops::token_param(lease.token);
        let rows = self
            .query(&self.inner.sql.abandon_orchestration, &[&lease.instance_id, &token, &now, &retry_at])
            .await?;
        lease_lost_if_none(rows.first())?;
        self.count(&self.inner.metrics.transactions);
        // Ready again now, or a new earliest due time: waiters everywhere must look again.
        self.inner.signals.orchestration_work();
        Ok(())
    }

    async fn renew_orchestration_lease(
        &self,
        lease: &OrchestrationLease,
        lease_duration: Duration,
    ) -> Result<OrchestrationLease> {
        let now = self.now();
        let token = ops::token_param(lease.token);
        let until = now.plus(lease_duration);
        let rows = self
            .query(&self.inner.sql.renew_orchestration, &[&lease.instance_id, &token, &now, &until])
            .await?;
        let expires: Micros = lease_lost_if_none(rows.first())?.get(0);
        Ok(OrchestrationLease {
            instance_id: lease.instance_id.clone(),
            token: lease.token,
            expires_at: expires.ts(),
        })
    }

    async fn wait_for_orchestration_work(&self, max_wait: Duration) {
        let signals = self.inner.signals.clone();
        self.wait(&signals.orchestrations, &self.inner.sql.next_orchestration_due, max_wait).await;
    }

    async fn fetch_activity_work(
        &self,
        max: usize,
        lease_duration: Duration,
    ) -> Result<Vec<ActivityWorkItem>> {
        self.check_open()?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.now();
        let until = now.plus(lease_duration);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = self.query(&self.inner.sql.fetch_activities, &[&now, &until, &max]).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.count(&self.inner.metrics.transactions);
        let mut items = rows.iter().map(|r| ops::activity_from_row(r, until)).collect::<Result<Vec<_>>>()?;
        items.sort_by_key(|a| a.lease.activity_id);
        let mut memo = self.inner.activity_tasks.lock();
        if memo.len() >= ACTIVITY_MEMO_PRUNE {
            memo.retain(|_, a| a.expires > now);
        }
        for a in &items {
            memo.insert(
                a.lease.activity_id,
                LeasedActivity { token: a.lease.token, task_id: a.task_id, expires: until },
            );
        }
        Ok(items)
    }

    async fn complete_activity(&self, lease: &ActivityLease, outcome: ActivityOutcome) -> Result<()> {
        self.check_open()?;
        let Some(task_id) = self.activity_task(lease).await? else {
            self.forget_activity(lease.activity_id);
            return Err(Error::LeaseLost);
        };
        let event = codec::to_json(&outcome.into_event(task_id, self.now().ts()))?;
        let completion =
            batch::Completion { activity_id: lease.activity_id, token: ops::token_param(lease.token), event };
        let result = self.inner.groups.completions.call(completion).await;
        self.forget_activity(lease.activity_id);
        result.map(|_enqueued| ())
    }

    async fn abandon_activity_work(&self, lease: &ActivityLease, retry_after: Duration) -> Result<()> {
        let now = self.now();
        let retry_at = (!retry_after.is_zero()).then(|| now.plus(retry_after));
        let token = ops::token_param(lease.token);
        let rows = self
            .query(&self.inner.sql.abandon_activity, &[&lease.activity_id, &token, &now, &retry_at])
            .await?;
        self.forget_activity(lease.activity_id);
        lease_lost_if_none(rows.first())?;
        self.count(&self.inner.metrics.transactions);
        self.inner.signals.activity_work();
        Ok(())
    }

    async fn renew_activity_lease(
        &self,
        lease: &ActivityLease,
        lease_duration: Duration,
    ) -> Result<ActivityLease> {
        let now = self.now();
        let token = ops::token_param(lease.token);
        let until = now.plus(lease_duration);
        let rows =
            self.query(&self.inner.sql.renew_activity, &[&lease.activity_id, &token, &now, &until]).await?;
        let expires: Micros = lease_lost_if_none(rows.first())?.get(0);
        if let Some(a) = self.inner.activity_tasks.lock().get_mut(&lease.activity_id) {
            a.expires = expires;
        }
        Ok(ActivityLease { activity_id: lease.activity_id, token: lease.token, expires_at: expires.ts() })
    }

    async fn wait_for_activity_work(&self, max_wait: Duration) {
        let signals = self.inner.signals.clone();
        self.wait(&signals.activities, &self.inner.sql.next_activity_due, max_wait).await;
    }

    async fn backlog(&self) -> Result<Backlog> {
        let row = self.query_one(&self.inner.sql.backlog, &[&self.now()]).await?;
        let count = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        Ok(Backlog { ready_instances: count(0), due_timers: count(1), ready_activities: count(2) })
    }

    async fn check_ready(&self) -> Result<()> {
        self.check_open()?;
        if !self.is_listening() {
            return Err(Error::Unavailable("the PostgreSQL listener connection is down".into()));
        }
        // A pooled connection answering shows the pool can reach the server.
        self.query_one("SELECT 1", &[]).await.map(drop)
    }

    fn metrics(&self) -> StoreMetrics {
        let m = &self.inner.metrics;
        StoreMetrics {
            transactions: m.transactions.load(Ordering::Relaxed),
            turns: m.turns.load(Ordering::Relaxed),
            activity_completions: m.activity_completions.load(Ordering::Relaxed),
            client_writes: m.client_writes.load(Ordering::Relaxed),
        }
    }

    async fn close(&self) -> Result<()> {
        let signals = &self.inner.signals;
        signals.closed.store(true, Ordering::Release);
        if let Some(listener) = self.inner.listener.lock().take() {
            listener.abort();
        }
        signals.listening.store(false, Ordering::Release);
        signals.wake_all();
        signals.completions.notify_all();
        // Every acknowledged write is committed (a batch answers its calls only after its
        // transaction); calls still queued for a batch fail with "closed".
        self.inner.pool.close();
        Ok(())
    }
}
