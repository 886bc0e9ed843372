//! The embedded SQLite store of **durable**: a [`durable_store::Store`] in one file, owned by
//! one process.
//!
//! ```no_run
//! use durable_store::{CreateInstance, Store};
//! use durable_store_sqlite::{SqliteStore, SqliteStoreOptions, Synchronous};
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), durable_store::Error> {
//! let mut options = SqliteStoreOptions::new("durable.db");
//! options.synchronous = Synchronous::Full; // the default: an acknowledged write survives power loss
//! let store = SqliteStore::open(options)?; // cheap to clone; every clone is the same store
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
//! store.wait_for_orchestration_work(Duration::from_secs(1)).await;
//! let work = store.fetch_orchestration_work(10, Duration::from_secs(30)).await?;
//! println!("{} instance(s) to run", work.len());
//! store.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Design
//! - **One process owns the file.** [`SqliteStore::open`] takes an exclusive lock on
//!   `<db>.lock` and fails if another process holds it. So leases, the ready queue and the
//!   timer index live in memory and cost no writes; they are rebuilt from the tables at open,
//!   which also releases every lease of a crashed predecessor at once.
//! - **One writer thread** owns the only write connection. Callers send it whole commands
//!   (create, send, commit a turn, complete an activity, purge); it runs everything queued in
//!   one transaction and commits once: one fsync for many operations (group commit). Commands
//!   check everything that can refuse them before their first write, so the batch needs no
//!   savepoints; only a command that fails after writing sends its batch down a slower path
//!   with a savepoint per command (see `writer.rs`). Callers hear back only once their command
//!   is durable.
//! - **Read-only connections** on their own threads serve status reads, history, queries and
//!   the messages of fetched work, from WAL snapshots that never block the writer.
//! - **No scans on the hot path**: fetching pops ids from in-memory queues; timers wait in a
//!   min-heap and move to the ready queue when due; waiters sleep on a `Notify` until work is
//!   committed or the earliest timer or lease expiry comes due.
//!
//! Status-row timestamps are kept at microsecond precision (event timestamps inside histories
//! and messages keep full precision).

mod checkpoint;
mod codec;
mod dispatch;
mod limits;
mod ops;
mod read;
mod schema;
mod shared;
mod writer;

use codec::{dur_us, ts, us_dur};
use durable_core::HistoryEvent;
use durable_store::{
    ActivityLease, ActivityOutcome, ActivityWorkItem, Backlog, Clock, CreateInstance, Error, InstancePage,
    InstanceQuery, InstanceState, LimitCharge, LimitRefund, OrchestrationLease, OrchestrationWorkItem,
    PurgeFilter, Result, Store, StoreMetrics, SystemClock, TurnCommit,
};
use parking_lot::Mutex;
use read::ReadPool;
use shared::Shared;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use writer::Command;

pub use schema::SCHEMA_VERSION;

/// How hard SQLite works to make each commit durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `synchronous=FULL`: a commit is on disk before it is acknowledged; survives power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a crash of the process, but the last commits may be lost
    /// on power loss or an OS crash. Faster; opt in only where that loss is acceptable.
    Normal,
}

/// Options of [`SqliteStore::open`].
#[derive(Clone)]
pub struct SqliteStoreOptions {
    /// The database file (created if missing). `<path>.lock`, `<path>-wal` and `<path>-shm`
    /// are kept next to it.
    pub path: PathBuf,
    /// Durability of commits (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// Most commands committed in one transaction (default 1,000).
    pub max_batch: usize,
    /// Read-only connections, each on its own thread (default 2).
    pub read_connections: usize,
    /// The clock for visibility and leases (default the system clock).
    pub clock: Arc<dyn Clock>,
}

impl SqliteStoreOptions {
    /// The defaults for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteStoreOptions {
            path: path.into(),
            synchronous: Synchronous::Full,
            max_batch: 1000,
            read_connections: 2,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for SqliteStoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStoreOptions")
            .field("path", &self.path)
            .field("synchronous", &self.synchronous)
            .field("max_batch", &self.max_batch)
            .field("read_connections", &self.read_connections)
            .finish_non_exhaustive()
    }
}

