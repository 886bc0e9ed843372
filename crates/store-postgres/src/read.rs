//! Reads: status rows, histories and instance queries. Each is one statement, so it sees one
//! snapshot without an explicit transaction.

use crate::codec::{self, Micros};
use durable_core::{HistoryEvent, Timestamp};
use durable_store::{Cursor, InstancePage, InstanceQuery, InstanceState, Result, StatusCounts};
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
///
/// Each filter is answered from an index: one status through `instances_status`, a name
/// through `instances_name`, an id prefix as a primary-key range, otherwise
/// `instances_created`. Several statuses become one index range each (a LATERAL page per
/// status, merged), since `status = ANY (…)` would sort every matching row.
pub(crate) fn query_statement(
    table: &str,
    columns: &str,
    q: &InstanceQuery,
) -> Result<(String, Params, usize)> {
    let (desc, cmp) = if q.newest_first { ("DESC", "<") } else { ("ASC", ">") };
    let order = format!("ORDER BY created_at {desc}, instance_id {desc}");
    let mut filters = String::new();
    let mut args: Params = Vec::new();
    if let Some(name) = &q.name {
        args.push(Box::new(name.clone()));
        filters.push_str(&format!(" AND name = ${}", args.len()));
    }
    if let Some(from) = q.created_from {
        args.push(Box::new(Micros::of(from)));
        filters.push_str(&format!(" AND created_at >= ${}", args.len()));
    }
    if let Some(to) = q.created_to {
        args.push(Box::new(Micros::of(to)));
        filters.push_str(&format!(" AND created_at <= ${}", args.len()));
    }
    if let Some((prefix, upper)) = q.id_prefix_range() {
        // A primary-key range: the column is COLLATE "C" (byte order), which is exactly
        // "starts with" (LIKE would treat % and _ as wildcards).
        args.push(Box::new(prefix.to_owned()));
        filters.push_str(&format!(" AND instance_id >= ${}", args.len()));
        if let Some(upper) = upper {
            args.push(Box::new(upper));
            filters.push_str(&format!(" AND instance_id < ${}", args.len()));
        }
    }
    if let Some(token) = &q.continuation {
        let cursor = Cursor::decode(token)?;
        args.push(Box::new(Micros::of(cursor.created_at)));
        args.push(Box::new(cursor.instance_id));
        filters.push_str(&format!(
            " AND (created_at, instance_id) {cmp} (${}, ${})",
            args.len() - 1,
            args.len()
        ));
    }
    let page_size = if q.page_size == 0 { 100 } else { q.page_size };
    args.push(Box::new(i64::try_from(page_size).unwrap_or(i64::MAX).saturating_add(1)));
    let limit = format!("LIMIT ${}", args.len());
    let input = if q.include_input { "input" } else { "NULL::text" };
    let mut statuses: Vec<i16> = q.statuses.iter().map(|s| codec::status_code(*s)).collect();
    statuses.sort_unstable();
    statuses.dedup();
    // A prefix of three characters or more matches few ids: read them by primary key and sort
    // them, instead of walking the creation order looking for them (plans are generic, so
    // the planner cannot tell from the value).
    let by_id = q.instance_id_prefix.as_ref().is_some_and(|p| p.chars().count() >= 3);
    let sql = match statuses.as_slice() {
        [] if by_id => format!(
            "WITH m AS MATERIALIZED (SELECT {input}, {columns}, created_at AS sort_created, instance_id AS sort_id \
             FROM {table} WHERE true{filters}) SELECT * FROM m ORDER BY sort_created {desc}, sort_id {desc} {limit}"
        ),
        [] => format!("SELECT {input}, {columns} FROM {table} WHERE true{filters} {order} {limit}"),
        [one] => {
            format!("SELECT {input}, {columns} FROM {table} WHERE status = {one}{filters} {order} {limit}")
        }
        _ => {
            args.push(Box::new(statuses));
            // The page of each status, merged; the outer order uses the "C" collation of the
            // column (the cast to text in `columns` must not change the order).
            format!(
                "SELECT p.* FROM unnest(${}::smallint[]) AS s(status) CROSS JOIN LATERAL ( \
                   SELECT {input}, {columns}, created_at AS sort_created, instance_id AS sort_id \
                   FROM {table} WHERE status = s.status{filters} {order} {limit} \
                 ) p ORDER BY p.sort_created {desc}, p.sort_id {desc} {limit}",
                args.len()
            )
        }
    };
    Ok((sql, args, page_size))
}

/// The per-status counts from `count_instances`' rows (status, count).
pub(crate) fn counts_from_rows(rows: &[Row]) -> Result<StatusCounts> {
    let mut pairs = Vec::with_capacity(rows.len());
    for row in rows {
        let status = codec::status_from(i64::from(row.get::<_, i16>(0)))?;
        pairs.push((status, u64::try_from(row.get::<_, i64>(1)).unwrap_or(0)));
    }
    Ok(StatusCounts::from_pairs(pairs))
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
