//! The database schema, its migrations and the connection setup.
//!
//! The schema is versioned with `PRAGMA user_version`; every migration not yet applied runs at
//! open, all of them in one transaction, so a crash mid-upgrade leaves the old version intact.
//!
//! Only durable state lives here: instances, histories, inboxes (messages and timers) and
//! activity work items. Leases, the ready queue and the timer index live in memory (see
//! `dispatch.rs`), which is sound because one process owns the file (see `lib.rs`).

use crate::Synchronous;
use crate::codec::Db;
use durable_store::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// The schema version this build writes (`PRAGMA user_version`). Bump it when adding a migration.
pub const SCHEMA_VERSION: i64 = 6;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6];

/// Version 1.
///
/// - `instances` and `history` are `WITHOUT ROWID`: their keys are text, and a rowid table would
///   store every key twice (table + unique index).
/// - `history` has one row per committed turn (a JSON array of that turn's events); its primary
///   key also rejects a second append at the same position.
/// - `messages` and `activities` keep rowid tables with AUTOINCREMENT: ids must increase with
///   enqueue order and never be reused (in-memory leases and `consumed` lists refer to them).
///   Their `(instance_id)` indexes are implicitly ordered by id, which is the inbox order.
/// - `messages.visible_at` is NULL for immediately visible messages and the due time of timers;
///   `timer_id` lets `cancelled_timers` delete exactly the right timer.
const V1: &str = "
CREATE TABLE instances (
    instance_id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    input TEXT,
    output TEXT,
    failure TEXT,
    custom_status TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    completed_at INTEGER,
    parent_instance_id TEXT,
    parent_execution_id TEXT,
    parent_task_id INTEGER,
    history_len INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX instances_by_created ON instances (created_at);
CREATE INDEX instances_by_parent ON instances (parent_instance_id) WHERE parent_instance_id IS NOT NULL;

CREATE TABLE history (
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    first_event_index INTEGER NOT NULL,
    events TEXT NOT NULL,
    PRIMARY KEY (instance_id, execution_id, first_event_index)
) WITHOUT ROWID;

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    visible_at INTEGER,
    timer_id INTEGER,
    event TEXT NOT NULL
);
CREATE INDEX messages_by_instance ON messages (instance_id);

CREATE TABLE activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX activities_by_instance ON activities (instance_id);
";

/// Version 2: why an instance waits for another node (`Store::set_stall`). Any change of the
/// instance's status or history clears it, in a trigger, so the node that makes progress needs
/// no extra write and the hot commit statements stay as they are.
const V2: &str = "
ALTER TABLE instances ADD COLUMN stall_reason TEXT;
ALTER TABLE instances ADD COLUMN stall_since INTEGER;
CREATE TRIGGER instances_progress_clears_stall AFTER UPDATE OF status, history_len ON instances
WHEN OLD.stall_reason IS NOT NULL AND (NEW.status IS NOT OLD.status OR NEW.history_len IS NOT OLD.history_len)
BEGIN
    UPDATE instances SET stall_reason = NULL, stall_since = NULL WHERE instance_id = NEW.instance_id;
END;
";

/// Version 3: what the dashboard needs to stay fast with millions of instances.
///
/// - `instances_by_status` and `instances_by_name` serve filtered lists in (created, id) order
///   (the table is `WITHOUT ROWID`, so every index ends with the primary key `instance_id`).
/// - `instance_counts` holds how many instances have each status, kept exact by triggers in the
///   transaction that changes a status: reading the counts costs 7 rows instead of a scan of
///   every instance. The writer is the only writer, so the counter rows are never contended;
///   a status change costs two small updates of a page that stays in cache. (The writer runs
///   with `recursive_triggers` on, so the rows `INSERT OR REPLACE` deletes are counted too.)
const V3: &str = "
CREATE INDEX instances_by_status ON instances (status, created_at);
CREATE INDEX instances_by_name ON instances (name, created_at);

CREATE TABLE instance_counts (
    status INTEGER PRIMARY KEY NOT NULL,
    n INTEGER NOT NULL
);
INSERT INTO instance_counts (status, n) SELECT status, count(*) FROM instances GROUP BY status;