/// The SQLite store. Cheap to clone: clones share one database, writer and index. The last
/// clone to be dropped stops the background threads (finishing queued writes) and releases the
/// file; prefer calling [`Store::close`] first, which does the same without blocking.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    commands: Mutex<Option<mpsc::UnboundedSender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    reads: ReadPool,
    path: PathBuf,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping the sender lets the writer drain its queue and exit; joining makes the file
        // (and its lock) free for a new open as soon as the last handle is gone.
        self.shared.closed.store(true, Ordering::Release);
        drop(self.commands.lock().take());
        let readers = self.reads.shut_down();
        if let Some(w) = self.writer.lock().take() {
            let _ = w.join();
        }
        for r in readers {
            let _ = r.join();
        }
    }
}

impl SqliteStore {
    /// Opens (or creates) the database, applies schema migrations, rebuilds the in-memory
    /// queues and starts the writer and reader threads.
    ///
    /// Fails with [`Error::Unavailable`] when another process (or another open store in this
    /// process) uses the file, or when the file has a newer schema than this build knows.
    pub fn open(options: SqliteStoreOptions) -> Result<SqliteStore> {
        let lock = lock_file(&options.path)?;
        let mut conn = schema::open_writer(&options.path, options.synchronous)?;
        let checkpointer = checkpoint::start(&options.path, &mut conn)?;
        let shared = Arc::new(Shared::new(options.clock.clone()));
        rebuild_index(&conn, &shared)?;
        let reads = ReadPool::open(&options.path, options.read_connections)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let writer_shared = shared.clone();
        let max_batch = options.max_batch.max(1);
        let writer = std::thread::Builder::new()
            .name("durable-sqlite-writer".into())
            .spawn(move || {
                let _closed = MarkClosedOnExit(writer_shared.clone());
                writer::run(conn, rx, writer_shared, max_batch);
                // The writer connection is gone, and with it the hook that fed the
                // checkpointer: it stops after its current checkpoint.
                let _ = checkpointer.join();
                // Released only once the last write is durable.
                drop(lock);
            })
            .map_err(Error::backend)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                shared,
                commands: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                reads,
                path: options.path,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Number of timers not yet due, held in the in-memory index (diagnostics).
    pub fn pending_timers(&self) -> usize {
        self.inner.shared.dispatch.lock().orch.timer_count()
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn check_open(&self) -> Result<()> {
        if self.shared().is_closed() { Err(codec::closed()) } else { Ok(()) }
    }

    /// Sends a command to the writer and waits until it is durable.
    async fn write<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        self.check_open()?;
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .lock()
            .as_ref()
            .ok_or_else(codec::closed)?
            .send(make(tx))
            .map_err(|_| codec::closed())?;
        rx.await.map_err(|_| codec::closed())?
    }

    /// Sleeps until `notify` fires, `next_due` passes or `max_wait` ends, unless `ready` says
    /// there is work already. `ready` runs after the waiter is registered, so a notification
    /// between the check and the sleep is not lost.
    async fn wait(
        &self,
        notify: &Notify,
        max_wait: Duration,
        ready: impl FnOnce(&mut dispatch::Dispatch, i64) -> (bool, Option<i64>),
    ) {
        if self.check_open().is_err() {
            return;
        }
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = self.shared().now();
        let (has_work, next_due) = ready(&mut self.shared().dispatch.lock(), now);
        if has_work {
            return;
        }
        let wait = next_due.map_or(max_wait, |t| max_wait.min(us_dur(t.saturating_sub(now))));
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Marks the store closed when the writer thread ends, normally (close, last handle dropped)
/// or by a panic (a bug): callers then get `Unavailable` at once and waiters stop waiting,
/// instead of every write failing one by one.
struct MarkClosedOnExit(Arc<Shared>);

impl Drop for MarkClosedOnExit {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the SQLite writer thread panicked; the store is closed");
        }
        self.0.closed.store(true, Ordering::Release);
        self.0.orchestration_work.notify_waiters();
        self.0.activity_work.notify_waiters();
        self.0.waiters.notify_all();
    }
}

/// Takes the exclusive lock that makes this process the file's only user.
fn lock_file(db: &Path) -> Result<File> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = schema::owner_only()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Unavailable(format!("cannot open the lock file {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Unavailable(format!(
            "database {} is in use by another durable process (its lock file {} is held); stop that process \
             or use another database file",
            db.display(),
            path.display()
        ))),
        Err(TryLockError::Error(e)) => {
            Err(Error::Unavailable(format!("cannot lock {}: {e}", path.display())))
        }
    }
}

