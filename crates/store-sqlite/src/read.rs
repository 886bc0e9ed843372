//! Read-only connections and the queries they run.
//!
//! A few threads each own a read-only connection and take jobs from one queue. In WAL mode a
//! reader sees the last committed state without blocking the writer or being blocked by it, and
//! because the in-memory index is only updated after a COMMIT, a reader always sees at least
//! the state that made an instance ready.

use crate::codec::{self, Db};
use crate::ops::ActivityRow;
use crate::shared::Shared;
use durable_core::{HistoryEvent, Payload};
use durable_store::{
    ActivityLease, ActivityWorkItem, Cursor, Error, InstancePage, InstanceQuery, InstanceState,
    MAX_MESSAGES_PER_WORK_ITEM, Message, Result, StatusCounts,
};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter, types::Value};
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&Connection) + Send>;

/// The reader threads.
pub(crate) struct ReadPool {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl ReadPool {
    /// Opens `n` read-only connections, each on its own thread.
    pub(crate) fn open(path: &Path, n: usize) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let conn = crate::schema::open_reader(path)?;
            let rx = rx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("durable-sqlite-read-{i}"))
                .spawn(move || {
                    loop {
                        // Holding the lock while blocked is fine: whoever holds it takes the next
                        // job, and the others could not take one anyway.
                        let job = rx.lock().recv();
                        match job {
                            Ok(job) => job(&conn),
                            Err(_) => break,
                        }
                    }
                })
                .map_err(Error::backend)?;
            threads.push(handle);
        }
        Ok(ReadPool { jobs: Mutex::new(Some(tx)), threads: Mutex::new(threads) })
    }

    /// Runs `f` on a reader thread.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.jobs.lock().as_ref().ok_or_else(codec::closed)?.send(job).map_err(|_| codec::closed())?;
        rx.await.map_err(|_| codec::closed())?
    }

    /// Stops taking jobs; the threads finish the queued ones and exit. Returns them for joining.
    pub(crate) fn shut_down(&self) -> Vec<JoinHandle<()>> {
        self.jobs.lock().take();
        std::mem::take(&mut *self.threads.lock())
    }
}

/// Columns of [`instance_row`], prefixed by the input column (or NULL).
const INSTANCE_COLUMNS: &str = "instance_id, name, execution_id, status, output, failure, custom_status, \
     created_at, updated_at, completed_at, parent_instance_id, history_len, stall_reason, stall_since";

fn instance_row(r: &Row<'_>) -> rusqlite::Result<RawInstance> {
    Ok(RawInstance {
        input: r.get(0)?,
        instance_id: r.get(1)?,
        name: r.get(2)?,
        execution_id: r.get(3)?,
        status: r.get(4)?,
        output: r.get(5)?,
        failure: r.get(6)?,
        custom_status: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        completed_at: r.get(10)?,
        parent_instance_id: r.get(11)?,
        history_len: r.get(12)?,
        stall_reason: r.get(13)?,
        stall_since: r.get(14)?,
    })
}

/// An instance row before its JSON columns are parsed.
struct RawInstance {
    instance_id: String,
    name: String,
    execution_id: String,
    status: i64,
    input: Option<String>,
    output: Option<String>,
    failure: Option<String>,
    custom_status: Option<String>,
    created_at: i64,
    updated_at: i64,
    completed_at: Option<i64>,
    parent_instance_id: Option<String>,
    history_len: i64,
    stall_reason: Option<String>,
    stall_since: Option<i64>,
}

impl RawInstance {
    fn parse(self) -> Result<InstanceState> {
        Ok(InstanceState {
            instance_id: self.instance_id,
            name: self.name,
            execution_id: self.execution_id,
            status: codec::status_from(self.status)?,
            input: codec::payload(self.input)?,
            output: codec::payload(self.output)?,
            failure: codec::failure(self.failure)?,
            custom_status: codec::payload(self.custom_status)?,
            created_at: codec::ts(self.created_at),
            last_updated_at: codec::ts(self.updated_at),
            completed_at: self.completed_at.map(codec::ts),
            parent_instance_id: self.parent_instance_id,
            history_len: u64::try_from(self.history_len).unwrap_or(0),
            stall: self.stall_reason.map(|reason| durable_store::Stall {
                reason,
                since: codec::ts(self.stall_since.unwrap_or(self.updated_at)),
            }),
        })
    }
}

/// The status row of an instance.
pub(crate) fn instance(conn: &Connection, instance_id: &str) -> Result<Option<InstanceState>> {
    let sql = format!("SELECT input, {INSTANCE_COLUMNS} FROM instances WHERE instance_id = ?1");
    let raw = conn.prepare_cached(&sql).db()?.query_row([instance_id], instance_row).optional().db()?;
    raw.map(RawInstance::parse).transpose()
}