CREATE TRIGGER instance_counts_insert AFTER INSERT ON instances BEGIN
    INSERT INTO instance_counts (status, n) VALUES (new.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER instance_counts_delete AFTER DELETE ON instances BEGIN
    UPDATE instance_counts SET n = n - 1 WHERE status = old.status;
END;
CREATE TRIGGER instance_counts_update AFTER UPDATE OF status ON instances
WHEN old.status <> new.status BEGIN
    UPDATE instance_counts SET n = n - 1 WHERE status = old.status;
    INSERT INTO instance_counts (status, n) VALUES (new.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
";

/// Version 4: rate limits (see `limits.rs`). One row per limit key (a keyed hash, never a phone
/// number or address in clear): its GCRA theoretical arrival time (unix µs) and the reference
/// of its last charge (e.g. the verification an SMS reply answers). No index on `tat`: every
/// start rewrites its rows' `tat`, and an index would double that work; the rare sweep of
/// expired rows scans instead.
const V4: &str = "
CREATE TABLE limits (
    key TEXT PRIMARY KEY NOT NULL,
    tat INTEGER NOT NULL,
    reference TEXT
) WITHOUT ROWID;
";

/// Version 5: cheaper status counts. V3's triggers cost an upsert per new instance and two
/// statements per status change, on the single writer: about 15 % of a verification's CPU.
/// With a row for every status there is nothing to insert: a new instance is one `UPDATE` of
/// one row, a status change one `UPDATE` of two rows. Same counts, same transaction.
const V5: &str = "
INSERT OR IGNORE INTO instance_counts (status, n) VALUES (0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0);
DROP TRIGGER instance_counts_insert;
DROP TRIGGER instance_counts_update;
CREATE TRIGGER instance_counts_insert AFTER INSERT ON instances BEGIN
    UPDATE instance_counts SET n = n + 1 WHERE status = new.status;
END;
CREATE TRIGGER instance_counts_update AFTER UPDATE OF status ON instances
WHEN old.status <> new.status BEGIN
    UPDATE instance_counts SET n = n + iif(status = new.status, 1, -1) WHERE status IN (old.status, new.status);
END;
";

/// Version 6: no triggers on `instances`. A statement that fires a trigger may fail halfway, so
/// SQLite keeps a statement journal for it (a copy of every page it touches) and runs the
/// trigger as a sub-program: on every insert and status change, about 5 % of a verification's
/// CPU. The writer now adds each batch's status changes to `instance_counts` itself, one
/// `UPDATE` per status per batch (`writer::add_status_counts`), and the statements that change
/// an instance's status or history clear its stall in the same `UPDATE`. The counts are
/// recomputed once here, so they are exact whatever an older build left.
const V6: &str = "
DROP TRIGGER IF EXISTS instance_counts_insert;
DROP TRIGGER IF EXISTS instance_counts_delete;
DROP TRIGGER IF EXISTS instance_counts_update;
DROP TRIGGER IF EXISTS instances_progress_clears_stall;
UPDATE instance_counts SET n = (SELECT count(*) FROM instances WHERE instances.status = instance_counts.status);
";

/// How long a connection waits for a lock before failing. Only the writer writes, so this
/// covers checkpoints and external tools (e.g. `sqlite3` reading the file), not contention.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection; the hot paths use about 30.
const STATEMENT_CACHE: usize = 64;

/// Settings every connection gets.
fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The bundled SQLite re-prepares a cached statement whenever a new value is bound to a
    // parameter its plan looked at (a LIMIT, a range bound): on our hot queries that happened on
    // almost every execution and cost more than the queries. Our plans do not depend on the
    // values, so the query planner stability guarantee turns that off.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).db()?;
    Ok(())
}

/// Opens the write connection: WAL, the requested durability, and the schema up to date.
pub(crate) fn open_writer(path: &Path, synchronous: Synchronous) -> Result<Connection> {
    create_private(path)?;
    let conn = Connection::open(path).db()?;
    configure(&conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Unavailable(format!(
            "could not switch {} to WAL mode (got '{mode}'); is it on a file system without shared memory support?",
            path.display()
        )));
    }
    let sync = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    // (No `recursive_triggers`: since V6 there are no triggers; the writer counts a replaced
    // finished instance itself, in `Ctx::create`.)
    // secure_delete: deleted rows (a purge) are overwritten with zeros instead of lingering in
    // free pages, where phone numbers and inputs would stay readable in the file.
    // temp_store = MEMORY: a statement that may fail halfway (e.g. one that writes several rows)
    // inside a batch keeps the pages it changes in a statement journal; past 64 KiB SQLite spilled it
    // to a temporary file, so a batch wrote row images (phone numbers included) to /tmp with a
    // `pwrite` per page: a third of the cost of a start with limits. It lives only for one
    // statement, so memory holds it easily.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = OFF; PRAGMA secure_delete = ON; PRAGMA temp_store = MEMORY;"
    ))
    .db()?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Open options that create files readable and writable by their owner only (mode 0600 on Unix):
