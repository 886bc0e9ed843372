//! Building the parameters of the SQL functions and reading their results.

use crate::codec::{self, Micros};
use durable_core::{HistoryEvent, RuntimeStatus};
use durable_store::{
    ActivityLease, ActivityWorkItem, CreateInstance, Message, OrchestrationLease, OrchestrationWorkItem,
    Result, RewindCommit, TurnCommit,
};
use std::collections::HashMap;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// The parameters of `create_instance(...)` (also used for sub-orchestrations).
pub(crate) struct CreateParams<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub execution: &'a str,
    pub input: Option<&'a str>,
    pub parent_id: Option<&'a str>,
    pub parent_execution: Option<&'a str>,
    pub parent_task: Option<i64>,
    pub created: Micros,
    pub start_event: String,
}

impl<'a> CreateParams<'a> {
    pub(crate) fn new(req: &'a CreateInstance) -> Result<Self> {
        let parent = req.parent.as_ref();
        Ok(CreateParams {
            id: &req.instance_id,
            name: &req.name,
            execution: &req.execution_id,
            input: codec::payload_text(&req.input),
            parent_id: parent.map(|p| p.instance_id.as_str()),
            parent_execution: parent.map(|p| p.execution_id.as_str()),
            parent_task: parent.map(|p| i64::from(p.task_id)),
            created: Micros::of(req.created_at),
            start_event: codec::to_json(&req.start_event())?,
        })
    }
}

/// The 36 parameters of `commit_turn(...)`, borrowing from the commit.
pub(crate) struct TurnParams<'a> {
    c: &'a TurnCommit,
    token: i64,
    now: Micros,
    commit_time: Micros,
    expected_len: i64,
    history: Option<String>,
    history_count: i64,
    status: i16,
    output: Option<&'a str>,
    failure: Option<String>,
    custom_status: Option<&'a str>,
    act_task: Vec<i64>,
    act_name: Vec<&'a str>,
    act_input: Vec<Option<&'a str>>,
    timer_id: Vec<i64>,
    timer_at: Vec<Micros>,
    timer_event: Vec<String>,
    cancelled: Vec<i64>,
    new_id: Vec<&'a str>,
    new_name: Vec<&'a str>,
    new_execution: Vec<&'a str>,
    new_input: Vec<Option<&'a str>>,
    new_parent_id: Vec<Option<&'a str>>,
    new_parent_execution: Vec<Option<&'a str>>,
    new_parent_task: Vec<Option<i64>>,
    new_created: Vec<Micros>,
    new_start_event: Vec<String>,
    new_failed_event: Vec<Option<String>>,
    msg_instance: Vec<&'a str>,
    msg_execution: Vec<Option<&'a str>>,
    msg_event: Vec<String>,
    can_execution: Option<&'a str>,
    can_input: Option<&'a str>,
    can_events: Vec<String>,
}

