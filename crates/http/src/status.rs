//! The status payload and the Durable Functions rendering of history (§2.6).

use durable_core::{EventKind, FailureDetails, HistoryEvent, Payload, RuntimeStatus, TaskId, Timestamp};
use durable_store::InstanceState;
use serde::Serialize;
use std::collections::HashMap;

/// `StatusResponsePayload`, fields in Durable Functions' order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusPayload {
    name: String,
    instance_id: String,
    runtime_status: &'static str,
    input: Option<Payload>,
    custom_status: Option<Payload>,
    output: Option<Payload>,
    created_time: String,
    last_updated_time: String,
    /// Ours, not Durable Functions': why the instance waits for another node (e.g. the one this
    /// request reached lacks its orchestrator). Present only while that is so.
    #[serde(skip_serializing_if = "Option::is_none")]
    stalled: Option<StallItem>,
    // Omitted entirely unless asked for, as in Durable Functions.
    #[serde(skip_serializing_if = "Option::is_none")]
    history_events: Option<Vec<HistoryItem>>,
}

/// `stalled` of the status payload.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StallItem {
    reason: String,
    since: String,
}

impl StatusPayload {
    pub(crate) fn new(state: InstanceState, show_input: bool, history: Option<Vec<HistoryItem>>) -> Self {
        let output = match state.status {
            // Durable Functions puts the error message where the output would be.
            RuntimeStatus::Failed => match &state.failure {
                Some(f) => Payload::from_value(&f.message).ok(),
                None => state.output,
            },
            // For Terminated the stored output already is the reason (a JSON string).
            _ => state.output,
        };
        StatusPayload {
            name: state.name,
            instance_id: state.instance_id,
            runtime_status: state.status.as_str(),
            input: if show_input { state.input } else { None },
            custom_status: state.custom_status,
            output,
            created_time: seconds(state.created_at),
            last_updated_time: seconds(state.last_updated_at),
            stalled: state.stall.map(|s| StallItem { reason: s.reason, since: seconds(s.since) }),
            history_events: history,
        }
    }
}

/// `yyyy-MM-ddTHH:mm:ssZ`: Durable Functions truncates status times to whole seconds.
pub(crate) fn seconds(ts: Timestamp) -> String {
    Timestamp::from_second(ts.as_second()).map_or_else(|_| ts.to_string(), |t| t.to_string())
}

/// One entry of `historyEvents`. Fields appear only when they apply, `EventType` first and
/// `Timestamp` last, like the Durable Functions examples.
#[derive(Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HistoryItem {
    pub(crate) event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) function_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) orchestration_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) input: Option<Payload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) result: Option<Payload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) details: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) failure_details: Option<FailureItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fire_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scheduled_time: Option<String>,
    pub(crate) timestamp: String,
}

/// DTFx `FailureDetails`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct FailureItem {
    error_type: String,
    error_message: String,
    is_non_retriable: bool,
}

impl From<&FailureDetails> for FailureItem {
    fn from(f: &FailureDetails) -> Self {
        FailureItem {
            error_type: f.error_type.clone(),
            error_message: f.message.clone(),
            is_non_retriable: f.non_retriable,
        }
    }
}

/// What a completion needs from the action it completes.
struct Scheduled<'a> {
    name: &'a str,
    at: Timestamp,
    input: Option<&'a Payload>,
    instance_id: Option<&'a str>,
}