/// The current execution's history, or `None` when the instance does not exist.
pub(crate) fn history(conn: &Connection, instance_id: &str) -> Result<Option<Vec<HistoryEvent>>> {
    let tx = ReadTx::begin(conn)?;
    let execution: Option<String> = conn
        .prepare_cached("SELECT execution_id FROM instances WHERE instance_id = ?1")
        .db()?
        .query_row([instance_id], |r| r.get(0))
        .optional()
        .db()?;
    let Some(execution) = execution else { return Ok(None) };
    let mut stmt = conn
        .prepare_cached(
            "SELECT events FROM history WHERE instance_id = ?1 AND execution_id = ?2 ORDER BY first_event_index",
        )
        .db()?;
    let mut rows = stmt.query([instance_id, execution.as_str()]).db()?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().db()? {
        let turn = codec::decode_turn(row.get_ref(0).db()?.as_str().db()?)?;
        events.extend(turn);
    }
    drop(rows);
    tx.end()?;
    Ok(Some(events))
}

/// A leased instance's status row and visible messages.
pub(crate) type Work = (InstanceState, Vec<Message>);

/// The status rows and visible messages (oldest first) of leased instances; `None` for an
/// instance that vanished or has nothing visible (a stale queue entry).
pub(crate) fn work(conn: &Connection, ids: &[Arc<str>], now: i64) -> Result<Vec<Option<Work>>> {
    let tx = ReadTx::begin(conn)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let work = instance_and_messages(conn, id, now)?;
        out.push(work.filter(|(_, messages)| !messages.is_empty()));
    }
    tx.end()?;
    Ok(out)
}

/// One instance's status row and visible messages (possibly none), or `None` when it does not
/// exist; for a lease taken by id.
pub(crate) fn instance_work(conn: &Connection, id: &str, now: i64) -> Result<Option<Work>> {
    let tx = ReadTx::begin(conn)?;
    let work = instance_and_messages(conn, id, now)?;
    tx.end()?;
    Ok(work)
}

fn instance_and_messages(conn: &Connection, id: &str, now: i64) -> Result<Option<Work>> {
    let Some(state) = instance(conn, id)? else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, execution_id, event, visible_at, timer_id FROM messages WHERE instance_id = ?1 \
             AND (visible_at IS NULL OR visible_at <= ?2) ORDER BY id LIMIT ?3",
        )
        .db()?;
    let limit = i64::try_from(MAX_MESSAGES_PER_WORK_ITEM).unwrap_or(i64::MAX);
    let mut rows = stmt.query(rusqlite::params![id, now, limit]).db()?;
    let mut messages = Vec::new();
    while let Some(row) = rows.next().db()? {
        let event =
            codec::decode_message(row.get_ref(2).db()?.as_str().db()?, row.get(3).db()?, row.get(4).db()?)?;
        messages.push(Message { id: row.get(0).db()?, execution_id: row.get(1).db()?, event });
    }
    Ok(Some((state, messages)))
}

/// Moves the instances of due timers to the ready queue. The index holds only (due time,
/// message id), so their instances are looked up here. Returns true if any became ready.
pub(crate) fn resolve_due_timers(conn: &Connection, shared: &Shared, now: i64) -> Result<bool> {
    let mut queued = false;
    loop {
        let due = shared.dispatch.lock().orch.take_due_timers(now, 1000);
        if due.is_empty() {
            return Ok(queued);
        }
        let mut stmt = conn.prepare_cached("SELECT instance_id FROM messages WHERE id = ?1").db()?;
        let mut instances = Vec::with_capacity(due.len());
        let mut failed = None;
        for (i, &(_, message)) in due.iter().enumerate() {
            // A missing row is a timer deleted since it was taken: nothing to do.
            match stmt.query_row([message], |r| r.get::<_, String>(0)).optional().db() {
                Ok(found) => instances.extend(found),
                Err(e) => {
                    failed = Some((i, e));
                    break;
                }
            }
        }
        let mut d = shared.dispatch.lock();
        for id in &instances {
            queued |= d.orch.mark_visible(id, now);
        }
        if let Some((i, e)) = failed {
            for &(at, message) in &due[i..] {
                d.orch.add_timer(at, message);
            }
            return Err(e);
        }
    }
}

