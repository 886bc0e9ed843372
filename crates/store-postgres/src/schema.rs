//! The schema: name validation, versioned migrations, and the SQL text of every statement.
//!
//! Migrations run at connect, all missing ones in one transaction under a transaction-scoped
//! advisory lock keyed by the schema name: two nodes starting together serialize, the second
//! finds the work done. The applied versions are rows of `<schema>.schema_version`; a schema
//! newer than this build is refused before anything is touched.

use crate::codec::pg;
use durable_store::{Error, Result};

/// The schema version this build writes. Bump it when adding a migration.
pub const SCHEMA_VERSION: i32 = 5;

/// Migration `i` brings the schema from version `i` to `i + 1`; `__SCHEMA__` is replaced by the
/// quoted schema name.
const MIGRATIONS: &[&str] = &[
    include_str!("sql/v1.sql"),
    include_str!("sql/v2.sql"),
    include_str!("sql/v3.sql"),
    include_str!("sql/v4.sql"),
    include_str!("sql/v5.sql"),
];

/// First key of the migration advisory lock ("dura"); the second is the schema name's hash.
const MIGRATION_LOCK_CLASS: i32 = 0x6475_7261;

/// Longest schema name: the notification channel is named after the schema, and channel names
/// are identifiers (63 bytes at most).
const MAX_SCHEMA_LEN: usize = 63;

/// Checks that `name` is a plain lower-case identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes):
/// it is spliced into SQL (quoted as well) and names the notification channel.
pub(crate) fn validate_schema_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || name.len() > MAX_SCHEMA_LEN || name.starts_with("pg_") {
        return Err(Error::Invalid(format!(
            "schema name {name:?} is not valid: use 1 to {MAX_SCHEMA_LEN} lower-case letters, digits and \
             underscores, starting with a letter or underscore and not with pg_"
        )));
    }
    Ok(())
}