impl<'a> TurnParams<'a> {
    /// `now` is the lease check's clock reading.
    pub(crate) fn new(c: &'a TurnCommit, now: Micros) -> Result<Self> {
        let mut can_events = Vec::new();
        if let Some(next) = &c.continue_as_new {
            can_events.push(codec::to_json(&next.start)?);
            for e in &next.carried_events {
                can_events.push(codec::to_json(e)?);
            }
        }
        // What the parent receives when an unfinished instance holds a child's id.
        let failed_event = |child: &CreateInstance| -> Result<Option<String>> {
            match child.collision_message(c.now) {
                Some(m) => codec::to_json(&m.event).map(Some),
                None => {
                    tracing::warn!(child = %child.instance_id, "instance created by a turn without a parent");
                    Ok(None)
                }
            }
        };
        let n = &c.new_instances;
        Ok(TurnParams {
            c,
            token: token_param(c.lease.token),
            now,
            commit_time: Micros::of(c.now),
            expected_len: i64::try_from(c.expected_history_len).unwrap_or(i64::MAX),
            history: if c.history.is_empty() { None } else { Some(codec::to_json(&c.history)?) },
            history_count: i64::try_from(c.history.len()).unwrap_or(i64::MAX),
            status: codec::status_code(c.status),
            output: codec::payload_text(&c.output),
            failure: codec::failure_text(&c.failure)?,
            custom_status: codec::payload_text(&c.custom_status),
            act_task: c.activities.iter().map(|a| i64::from(a.task_id)).collect(),
            act_name: c.activities.iter().map(|a| a.name.as_str()).collect(),
            act_input: c.activities.iter().map(|a| codec::payload_text(&a.input)).collect(),
            timer_id: c.timers.iter().map(|t| i64::from(t.timer_id)).collect(),
            timer_at: c.timers.iter().map(|t| Micros::ceil(t.fire_at)).collect(),
            timer_event: c.timers.iter().map(|t| codec::to_json(&t.fired_event())).collect::<Result<_>>()?,
            cancelled: c.cancelled_timers.iter().map(|&t| i64::from(t)).collect(),
            new_id: n.iter().map(|n| n.instance_id.as_str()).collect(),
            new_name: n.iter().map(|n| n.name.as_str()).collect(),
            new_execution: n.iter().map(|n| n.execution_id.as_str()).collect(),
            new_input: n.iter().map(|n| codec::payload_text(&n.input)).collect(),
            new_parent_id: n.iter().map(|n| n.parent.as_ref().map(|p| p.instance_id.as_str())).collect(),
            new_parent_execution: n
                .iter()
                .map(|n| n.parent.as_ref().map(|p| p.execution_id.as_str()))
                .collect(),
            new_parent_task: n.iter().map(|n| n.parent.as_ref().map(|p| i64::from(p.task_id))).collect(),
            new_created: n.iter().map(|n| Micros::of(n.created_at)).collect(),
            new_start_event: n.iter().map(|n| codec::to_json(&n.start_event())).collect::<Result<_>>()?,
            new_failed_event: n.iter().map(failed_event).collect::<Result<_>>()?,
            msg_instance: c.messages.iter().map(|m| m.instance_id.as_str()).collect(),
            msg_execution: c.messages.iter().map(|m| m.execution_id.as_deref()).collect(),
            msg_event: c.messages.iter().map(|m| codec::to_json(&m.event)).collect::<Result<_>>()?,
            can_execution: c.continue_as_new.as_ref().map(|n| n.execution_id.as_str()),
            can_input: c.continue_as_new.as_ref().and_then(|n| codec::payload_text(&n.input)),
            can_events,
        })
    }

    /// The parameters, in the function's order.
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 36] {
        [
            &self.c.lease.instance_id,
            &self.token,
            &self.now,
            &self.c.execution_id,
            &self.expected_len,
            &self.c.consumed,
            &self.history,
            &self.history_count,
            &self.status,
            &self.output,
            &self.failure,
            &self.custom_status,
            &self.commit_time,
            &self.act_task,
            &self.act_name,
            &self.act_input,
            &self.timer_id,
            &self.timer_at,
            &self.timer_event,
            &self.cancelled,
            &self.new_id,
            &self.new_name,
            &self.new_execution,
            &self.new_input,
            &self.new_parent_id,
            &self.new_parent_execution,
            &self.new_parent_task,
            &self.new_created,
            &self.new_start_event,
            &self.new_failed_event,
            &self.msg_instance,
            &self.msg_execution,
            &self.msg_event,
            &self.can_execution,
            &self.can_input,
            &self.can_events,
        ]
    }
}