/// One page of `query_instances`.
///
/// Every filter is answered from an index, so a page costs about the same with a million
/// instances as with ten: one status through `instances_by_status` (status, created, id); a
/// name through `instances_by_name`; an id prefix as a primary-key range; otherwise
/// `instances_by_created`. Several statuses become one index range each, merged by a UNION
/// ALL of per-status pages (a plain `IN` would sort every matching row).
pub(crate) fn query(conn: &Connection, q: &InstanceQuery) -> Result<InstancePage> {
    let (desc, cmp) = if q.newest_first { ("DESC", "<") } else { ("ASC", ">") };
    let order = format!("ORDER BY created_at {desc}, instance_id {desc}");
    let mut filters = String::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(name) = &q.name {
        args.push(Value::Text(name.clone()));
        filters.push_str(&format!(" AND name = ?{}", args.len()));
    }
    if let Some(from) = q.created_from {
        args.push(Value::Integer(codec::us(from)));
        filters.push_str(&format!(" AND created_at >= ?{}", args.len()));
    }
    if let Some(to) = q.created_to {
        args.push(Value::Integer(codec::us(to)));
        filters.push_str(&format!(" AND created_at <= ?{}", args.len()));
    }
    if let Some((prefix, upper)) = q.id_prefix_range() {
        // A primary-key range; text compares byte-wise (BINARY), which is exactly "starts
        // with" (LIKE would be case-insensitive and treat % and _ as wildcards).
        args.push(Value::Text(prefix.to_owned()));
        filters.push_str(&format!(" AND instance_id >= ?{}", args.len()));
        if let Some(upper) = upper {
            args.push(Value::Text(upper));
            filters.push_str(&format!(" AND instance_id < ?{}", args.len()));
        }
    }
    if let Some(token) = &q.continuation {
        let cursor = Cursor::decode(token)?;
        args.push(Value::Integer(codec::us(cursor.created_at)));
        args.push(Value::Text(cursor.instance_id));
        filters.push_str(&format!(
            " AND (created_at, instance_id) {cmp} (?{}, ?{})",
            args.len() - 1,
            args.len()
        ));
    }
    let page_size = if q.page_size == 0 { 100 } else { q.page_size };
    // One extra row tells whether another page exists, so the last page has no continuation.
    args.push(Value::Integer(i64::try_from(page_size).unwrap_or(i64::MAX).saturating_add(1)));
    let limit = format!("LIMIT ?{}", args.len());
    let input = if q.include_input { "input" } else { "NULL" };
    let select = format!("SELECT {input}, {INSTANCE_COLUMNS} FROM instances WHERE 1{filters}");
    let mut statuses: Vec<i16> = q.statuses.iter().map(|s| codec::status_code(*s)).collect();
    statuses.sort_unstable();
    statuses.dedup();
    let sql = match statuses.as_slice() {
        [] => format!("{select} {order} {limit}"),
        [one] => format!("{select} AND status = {one} {order} {limit}"),
        many => {
            let parts: Vec<String> = many
                .iter()
                .map(|s| format!("SELECT * FROM ({select} AND status = {s} {order} {limit})"))
                .collect();
            format!("{} {order} {limit}", parts.join(" UNION ALL "))
        }
    };
    let raws: Vec<RawInstance> = conn
        .prepare_cached(&sql)
        .db()?
        .query_map(params_from_iter(args), instance_row)
        .db()?
        .collect::<rusqlite::Result<_>>()
        .db()?;
    let more = raws.len() > page_size;
    let instances = raws.into_iter().take(page_size).map(RawInstance::parse).collect::<Result<Vec<_>>>()?;
    let continuation = match instances.last() {
        Some(last) if more => {
            Some(Cursor { created_at: last.created_at, instance_id: last.instance_id.clone() }.encode())
        }
        _ => None,
    };
    Ok(InstancePage { instances, continuation })
}

/// The per-status counts, kept by the writer in the transaction that changes a status (see
/// `writer::add_status_counts`).
pub(crate) fn counts(conn: &Connection) -> Result<StatusCounts> {
    let mut stmt = conn.prepare_cached("SELECT status, n FROM instance_counts").db()?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    let mut pairs = Vec::with_capacity(rows.len());
    for (status, n) in rows {
        pairs.push((codec::status_from(status)?, u64::try_from(n).unwrap_or(0)));
    }
    Ok(StatusCounts::from_pairs(pairs))
}

/// A trivial query: the connection and the file answer.
pub(crate) fn ping(conn: &Connection) -> Result<()> {
    conn.prepare_cached("SELECT count(*) FROM instance_counts").db()?.query_row([], |_| Ok(())).db()
}

/// Builds an activity work item from a row leased by the writer.
pub(crate) fn activity_item(row: ActivityRow, token: u64, expires: i64) -> Result<ActivityWorkItem> {
    Ok(ActivityWorkItem {
        lease: ActivityLease { activity_id: row.id, token, expires_at: codec::ts(expires) },
        instance_id: row.instance_id,
        execution_id: row.execution_id,
        task_id: row.task_id,
        name: row.name,
        input: row.input.map(|t| Payload::from_json(&t)).transpose().map_err(Error::backend)?,
        attempt: row.attempt,
    })
}

/// A read transaction, so multi-statement reads see one snapshot.
struct ReadTx<'a> {
    conn: &'a Connection,
    open: bool,
}

impl<'a> ReadTx<'a> {
    fn begin(conn: &'a Connection) -> Result<Self> {
        conn.prepare_cached("BEGIN").db()?.execute([]).db()?;
        Ok(ReadTx { conn, open: true })
    }

    fn end(mut self) -> Result<()> {
        self.open = false;
        self.conn.prepare_cached("COMMIT").db()?.execute([]).db().map(drop)
    }
}

impl Drop for ReadTx<'_> {
    fn drop(&mut self) {
        // An early return (error or missing row) must not leave the snapshot open: it would pin
        // the WAL and stop checkpoints.
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}