/// `name` as a quoted identifier (validated names contain no quotes; quoting keeps keywords
/// such as `user` usable).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the schema if needed and applies the missing migrations.
pub(crate) async fn migrate(client: &mut tokio_postgres::Client, schema: &str) -> Result<()> {
    let q = quote_ident(schema);
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&MIGRATION_LOCK_CLASS, &schema])
        .await
        .map_err(pg)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {q};
         CREATE TABLE IF NOT EXISTS {q}.schema_version (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(pg)?;
    let row = tx
        .query_one(&format!("SELECT coalesce(max(version), 0) FROM {q}.schema_version"), &[])
        .await
        .map_err(pg)?;
    let version: i32 = row.get(0);
    if version > SCHEMA_VERSION {
        return Err(Error::Unavailable(format!(
            "schema {schema:?} has version {version}, but this build of durable only knows versions up to \
             {SCHEMA_VERSION}; upgrade durable on this node (a newer node migrated the schema)"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
        tx.batch_execute(&sql.replace("__SCHEMA__", &q)).await.map_err(pg)?;
        let to = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute(&format!("INSERT INTO {q}.schema_version (version) VALUES ($1)"), &[&to])
            .await
            .map_err(pg)?;
        tracing::info!(schema, to, "applied schema migration");
    }
    tx.commit().await.map_err(pg)
}

/// The SQL of every statement, with the schema spliced in once at connect.
pub(crate) struct Sql {
    pub create_instance: String,
    pub create_instances: String,
    pub send_messages: String,
    pub get_instance: String,
    pub read_history: String,
    pub purge_instance: String,
    pub purge_matching: String,
    pub fetch_orchestrations: String,
    pub commit_turn: String,
    pub commit_turns: String,
    pub abandon_orchestration: String,
    pub set_stall: String,
    pub rewind_instance: String,
    pub renew_orchestration: String,
    pub lease_instance: String,
    pub unlock_stale: String,
    pub next_orchestration_due: String,
    pub fetch_activities: String,
    pub activity_task: String,
    pub complete_activities: String,
    pub abandon_activity: String,
    pub renew_activity: String,
    pub next_activity_due: String,
    /// Ready instances, instances ready through a due timer, ready activities, at `$1` (from
    /// the readiness indexes: the cost follows the backlog, not the parked instances).
    pub backlog: String,
    /// The `instances` columns of [`InstanceState`](durable_store::InstanceState), after the
    /// input column (see `read::instance_from_row`).
    pub instance_columns: &'static str,
    pub instances_table: String,
    pub count_instances: String,
    pub fold_instance_counts: String,
}

impl Sql {
    pub(crate) fn new(schema: &str) -> Sql {
        let s = quote_ident(schema);
        let cols = INSTANCE_COLUMNS;
        Sql {
            create_instance: format!("SELECT {s}.create_instance($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
            create_instances: format!("SELECT * FROM {s}.create_instances($1, $2, $3, $4, $5, $6)"),
            send_messages: format!("SELECT * FROM {s}.send_messages($1, $2)"),
            get_instance: format!("SELECT input, {cols} FROM {s}.instances WHERE instance_id = $1"),
            // One row per turn (NULL events when there is none yet); no row: no instance.
            read_history: format!(
                "SELECT h.events FROM {s}.instances i \
                 LEFT JOIN {s}.history h ON h.instance_id = i.instance_id AND h.execution_id = i.execution_id \
                 WHERE i.instance_id = $1 ORDER BY h.first_event_index"
            ),
            purge_instance: format!("SELECT {s}.purge_instance($1)"),
            purge_matching: format!("SELECT {s}.purge_matching($1, $2, $3)"),
            fetch_orchestrations: format!("SELECT * FROM {s}.fetch_orchestration_work($1, $2, $3, $4)"),
            commit_turn: format!(
                "SELECT * FROM {s}.commit_turn($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, \
                 $35, $36)"
            ),
            commit_turns: format!(
                "SELECT * FROM {s}.commit_turns($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                 $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
            ),
            // Reporting the same reason again keeps its start. (Names neither `status` nor
            // `history_len`, so the clearing trigger does not fire.)
            rewind_instance: format!(
                "SELECT * FROM {s}.rewind_instance($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                 $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
            ),
            set_stall: format!(
                "UPDATE {s}.instances SET stall_since = CASE WHEN $2::text IS NULL THEN NULL \
                 WHEN stall_reason IS NOT DISTINCT FROM $2::text THEN stall_since ELSE $3 END, stall_reason = $2::text \
                 WHERE instance_id = $1 RETURNING true"
            ),
            abandon_orchestration: format!(
                "UPDATE {s}.instances SET lock_token = NULL, locked_until = $4 \
                 WHERE instance_id = $1 AND lock_token = $2 AND locked_until > $3 RETURNING true"
            ),
            renew_orchestration: format!(
                "UPDATE {s}.instances SET locked_until = GREATEST(locked_until, $4) \
                 WHERE instance_id = $1 AND lock_token = $2 AND locked_until > $3 RETURNING locked_until"
            ),
            // `lease_instance`: one instance by id, when unleased and unfinished (a row another
            // transaction is leasing is skipped, not waited for), with its visible messages, in
            // the row layout of `fetch_orchestration_work`. Statuses 2, 3, 4 are the terminal ones
            // (see `durable_store::codec::status_code`).
            lease_instance: format!(
                "WITH target AS ( \
                   SELECT instance_id FROM {s}.instances \
                   WHERE instance_id = $1 AND COALESCE(locked_until, '-infinity'::timestamptz) <= $2 \
                     AND status NOT IN (2, 3, 4) \
                   FOR UPDATE SKIP LOCKED \
                 ), leased AS ( \
                   UPDATE {s}.instances i SET lock_token = nextval('{s}.lease_tokens'), locked_until = $3 \
                   FROM target WHERE i.instance_id = target.instance_id \
                   RETURNING i.instance_id::text AS instance_id, i.lock_token, i.name, i.execution_id::text AS execution_id, \
                     i.status, i.input, i.output, i.failure, i.custom_status, i.created_at, i.updated_at, \
                     i.completed_at, i.parent_instance_id::text AS parent_instance_id, i.history_len \
                 ) \
                 SELECT l.*, NULL::bigint, NULL::text, NULL::text FROM leased l \
                 UNION ALL \
                 SELECT l.instance_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
                   m.id, m.execution_id::text, m.event \
                 FROM leased l CROSS JOIN LATERAL ( \
                   SELECT m.id, m.execution_id, m.event FROM {s}.messages m \
                   WHERE m.instance_id = l.instance_id AND m.visible_at <= $2 ORDER BY m.id LIMIT $4 \
                 ) m"
            ),
            // A leased instance without visible messages (should not happen: next_visible_at is
            // exact) is released with its visibility recomputed, rather than handed out empty.
            unlock_stale: format!(
                "UPDATE {s}.instances i SET lock_token = NULL, locked_until = NULL, \
                 next_visible_at = (SELECT min(m.visible_at) FROM {s}.messages m WHERE m.instance_id = i.instance_id) \
                 WHERE i.instance_id = $1 AND i.lock_token = $2"
            ),
            next_orchestration_due: format!(
                "SELECT min(GREATEST(next_visible_at, locked_until)) FROM {s}.instances \
                 WHERE next_visible_at IS NOT NULL"
            ),
            fetch_activities: format!(
                "UPDATE {s}.activities a \
                 SET lock_token = nextval('{s}.lease_tokens'), locked_until = $2, attempts = a.attempts + 1 \
                 FROM (SELECT id FROM {s}.activities WHERE COALESCE(locked_until, '-infinity'::timestamptz) <= $1 \
                       ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) p \
                 WHERE a.id = p.id \
                 RETURNING a.id, a.lock_token, a.instance_id::text, a.execution_id::text, a.task_id, a.name, \
                           a.input, a.attempts"
            ),
            activity_task: format!("SELECT task_id FROM {s}.activities WHERE id = $1 AND lock_token = $2"),
            complete_activities: format!("SELECT * FROM {s}.complete_activities($1, $2, $3, $4)"),
            abandon_activity: format!(
                "UPDATE {s}.activities SET lock_token = NULL, locked_until = $4 \
                 WHERE id = $1 AND lock_token = $2 AND locked_until > $3 RETURNING true"
            ),
            renew_activity: format!(
                "UPDATE {s}.activities SET locked_until = GREATEST(locked_until, $4) \
                 WHERE id = $1 AND lock_token = $2 AND locked_until > $3 RETURNING locked_until"
            ),
            next_activity_due: format!(
                "SELECT min(COALESCE(locked_until, '-infinity'::timestamptz)) FROM {s}.activities"
            ),
            backlog: format!(
                "SELECT count(*), count(*) FILTER (WHERE next_visible_at > '-infinity'), \
                 (SELECT count(*) FROM {s}.activities WHERE COALESCE(locked_until, '-infinity'::timestamptz) <= $1) \
                 FROM {s}.instances \
                 WHERE next_visible_at IS NOT NULL AND GREATEST(next_visible_at, locked_until) <= $1"
            ),
            instance_columns: INSTANCE_COLUMNS,
            instances_table: format!("{s}.instances"),
            count_instances: format!(
                "SELECT status, sum(n)::bigint FROM {s}.instance_counts GROUP BY status HAVING sum(n) <> 0"
            ),
            fold_instance_counts: format!("SELECT {s}.fold_instance_counts()"),
        }
    }
}

/// See [`Sql::instance_columns`].
const INSTANCE_COLUMNS: &str = "instance_id::text, name, execution_id::text, status, output, failure, \
     custom_status, created_at, updated_at, completed_at, parent_instance_id::text, history_len, stall_reason, \
     stall_since";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_has_a_migration() {
        assert_eq!(MIGRATIONS.len(), usize::try_from(SCHEMA_VERSION).unwrap());
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["durable", "_hub", "hub_2", &"a".repeat(63)] {
            validate_schema_name(ok).unwrap();
        }
        for bad in ["", "Durable", "2hub", "a-b", "a\"b", "a b", "pg_hub", &"a".repeat(64), "durable;drop"] {
            assert!(matches!(validate_schema_name(bad), Err(Error::Invalid(_))), "{bad:?}");
        }
        assert_eq!(quote_ident("user"), "\"user\"");
    }
}