/// The 24 parameters of `rewind_instance(...)`.
pub(crate) struct RewindParams<'a> {
    r: &'a RewindCommit,
    expected_len: i64,
    now: Micros,
    history: Option<String>,
    history_count: i64,
    status: i16,
    msg_event: Vec<String>,
    act_task: Vec<i64>,
    act_name: Vec<&'a str>,
    act_input: Vec<Option<&'a str>>,
    timer_id: Vec<i64>,
    timer_at: Vec<Micros>,
    timer_event: Vec<String>,
    new_id: Vec<&'a str>,
    new_name: Vec<&'a str>,
    new_execution: Vec<&'a str>,
    new_input: Vec<Option<&'a str>>,
    new_parent_id: Vec<Option<&'a str>>,
    new_parent_execution: Vec<Option<&'a str>>,
    new_parent_task: Vec<Option<i64>>,
    new_created: Vec<Micros>,
    new_start_event: Vec<String>,
    new_failed_event: Vec<Option<String>>,
}

impl<'a> RewindParams<'a> {
    pub(crate) fn new(r: &'a RewindCommit) -> Result<Self> {
        let children: Vec<CreateParams<'a>> =
            r.new_instances.iter().map(CreateParams::new).collect::<Result<_>>()?;
        let status = if r.history.is_empty() { RuntimeStatus::Pending } else { RuntimeStatus::Running };
        Ok(RewindParams {
            r,
            expected_len: i64::try_from(r.expected_history_len).unwrap_or(i64::MAX),
            now: Micros::of(r.now),
            history: if r.history.is_empty() { None } else { Some(codec::to_json(&r.history)?) },
            history_count: i64::try_from(r.history.len()).unwrap_or(i64::MAX),
            status: codec::status_code(status),
            msg_event: r.messages.iter().map(codec::to_json).collect::<Result<_>>()?,
            act_task: r.activities.iter().map(|a| i64::from(a.task_id)).collect(),
            act_name: r.activities.iter().map(|a| a.name.as_str()).collect(),
            act_input: r.activities.iter().map(|a| codec::payload_text(&a.input)).collect(),
            timer_id: r.timers.iter().map(|t| i64::from(t.timer_id)).collect(),
            timer_at: r.timers.iter().map(|t| Micros::ceil(t.fire_at)).collect(),
            timer_event: r.timers.iter().map(|t| codec::to_json(&t.fired_event())).collect::<Result<_>>()?,
            new_id: children.iter().map(|c| c.id).collect(),
            new_name: children.iter().map(|c| c.name).collect(),
            new_execution: children.iter().map(|c| c.execution).collect(),
            new_input: children.iter().map(|c| c.input).collect(),
            new_parent_id: children.iter().map(|c| c.parent_id).collect(),
            new_parent_execution: children.iter().map(|c| c.parent_execution).collect(),
            new_parent_task: children.iter().map(|c| c.parent_task).collect(),
            new_created: children.iter().map(|c| c.created).collect(),
            new_start_event: children.into_iter().map(|c| c.start_event).collect(),
            new_failed_event: r
                .new_instances
                .iter()
                .map(|c| c.collision_message(r.now).map(|m| codec::to_json(&m.event)).transpose())
                .collect::<Result<_>>()?,
        })
    }

    /// The parameters, in the function's order.
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 24] {
        [
            &self.r.instance_id,
            &self.r.execution_id,
            &self.expected_len,
            &self.now,
            &self.history,
            &self.history_count,
            &self.status,
            &self.msg_event,
            &self.act_task,
            &self.act_name,
            &self.act_input,
            &self.timer_id,
            &self.timer_at,
            &self.timer_event,
            &self.new_id,
            &self.new_name,
            &self.new_execution,
            &self.new_input,
            &self.new_parent_id,
            &self.new_parent_execution,
            &self.new_parent_task,
            &self.new_created,
            &self.new_start_event,
            &self.new_failed_event,
        ]
    }
}

/// Lease tokens come from a PostgreSQL sequence (positive `bigint`).
pub(crate) fn token_param(token: u64) -> i64 {
    // A token that does not fit was never handed out: -1 matches no lease.
    i64::try_from(token).unwrap_or(-1)
}