/// Fills the in-memory queues from the tables (no lease survives a restart).
fn rebuild_index(conn: &rusqlite::Connection, shared: &Shared) -> Result<()> {
    use codec::Db;
    let now = shared.now();
    let mut d = shared.dispatch.lock();
    // Id order, so instances become ready in the order of their oldest message.
    let mut stmt = conn.prepare("SELECT instance_id, visible_at, id FROM messages ORDER BY id").db()?;
    let mut rows = stmt.query([]).db()?;
    while let Some(row) = rows.next().db()? {
        match row.get::<_, Option<i64>>(1).db()? {
            Some(at) if at > now => {
                d.orch.add_timer(at, row.get(2).db()?);
            }
            _ => {
                d.orch.mark_visible(row.get_ref(0).db()?.as_str().db()?, now);
            }
        }
    }
    let mut stmt = conn.prepare("SELECT id FROM activities ORDER BY id").db()?;
    let mut rows = stmt.query([]).db()?;
    while let Some(row) = rows.next().db()? {
        d.act.add(row.get(0).db()?);
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create_instance(&self, request: CreateInstance) -> Result<()> {
        self.write(|tx| Command::Create(Box::new(request), tx)).await
    }

    async fn create_instance_limited(
        &self,
        request: CreateInstance,
        charges: Vec<LimitCharge>,
    ) -> Result<()> {
        if charges.is_empty() {
            return self.create_instance(request).await;
        }
        self.write(|tx| Command::CreateLimited(Box::new(request), charges, tx)).await
    }

    async fn refund_limits(&self, refunds: Vec<LimitRefund>) -> Result<()> {
        let refunds = durable_store::limits::merge_refunds(refunds);
        self.write(|tx| Command::RefundLimits(refunds, tx)).await
    }

    async fn limit_reference(&self, key: &str) -> Result<Option<String>> {
        self.check_open()?;
        let key = key.to_owned();
        self.inner.reads.run(move |c| limits::reference(c, &key)).await
    }

    async fn ready_backlog(&self, at_most: u64) -> Result<Option<u64>> {
        self.check_open()?;
        let ready = self.shared().dispatch.lock().orch.ready_count() as u64;
        Ok(Some(ready.min(at_most)))
    }

    async fn send_message(&self, instance_id: &str, event: HistoryEvent) -> Result<()> {
        let id = instance_id.to_owned();
        self.write(|tx| Command::Send(id, Box::new(event), tx)).await
    }

    async fn get_instance(&self, instance_id: &str) -> Result<Option<InstanceState>> {
        self.check_open()?;
        let id = instance_id.to_owned();
        self.inner.reads.run(move |c| read::instance(c, &id)).await
    }

    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>> {
        self.check_open()?;
        let id = instance_id.to_owned();
        self.inner.reads.run(move |c| read::history(c, &id)?.ok_or(Error::NotFound { instance_id: id })).await
    }

    async fn query_instances(&self, query: &InstanceQuery) -> Result<InstancePage> {
        self.check_open()?;
        let query = query.clone();
        self.inner.reads.run(move |c| read::query(c, &query)).await
    }

    async fn count_instances(&self) -> Result<durable_store::StatusCounts> {
        self.check_open()?;
        self.inner.reads.run(read::counts).await
    }

    async fn purge_instance(&self, instance_id: &str) -> Result<u64> {
        let id = instance_id.to_owned();
        self.write(|tx| Command::Purge(id, tx)).await
    }

    async fn purge_instances(&self, filter: &PurgeFilter) -> Result<u64> {
        let filter = Box::new(filter.clone());
        self.write(|tx| Command::PurgeMatching(filter, tx)).await
    }

    fn listen_for_completion(&self, instance_id: &str) -> oneshot::Receiver<()> {
        self.shared().waiters.listen(instance_id)
    }

    async fn fetch_orchestration_work(
        &self,
        max: usize,
        lease_duration: Duration,
    ) -> Result<Vec<OrchestrationWorkItem>> {
        self.check_open()?;
        let shared = self.shared();
        let now = shared.now();
        if shared.dispatch.lock().orch.has_due_timers(now) {
            // A reader job runs to completion even if this future is dropped, so timers taken
            // out of the index are always queued (or put back).
            let s = self.inner.shared.clone();
            if self.inner.reads.run(move |c| read::resolve_due_timers(c, &s, now)).await? {
                shared.orchestration_work.notify_waiters();
            }
        }
        let granted = shared.dispatch.lock().orch.lease(max, now, dur_us(lease_duration), &|| shared.token());
        if granted.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Arc<str>> = granted.iter().map(|g| g.instance_id.clone()).collect();
        let rows = self.inner.reads.run(move |c| read::work(c, &ids, now)).await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                let mut d = shared.dispatch.lock();
                for g in &granted {
                    d.orch.release(&g.instance_id, g.token, true, 0, now);
                }
                drop(d);
                shared.orchestration_work.notify_waiters();
                return Err(e);
            }
        };
        let mut items = Vec::with_capacity(granted.len());
        let mut requeued = false;
        for (g, row) in granted.into_iter().zip(rows) {
            match row {
                Some((instance, messages)) => items.push(OrchestrationWorkItem {
                    lease: OrchestrationLease {
                        instance_id: g.instance_id.to_string(),
                        token: g.token,
                        expires_at: ts(g.expires),
                    },
                    instance,
                    messages,
                }),
                // A stale queue entry (cancelled timer, purged instance): nothing to do.
                None => {
                    requeued |= shared.dispatch.lock().orch.release(&g.instance_id, g.token, false, 0, now);
                }
            }
        }
        if requeued {
            shared.orchestration_work.notify_waiters();
        }
        Ok(items)
    }

    async fn lease_instance(
        &self,
        instance_id: &str,
        lease_duration: Duration,
    ) -> Result<Option<OrchestrationWorkItem>> {
        self.check_open()?;
        let shared = self.shared();
        let now = shared.now();
        let granted =
            shared.dispatch.lock().orch.lease_one(instance_id, now, dur_us(lease_duration), shared.token());
        let Some(g) = granted else { return Ok(None) };
        let id = instance_id.to_owned();
        let work = self.inner.reads.run(move |c| read::instance_work(c, &id, now)).await;
        let refusal = match work {
            Ok(Some((instance, messages))) if !instance.status.is_terminal() => {
                let lease = OrchestrationLease {
                    instance_id: instance_id.to_owned(),
                    token: g.token,
                    expires_at: ts(g.expires),
                };
                return Ok(Some(OrchestrationWorkItem { lease, instance, messages }));
            }
            Ok(Some((finished, _))) => {
                Error::InstanceFinished { instance_id: instance_id.to_owned(), status: finished.status }
            }
            Ok(None) => Error::NotFound { instance_id: instance_id.to_owned() },
            Err(e) => e,
        };
        // No lease is held after a refusal; whatever was queued for the instance stays queued.
        if shared.dispatch.lock().orch.release(instance_id, g.token, false, 0, now) {
            shared.orchestration_work.notify_waiters();
        }
        Err(refusal)
    }

    async fn commit_turn(&self, commit: TurnCommit) -> Result<()> {
        self.write(|tx| Command::Commit(Box::new(commit), tx)).await
    }

    async fn rewind_instance(&self, rewind: durable_store::RewindCommit) -> Result<()> {
        self.write(|tx| Command::Rewind(Box::new(rewind), tx)).await
    }

    async fn set_stall(&self, instance_id: &str, reason: Option<&str>) -> Result<()> {
        let (id, reason) = (instance_id.to_owned(), reason.map(str::to_owned));
        self.write(|tx| Command::SetStall(id, reason, tx)).await
    }

    async fn abandon_orchestration_work(
        &self,
        lease: &OrchestrationLease,
        retry_after: Duration,
    ) -> Result<()> {
        self.check_open()?;
        let shared = self.shared();
        let now = shared.now();
        let not_before = if retry_after.is_zero() { 0 } else { now.saturating_add(dur_us(retry_after)) };
        {
            let mut d = shared.dispatch.lock();
            if !d.orch.holds(&lease.instance_id, lease.token, now) {
                return Err(Error::LeaseLost);
            }
            d.orch.release(&lease.instance_id, lease.token, true, not_before, now);
        }
        // Either it is ready now or there is a new wake-up time: waiters must look again.
        shared.orchestration_work.notify_waiters();
        Ok(())
    }

    async fn renew_orchestration_lease(
        &self,
        lease: &OrchestrationLease,
        lease_duration: Duration,
    ) -> Result<OrchestrationLease> {
        self.check_open()?;
        let now = self.shared().now();
        let expires = self.shared().dispatch.lock().orch.renew(
            &lease.instance_id,
            lease.token,
            now,
            dur_us(lease_duration),
        );
        let expires = expires.ok_or(Error::LeaseLost)?;
        Ok(OrchestrationLease {
            instance_id: lease.instance_id.clone(),
            token: lease.token,
            expires_at: ts(expires),
        })
    }

    async fn wait_for_orchestration_work(&self, max_wait: Duration) {
        let notify = &self.shared().orchestration_work;
        self.wait(notify, max_wait, |d, now| (d.orch.has_ready(now), d.orch.next_due())).await;
    }

    async fn fetch_activity_work(
        &self,
        max: usize,
        lease_duration: Duration,
    ) -> Result<Vec<ActivityWorkItem>> {
        self.check_open()?;
        let shared = self.shared();
        let now = shared.now();
        let granted = shared.dispatch.lock().act.lease(max, now, dur_us(lease_duration), &|| shared.token());
        if granted.is_empty() {
            return Ok(Vec::new());
        }
        // The attempt count must be durable before the work is handed out, so that crashes
        // while running an activity count as attempts too.
        let leased: Vec<(i64, u64)> = granted.iter().map(|&(id, token, _)| (id, token)).collect();
        let rows = match self.write(|tx| Command::LeaseActivities(leased, tx)).await {
            Ok(rows) => rows,
            Err(e) => {
                let mut d = shared.dispatch.lock();
                for &(id, token, _) in &granted {
                    d.act.abandon(id, token, now, now);
                }
                drop(d);
                shared.activity_work.notify_waiters();
                return Err(e);
            }
        };
        let mut items = Vec::with_capacity(rows.len());
        let mut granted = granted.into_iter();
        for row in rows {
            // Rows come back in lease order, minus the deleted ones.
            let Some((_, token, expires)) = granted.by_ref().find(|g| g.0 == row.id) else { continue };
            items.push(read::activity_item(row, token, expires)?);
        }
        Ok(items)
    }

    async fn complete_activity(&self, lease: &ActivityLease, outcome: ActivityOutcome) -> Result<()> {
        let lease = lease.clone();
        self.write(|tx| Command::Complete(lease, Box::new(outcome), tx)).await
    }

    async fn abandon_activity_work(&self, lease: &ActivityLease, retry_after: Duration) -> Result<()> {
        self.check_open()?;
        let shared = self.shared();
        let now = shared.now();
        let at = now.saturating_add(dur_us(retry_after));
        if !shared.dispatch.lock().act.abandon(lease.activity_id, lease.token, now, at) {
            return Err(Error::LeaseLost);
        }
        shared.activity_work.notify_waiters();
        Ok(())
    }

    async fn renew_activity_lease(
        &self,
        lease: &ActivityLease,
        lease_duration: Duration,
    ) -> Result<ActivityLease> {
        self.check_open()?;
        let now = self.shared().now();
        let expires = self.shared().dispatch.lock().act.renew(
            lease.activity_id,
            lease.token,
            now,
            dur_us(lease_duration),
        );
        let expires = expires.ok_or(Error::LeaseLost)?;
        Ok(ActivityLease { activity_id: lease.activity_id, token: lease.token, expires_at: ts(expires) })
    }

    async fn wait_for_activity_work(&self, max_wait: Duration) {
        let notify = &self.shared().activity_work;
        self.wait(notify, max_wait, |d, now| (d.act.has_ready(now), d.act.next_due())).await;
    }

    async fn backlog(&self) -> Result<Backlog> {
        let shared = self.shared();
        let now = shared.now();
        let mut dispatch = shared.dispatch.lock();
        let (ready_instances, due_timers) = dispatch.orch.backlog(now);
        Ok(Backlog { ready_instances, ready_activities: dispatch.act.ready_count(now), due_timers })
    }

    async fn check_ready(&self) -> Result<()> {
        self.check_open()?;
        let writer_alive = self.inner.writer.lock().as_ref().is_some_and(|w| !w.is_finished());
        if !writer_alive {
            return Err(Error::Unavailable("the SQLite writer thread has stopped".into()));
        }
        // A reader answering shows the file is readable and the reader threads run.
        self.inner.reads.run(read::ping).await
    }

    fn metrics(&self) -> StoreMetrics {
        self.shared().metrics.snapshot()
    }

    async fn close(&self) -> Result<()> {
        let shared = self.inner.shared.clone();
        shared.closed.store(true, Ordering::Release);
        drop(self.inner.commands.lock().take());
        let readers = self.inner.reads.shut_down();
        let writer = self.inner.writer.lock().take();
        shared.orchestration_work.notify_waiters();
        shared.activity_work.notify_waiters();
        shared.waiters.notify_all();
        // Joining blocks; keep it off the async worker threads.
        tokio::task::spawn_blocking(move || {
            if let Some(w) = writer {
                let _ = w.join();
            }
            for r in readers {
                let _ = r.join();
            }
        })
        .await
        .map_err(Error::backend)
    }
}