/// the database and its lock file. (`durable_runtime::private_files` has the same rule for the
/// files above the store; this crate does not depend on the runtime.)
pub(crate) fn owner_only() -> std::fs::OpenOptions {
    #[allow(unused_mut)] // only Unix sets a mode
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Creates the database file readable and writable by its owner only (0600), if it does not
/// exist yet. SQLite gives the `-wal` and `-shm` files it creates the database file's mode, so
/// they are private too.
fn create_private(path: &Path) -> Result<()> {
    match owner_only().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Unavailable(format!("cannot create the database {}: {e}", path.display()))),
    }
}

/// Opens the checkpointer's connection (run after [`open_writer`]): it writes only pages the
/// writer already committed, from the WAL into the database file.
pub(crate) fn open_checkpointer(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db()?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    // A connection learns that the file is in WAL mode, and opens the WAL, only when it first
    // reads. Until then `sqlite3_wal_checkpoint_v2` silently does nothing (it reports -1
    // frames), so read once here.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())).db()?;
    Ok(conn)
}

/// Opens a read-only connection (run after [`open_writer`], which created the schema).
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).db()?;
    configure(&conn)?;
    Ok(conn)
}

/// Applies the missing migrations in one transaction; refuses a schema newer than this build.
fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).db()?;
    if version > SCHEMA_VERSION {
        return Err(Error::Unavailable(format!(
            "database {} has schema version {version}, but this build of durable only knows versions up to \
             {SCHEMA_VERSION}; upgrade durable (or restore a backup made with this version)",
            path.display()
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE").db()?;
    let applied = (|| {
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
            conn.execute_batch(sql).db()?;
            tracing::info!(db = %path.display(), to = i + 1, "applied schema migration");
        }
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}")).db()
    })();
    match applied {
        Ok(()) => conn.execute_batch("COMMIT").db(),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_has_a_migration() {
        assert_eq!(MIGRATIONS.len() as i64, SCHEMA_VERSION);
    }

    /// Statement journals (and any temporary table) of the writer stay in memory: no row image
    /// goes to a temporary file, and no `pwrite` per journaled page.
    #[test]
    fn the_writer_keeps_statement_journals_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("d.db"), Synchronous::Full).unwrap();
        let temp_store: i64 = conn.query_row("PRAGMA temp_store", [], |r| r.get(0)).unwrap();
        assert_eq!(temp_store, 2, "PRAGMA temp_store should be MEMORY (2)");
    }

    /// A database written by the first version (with data) is brought up to date at open.
    #[test]
    fn a_version_1_database_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(V1).unwrap();
            conn.execute_batch(
                "PRAGMA user_version = 1; INSERT INTO instances (instance_id, name, execution_id, status, \
                 created_at, updated_at, history_len) VALUES ('old', 'Orch', 'e1', 1, 0, 0, 0);",
            )
            .unwrap();
        }
        let conn = open_writer(&path, Synchronous::Full).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let stall: Option<String> = conn
            .query_row("SELECT stall_reason FROM instances WHERE instance_id = 'old'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stall, None);
    }
}