/// Leased instances without visible messages: (instance id, token), to release.
pub(crate) type Stale = Vec<(String, i64)>;

/// Work items from `fetch_orchestration_work`'s rows, in lease order, and the stale leases.
pub(crate) fn work_from_rows(rows: &[Row], expires: Micros) -> Result<(Vec<OrchestrationWorkItem>, Stale)> {
    let mut items = items_from_rows(rows, expires)?;
    let mut stale = Vec::new();
    items.retain_mut(|item| {
        if item.messages.is_empty() {
            stale.push((item.lease.instance_id.clone(), token_param(item.lease.token)));
        }
        !item.messages.is_empty()
    });
    Ok((items, stale))
}

/// The work items in rows of `fetch_orchestration_work` / `lease_instance`, with or without
/// messages.
pub(crate) fn items_from_rows(rows: &[Row], expires: Micros) -> Result<Vec<OrchestrationWorkItem>> {
    let mut items: Vec<OrchestrationWorkItem> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut messages: Vec<(String, Message)> = Vec::new();
    for row in rows {
        let instance_id: String = row.get(0);
        match row.get::<_, Option<i64>>(14) {
            None => {
                let token: i64 = row.get(1);
                let instance = instance_from_fetch_row(row)?;
                index.insert(instance_id.clone(), items.len());
                items.push(OrchestrationWorkItem {
                    lease: OrchestrationLease {
                        instance_id,
                        token: u64::try_from(token).unwrap_or(0),
                        expires_at: expires.ts(),
                    },
                    instance,
                    messages: Vec::new(),
                });
            }
            Some(id) => {
                let event: HistoryEvent = codec::from_json(row.get::<_, &str>(16))?;
                messages.push((instance_id, Message { id, execution_id: row.get(15), event }));
            }
        }
    }
    for (instance_id, m) in messages {
        if let Some(&i) = index.get(&instance_id) {
            items[i].messages.push(m);
        }
    }
    for item in &mut items {
        item.messages.sort_by_key(|m| m.id);
    }
    Ok(items)
}

/// The instance columns of a fetch row: (instance_id, token, name, execution_id, status, input,
/// output, failure, custom_status, created_at, updated_at, completed_at, parent_instance_id,
/// history_len, ...).
fn instance_from_fetch_row(row: &Row) -> Result<durable_store::InstanceState> {
    Ok(durable_store::InstanceState {
        instance_id: row.get(0),
        name: row.get(2),
        execution_id: row.get(3),
        status: codec::status_from(i64::from(row.get::<_, i16>(4)))?,
        input: codec::payload(row.get(5))?,
        output: codec::payload(row.get(6))?,
        failure: codec::failure(row.get(7))?,
        custom_status: codec::payload(row.get(8))?,
        created_at: row.get::<_, Micros>(9).ts(),
        last_updated_at: row.get::<_, Micros>(10).ts(),
        completed_at: row.get::<_, Option<Micros>>(11).map(Micros::ts),
        parent_instance_id: row.get(12),
        history_len: u64::try_from(row.get::<_, i64>(13)).unwrap_or(0),
        // Work items leave the stall out (see `InstanceState::stall`).
        stall: None,
    })
}

/// An activity work item from a row of `Sql::fetch_activities`.
pub(crate) fn activity_from_row(row: &Row, expires: Micros) -> Result<ActivityWorkItem> {
    Ok(ActivityWorkItem {
        lease: ActivityLease {
            activity_id: row.get(0),
            token: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            expires_at: expires.ts(),
        },
        instance_id: row.get(2),
        execution_id: row.get(3),
        task_id: u32::try_from(row.get::<_, i64>(4)).map_err(|e| codec::corrupt(format!("task id: {e}")))?,
        name: row.get(5),
        input: codec::payload(row.get(6))?,
        attempt: u32::try_from(row.get::<_, i32>(7)).unwrap_or(0),
    })
}