/// Renders history like Durable Functions' `GetDurableOrchestrationStatusAsync`:
/// `OrchestratorStarted` is dropped; a `TaskScheduled` (or `SubOrchestrationInstanceCreated`)
/// that has a completion is dropped and its name, time and input are merged into the
/// completion; `ExecutionStarted`'s `Name` becomes `FunctionName`; results appear only with
/// `show_output` and inputs (event data, termination reasons included) only with `show_input`.
pub(crate) fn render_history(
    events: &[HistoryEvent],
    show_input: bool,
    show_output: bool,
) -> Vec<HistoryItem> {
    // One sequence per execution numbers every action (activities, timers, sub-orchestrations),
    // so the id alone identifies what a completion completes.
    let mut scheduled: HashMap<TaskId, Scheduled<'_>> = HashMap::new();
    let mut completed: Vec<TaskId> = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::TaskScheduled { id, name, input } => {
                scheduled.insert(
                    *id,
                    Scheduled { name, at: e.timestamp, input: input.as_ref(), instance_id: None },
                );
            }
            EventKind::SubOrchestrationCreated { id, name, instance_id, input } => {
                scheduled.insert(
                    *id,
                    Scheduled {
                        name,
                        at: e.timestamp,
                        input: input.as_ref(),
                        instance_id: Some(instance_id),
                    },
                );
            }
            EventKind::TaskCompleted { task_id, .. }
            | EventKind::TaskFailed { task_id, .. }
            | EventKind::SubOrchestrationCompleted { task_id, .. }
            | EventKind::SubOrchestrationFailed { task_id, .. } => completed.push(*task_id),
            _ => {}
        }
    }
    let input = |p: &Option<Payload>| if show_input { p.clone() } else { None };
    let output = |p: &Option<Payload>| if show_output { p.clone() } else { None };
    let mut items = Vec::with_capacity(events.len());
    for e in events {
        let mut item = HistoryItem {
            event_type: e.kind.type_name(),
            timestamp: e.timestamp.to_string(),
            ..HistoryItem::default()
        };
        // Fills in what the completed action was.
        let merge = |item: &mut HistoryItem, task_id: &TaskId| {
            if let Some(s) = scheduled.get(task_id) {
                item.function_name = Some(s.name.to_owned());
                item.instance_id = s.instance_id.map(str::to_owned);
                item.scheduled_time = Some(s.at.to_string());
                if show_input {
                    item.input = s.input.cloned();
                }
            }
        };
        match &e.kind {
            EventKind::OrchestratorStarted => continue,
            EventKind::TaskScheduled { id, .. } | EventKind::SubOrchestrationCreated { id, .. }
                if completed.contains(id) =>
            {
                continue;
            }
            EventKind::ExecutionStarted { name, input: i, .. } => {
                item.function_name = Some(name.clone());
                item.input = input(i);
            }
            EventKind::ExecutionCompleted { status, result, failure } => {
                if *status == RuntimeStatus::ContinuedAsNew {
                    item.event_type = "ContinueAsNew";
                }
                item.orchestration_status = Some(status.as_str());
                item.result = output(result);
                if let Some(f) = failure {
                    item.failure_details = Some(f.into());
                    if show_output && item.result.is_none() {
                        item.result = Payload::from_value(&f.message).ok();
                    }
                }
            }
            EventKind::ExecutionTerminated { reason } => {
                // DTFx keeps the reason in `Input`.
                if show_input {
                    item.input = reason.as_ref().and_then(|r| Payload::from_value(r).ok());
                }
            }
            EventKind::ExecutionSuspended { reason }
            | EventKind::ExecutionResumed { reason }
            | EventKind::ExecutionRewound { reason } => {
                item.reason = reason.clone();
            }
            EventKind::TaskScheduled { name, input: i, .. } => {
                item.name = Some(name.clone());
                item.input = input(i);
            }
            EventKind::SubOrchestrationCreated { name, instance_id, input: i, .. } => {
                item.name = Some(name.clone());
                item.instance_id = Some(instance_id.clone());
                item.input = input(i);
            }
            EventKind::TaskCompleted { task_id, result }
            | EventKind::SubOrchestrationCompleted { task_id, result } => {
                merge(&mut item, task_id);
                item.result = output(result);
            }
            EventKind::TaskFailed { task_id, failure }
            | EventKind::SubOrchestrationFailed { task_id, failure } => {
                merge(&mut item, task_id);
                item.reason = Some(failure.message.clone());
                item.details = failure.details.clone();
                item.failure_details = Some(failure.into());
            }
            EventKind::TimerCreated { fire_at, .. } | EventKind::TimerFired { fire_at, .. } => {
                item.fire_at = Some(fire_at.to_string());
            }
            EventKind::EventRaised { name, input: i, .. } => {
                item.name = Some(name.clone());
                item.input = input(i);
            }
            EventKind::EventSent { instance_id, name, input: i, .. } => {
                item.name = Some(name.clone());
                item.instance_id = Some(instance_id.clone());
                item.input = input(i);
            }
        }
        items.push(item);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn p(json: &str) -> Option<Payload> {
        Some(Payload::from_json(json).unwrap())
    }

    fn ev(t: &str, kind: EventKind) -> HistoryEvent {
        HistoryEvent::new(ts(t), kind)
    }

    /// The flagship's happy path: start, activity, timer, event, completion.
    fn flagship() -> Vec<HistoryEvent> {
        vec![
            ev("2026-01-01T00:00:00Z", EventKind::OrchestratorStarted),
            ev(
                "2026-01-01T00:00:00Z",
                EventKind::ExecutionStarted {
                    name: "Verify".into(),
                    input: p("\"+1425\""),
                    parent: None,
                    trace: None,
                },
            ),
            ev(
                "2026-01-01T00:00:00.5Z",
                EventKind::TaskScheduled { id: 0, name: "SendSms".into(), input: p("\"+1425\"") },
            ),
            ev("2026-01-01T00:00:01Z", EventKind::OrchestratorStarted),
            ev("2026-01-01T00:00:01Z", EventKind::TaskCompleted { task_id: 0, result: p("2168") }),
            ev(
                "2026-01-01T00:00:01Z",
                EventKind::TimerCreated { id: 1, fire_at: ts("2026-01-01T00:01:31Z") },
            ),
            ev("2026-01-01T00:00:02Z", EventKind::OrchestratorStarted),
            ev(
                "2026-01-01T00:00:02Z",
                EventKind::EventRaised { name: "Answer".into(), input: p("2168"), id: None },
            ),
            ev(
                "2026-01-01T00:00:02Z",
                EventKind::ExecutionCompleted {
                    status: RuntimeStatus::Completed,
                    result: p("true"),
                    failure: None,
                },
            ),
        ]
    }

    #[test]
    fn history_is_rendered_durable_functions_style_with_everything_shown() {
        let items = serde_json::to_value(render_history(&flagship(), true, true)).unwrap();
        assert_eq!(
            items,
            json!([
                {"EventType": "ExecutionStarted", "FunctionName": "Verify", "Input": "+1425", "Timestamp": "2026-01-01T00:00:00Z"},
                {"EventType": "TaskCompleted", "FunctionName": "SendSms", "Input": "+1425", "Result": 2168,
                 "ScheduledTime": "2026-01-01T00:00:00.5Z", "Timestamp": "2026-01-01T00:00:01Z"},
                {"EventType": "TimerCreated", "FireAt": "2026-01-01T00:01:31Z", "Timestamp": "2026-01-01T00:00:01Z"},
                {"EventType": "EventRaised", "Name": "Answer", "Input": 2168, "Timestamp": "2026-01-01T00:00:02Z"},
                {"EventType": "ExecutionCompleted", "OrchestrationStatus": "Completed", "Result": true, "Timestamp": "2026-01-01T00:00:02Z"},
            ])
        );
    }

    #[test]
    fn outputs_and_inputs_are_hidden_unless_asked_for() {
        let items = serde_json::to_value(render_history(&flagship(), false, false)).unwrap();
        let text = items.to_string();
        assert!(!text.contains("Input") && !text.contains("Result"), "{text}");
        assert!(!text.contains("2168"), "the code must not leak: {text}");
        assert_eq!(items[1]["FunctionName"], "SendSms");
    }

    #[test]
    fn unfinished_actions_and_failures_are_kept() {
        let failure = FailureDetails::new("ActivityError", "twilio said no").with_details("HTTP 400");
        let events = vec![
            ev("2026-01-01T00:00:00Z", EventKind::TaskScheduled { id: 0, name: "A".into(), input: None }),
            ev("2026-01-01T00:00:00Z", EventKind::TaskScheduled { id: 1, name: "B".into(), input: p("1") }),
            ev("2026-01-01T00:00:01Z", EventKind::TaskFailed { task_id: 0, failure: failure.clone() }),
            ev(
                "2026-01-01T00:00:02Z",
                EventKind::ExecutionCompleted {
                    status: RuntimeStatus::Failed,
                    result: None,
                    failure: Some(failure),
                },
            ),
            ev("2026-01-01T00:00:03Z", EventKind::ExecutionSuspended { reason: Some("maintenance".into()) }),
            ev("2026-01-01T00:00:04Z", EventKind::ExecutionTerminated { reason: Some("stop".into()) }),
        ];
        let items = serde_json::to_value(render_history(&events, true, false)).unwrap();
        assert_eq!(
            items[0],
            json!({"EventType": "TaskScheduled", "Name": "B", "Input": 1, "Timestamp": "2026-01-01T00:00:00Z"})
        );
        assert_eq!(items[1]["EventType"], "TaskFailed");
        assert_eq!(items[1]["FunctionName"], "A");
        assert_eq!(items[1]["Reason"], "twilio said no");
        assert_eq!(items[1]["Details"], "HTTP 400");
        assert_eq!(items[1]["FailureDetails"]["ErrorType"], "ActivityError");
        assert_eq!(items[2]["OrchestrationStatus"], "Failed");
        assert!(items[2].get("Result").is_none());
        assert_eq!(items[3]["Reason"], "maintenance");
        assert_eq!(
            items[4],
            json!({"EventType": "ExecutionTerminated", "Input": "stop", "Timestamp": "2026-01-01T00:00:04Z"})
        );
    }

    #[test]
    fn sub_orchestrations_merge_like_activities() {
        let events = vec![
            ev(
                "2026-01-01T00:00:00Z",
                EventKind::SubOrchestrationCreated {
                    id: 0,
                    name: "Child".into(),
                    instance_id: "c1".into(),
                    input: None,
                },
            ),
            ev(
                "2026-01-01T00:00:05Z",
                EventKind::SubOrchestrationCompleted { task_id: 0, result: p("{\"ok\":1}") },
            ),
        ];
        let items = serde_json::to_value(render_history(&events, true, true)).unwrap();
        assert_eq!(
            items,
            json!([{"EventType": "SubOrchestrationInstanceCompleted", "FunctionName": "Child", "InstanceId": "c1",
                    "Result": {"ok": 1}, "ScheduledTime": "2026-01-01T00:00:00Z", "Timestamp": "2026-01-01T00:00:05Z"}])
        );
    }

    fn state(status: RuntimeStatus) -> InstanceState {
        InstanceState {
            instance_id: "i1".into(),
            name: "Verify".into(),
            execution_id: "e1".into(),
            status,
            input: p("\"+1425\""),
            output: p("true"),
            failure: None,
            custom_status: None,
            created_at: ts("2026-01-01T10:20:30.987654Z"),
            last_updated_at: ts("2026-01-01T10:21:00.5Z"),
            completed_at: None,
            parent_instance_id: None,
            history_len: 3,
            stall: None,
        }
    }

    #[test]
    fn status_payload_has_the_durable_functions_shape() {
        let s =
            serde_json::to_string(&StatusPayload::new(state(RuntimeStatus::Completed), true, None)).unwrap();
        assert_eq!(
            s,
            r#"{"name":"Verify","instanceId":"i1","runtimeStatus":"Completed","input":"+1425","customStatus":null,"output":true,"createdTime":"2026-01-01T10:20:30Z","lastUpdatedTime":"2026-01-01T10:21:00Z"}"#
        );
        let hidden =
            serde_json::to_value(StatusPayload::new(state(RuntimeStatus::Running), false, Some(vec![])))
                .unwrap();
        assert_eq!(hidden["input"], serde_json::Value::Null);
        assert_eq!(hidden["historyEvents"], json!([]));
    }

    #[test]
    fn failed_output_is_the_error_message() {
        let mut st = state(RuntimeStatus::Failed);
        st.output = None;
        st.failure = Some(FailureDetails::new("Error", "phone number is missing"));
        let v = serde_json::to_value(StatusPayload::new(st, true, None)).unwrap();
        assert_eq!(v["output"], "phone number is missing");
    }

    #[test]
    fn a_stall_is_shown_only_while_there_is_one() {
        let mut st = state(RuntimeStatus::Running);
        st.stall = Some(durable_store::Stall {
            reason: "[DT0002] no orchestrator".into(),
            since: ts("2026-01-01T10:21:00.5Z"),
        });
        let v = serde_json::to_value(StatusPayload::new(st, true, None)).unwrap();
        assert_eq!(
            v["stalled"],
            json!({"reason": "[DT0002] no orchestrator", "since": "2026-01-01T10:21:00Z"})
        );
    }
}
