//! Reads: status rows, histories and instance queries. Each is one statement, so it sees one
//! snapshot without an explicit transaction.

use crate::codec::{self, Micros};
use durable_core::{HistoryEvent, Timestamp};
use durable_store::{Cursor, InstancePage, InstanceQuery, InstanceState, Result};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// An [`InstanceState`] from a row whose columns are `input` (or NULL) followed by
/// `Sql::instance_columns`, starting at column `at`.
pub(crate) fn instance_from_row(row: &Row, at: usize) -> Result<InstanceState> {
    let get_err = |e: tokio_postgres::Error| codec::corrupt(format!("unexpected instance row: {e}"));
    Ok(InstanceState {
        input: codec::payload(row.try_get(at).map_err(get_err)?)?,
        instance_id: row.try_get(at + 1).map_err(get_err)?,
        name: row.try_get(at + 2).map_err(get_err)?,
        execution_id: row.try_get(at + 3).map_err(get_err)?,
        status: codec::status_from(i64::from(row.try_get::<_, i16>(at + 4).map_err(get_err)?))?,
        output: codec::payload(row.try_get(at + 5).map_err(get_err)?)?,
        failure: codec::failure(row.try_get(at + 6).map_err(get_err)?)?,
        custom_status: codec::payload(row.try_get(at + 7).map_err(get_err)?)?,
        created_at: row.try_get::<_, Micros>(at + 8).map_err(get_err)?.ts(),
        last_updated_at: row.try_get::<_, Micros>(at + 9).map_err(get_err)?.ts(),
        completed_at: row.try_get::<_, Option<Micros>>(at + 10).map_err(get_err)?.map(Micros::ts),
        parent_instance_id: row.try_get(at + 11).map_err(get_err)?,
        history_len: u64::try_from(row.try_get::<_, i64>(at + 12).map_err(get_err)?).unwrap_or(0),
        stall: match row.try_get::<_, Option<String>>(at + 13).map_err(get_err)? {
            Some(reason) => Some(durable_store::Stall {
                reason,
                since: row
                    .try_get::<_, Option<Micros>>(at + 14)
                    .map_err(get_err)?
                    .map_or_else(Timestamp::now, Micros::ts),
            }),
            None => None,
        },
    })
}

/// The history of the current execution from `read_history`'s rows; `None`: no instance.
pub(crate) fn history_from_rows(rows: &[Row]) -> Result<Option<Vec<HistoryEvent>>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let mut events = Vec::new();
    for row in rows {
        if let Some(turn) = row.get::<_, Option<&str>>(0) {
            events.extend(codec::from_json::<Vec<HistoryEvent>>(turn)?);
        }
    }
    Ok(Some(events))
}

/// Owned statement parameters.
pub(crate) type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// The statement, parameters and page size of one `query_instances` page. The statement asks
/// for one row more than the page size: the extra row tells whether another page exists, so
/// the last page has no continuation.
pub(crate) fn query_statement(
    table: &str,
    columns: &str,
    q: &InstanceQuery,
) -> Result<(String, Params, usize)> {
    let mut sql = format!(
        "SELECT {}, {columns} FROM {table} WHERE true",
        if q.include_input { "input" } else { "NULL::text" }
    );
    let mut args: Params = Vec::new();
    if !q.statuses.is_empty() {
        args.push(Box::new(q.statuses.iter().map(|s| codec::status_code(*s)).collect::<Vec<i16>>()));
        sql.push_str(&format!(" AND status = ANY (${})", args.len()));
    }
    if let Some(name) = &q.name {
        args.push(Box::new(name.clone()));
        sql.push_str(&format!(" AND name = ${}", args.len()));
    }
    if let Some(from) = q.created_from {
        args.push(Box::new(Micros::of(from)));
        sql.push_str(&format!(" AND created_at >= ${}", args.len()));
    }
    if let Some(to) = q.created_to {
        args.push(Box::new(Micros::of(to)));
        sql.push_str(&format!(" AND created_at <= ${}", args.len()));
    }
    if let Some(prefix) = q.instance_id_prefix.as_ref().filter(|p| !p.is_empty()) {
        // starts_with is an exact, case-sensitive test (LIKE would treat % and _ as wildcards).
        args.push(Box::new(prefix.clone()));
        sql.push_str(&format!(" AND starts_with(instance_id, ${})", args.len()));
    }
    if let Some(token) = &q.continuation {
        let cursor = Cursor::decode(token)?;
        args.push(Box::new(Micros::of(cursor.created_at)));
        args.push(Box::new(cursor.instance_id));
        sql.push_str(&format!(" AND (created_at, instance_id) > (${}, ${})", args.len() - 1, args.len()));
    }
    let page_size = if q.page_size == 0 { 100 } else { q.page_size };
    args.push(Box::new(i64::try_from(page_size).unwrap_or(i64::MAX).saturating_add(1)));
    sql.push_str(&format!(" ORDER BY created_at, instance_id LIMIT ${}", args.len()));
    Ok((sql, args, page_size))
}

/// One page from the rows of [`query_statement`].
pub(crate) fn page_from_rows(rows: &[Row], page_size: usize) -> Result<InstancePage> {
    let more = rows.len() > page_size;
    let instances =
        rows.iter().take(page_size).map(|r| instance_from_row(r, 0)).collect::<Result<Vec<_>>>()?;
    let continuation = match instances.last() {
        Some(last) if more => {
            Some(Cursor { created_at: last.created_at, instance_id: last.instance_id.clone() }.encode())
        }
        _ => None,
    };
    Ok(InstancePage { instances, continuation })
}
