//! The page of one instance: summary, payloads, what it waits for, actions, timeline, history
//! table and raw JSON.

use super::instances::status_badge;
use super::{Flash, Nav, instance_href, layout};
use crate::auth::Session;
use crate::timeline::Timeline;
use crate::{Dashboard, format};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use durable_core::{EventKind, HistoryEvent, Payload, RuntimeStatus, Timestamp};
use durable_store::InstanceState;
use maud::{Markup, html};

/// History rows shown in the table at most (the raw JSON has everything).
const MAX_TABLE_ROWS: usize = 2000;

/// Everything the page shows, read once.
pub(crate) struct Loaded {
    pub state: InstanceState,
    pub history: Vec<HistoryEvent>,
    /// Of the known event names, those the orchestrator waits for (`None`: not known here).
    pub awaited: Option<Vec<String>>,
    /// The trace of its current execution, when tracing was on when it started.
    pub trace: Option<TraceLink>,
}

/// An execution's trace: its id, and a link to it in a trace viewer when one is configured.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TraceLink {
    pub trace_id: String,
    pub href: Option<String>,
}

impl TraceLink {
    /// The trace of the last execution in `history` (from its `ExecutionStarted`), linked
    /// through `template` (`{trace_id}` is replaced) when there is one.
    pub(crate) fn of(history: &[HistoryEvent], template: Option<&str>) -> Option<TraceLink> {
        let trace = history.iter().rev().find_map(|e| match &e.kind {
            EventKind::ExecutionStarted { trace, .. } => Some(trace.as_ref()),
            _ => None,
        })??;
        // traceparent: 00-{32 hex trace id}-{16 hex span id}-{flags}
        let trace_id = trace
            .traceparent
            .split('-')
            .nth(1)
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))?;
        let href = template.map(|t| t.replace("{trace_id}", trace_id));
        Some(TraceLink { trace_id: trace_id.to_owned(), href })
    }
}

/// Reads the instance; `Ok(None)` when it does not exist.
pub(crate) async fn load(dashboard: &Dashboard, id: &str) -> Result<Option<Loaded>, (StatusCode, String)> {
    let client = &dashboard.client;
    let err = |e: durable_runtime::client::Error| super::client_error(&e);
    let Some(state) = client.status(id).await.map_err(err)? else { return Ok(None) };
    let history = match client.history(id).await {
        Ok(h) => h,
        // Purged between the two reads.
        Err(durable_runtime::client::Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    let awaited = if state.status.is_terminal() {
        Some(Vec::new())
    } else {
        let mut candidates: Vec<&str> = dashboard.options.event_names.iter().map(String::as_str).collect();
        for e in &history {
            if let EventKind::EventRaised { name, .. } = &e.kind
                && !candidates.iter().any(|c| c.eq_ignore_ascii_case(name))
            {
                candidates.push(name);
            }
        }
        client.awaited_events(id, &candidates)
    };
    let trace = TraceLink::of(&history, dashboard.options.trace_url.as_deref());
    Ok(Some(Loaded { state, history, awaited, trace }))
}

/// `GET /instances/{id}`.
pub(crate) async fn page(
    State(dashboard): State<Dashboard>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    render(&dashboard, &session, &id, None, StatusCode::OK).await
}

/// The whole page, with an optional message (an action's result).
pub(crate) async fn render(
    dashboard: &Dashboard,
    session: &Session,
    id: &str,
    flash: Option<Flash>,
    status: StatusCode,
) -> Response {
    let loaded = match load(dashboard, id).await {
        Ok(Some(loaded)) => loaded,
        Ok(None) => {
            let body = html! {
                h1 { "Instance " code { (id) } }
                @if let Some(flash) = &flash { (flash.render()) }
                p.flash.error role="alert" { "There is no instance with this id (it may have been purged)." }
                p { a href="/" { "Back to the instances" } }
            };
            let code = if flash.is_some() { status } else { StatusCode::NOT_FOUND };
            return (code, layout(dashboard, session, id, Nav::None, body)).into_response();
        }
        Err((code, message)) => return super::error_response(code, &message),
    };
    let body = html! {
        h1 {
            span.kicker { "Instance" }
            code.instance-id { (id) }
        }
        div #action-result aria-live="polite" {
            @if let Some(flash) = &flash { (flash.render()) }
        }
        (crate::actions::panel(dashboard, session, &loaded.state))
        div.livebar {
            button.pause type="button" aria-pressed="false" data-live-toggle { "Pause live updates" }
            span.updated aria-live="off" data-live-stamp {}
        }
        div #live data-live-src=(format!("/live/instances/{}", super::encode_segment(id))) {
            (details(&loaded))
        }
    };
    (status, layout(dashboard, session, id, Nav::None, body)).into_response()
}

/// `GET /live/instances/{id}`: everything but the actions, for live refresh.
pub(crate) async fn live(State(dashboard): State<Dashboard>, Path(id): Path<String>) -> Response {
    match load(&dashboard, &id).await {
        Ok(Some(loaded)) => Html(details(&loaded).into_string()).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Html(Flash::error("This instance no longer exists.").render().into_string()),
        )
            .into_response(),
        Err((code, message)) => (code, Html(Flash::error(message).render().into_string())).into_response(),
    }
}

/// The part of the page that live refresh replaces.
pub(crate) fn details(loaded: &Loaded) -> Markup {
    let s = &loaded.state;
    let terminal = s.status.is_terminal();
    let timeline = Timeline::build(&loaded.history, s, Timestamp::now());
    html! {
        div.details data-status=(s.status.as_str()) data-terminal=(terminal) {
            section.summary aria-label="Summary" {
                dl {
                    dt { "Status" } dd { (status_badge(s.status)) }
                    dt { "Orchestrator" } dd { (s.name) }
                    dt { "Created" } dd { (time(s.created_at)) }
                    dt { "Last updated" } dd { (time(s.last_updated_at)) }
                    @if let Some(done) = s.completed_at {
                        dt { "Finished" } dd { (time(done)) " (after " (format::duration(s.created_at, done)) ")" }
                    }
                    dt { "Execution" } dd { code { (s.execution_id) } }
                    dt { "History events" } dd { (loaded.history.len()) }
                    @if let Some(stall) = &s.stall {
                        dt { "Stalled" } dd.stall { (stall.reason) " (since " (time(stall.since)) ")" }
                    }
                    @if let Some(trace) = &loaded.trace {
                        dt { "Trace" }
                        dd {
                            @if let Some(href) = &trace.href {
                                a href=(href) target="_blank" rel="noopener noreferrer" { code { (trace.trace_id) } }
                            } @else {
                                code title="Set --trace-url to link it to your trace viewer" { (trace.trace_id) }
                            }
                        }
                    }
                    @if let Some(parent) = &s.parent_instance_id {
                        dt { "Parent" } dd { a href=(instance_href(parent)) { code { (parent) } } }
                    }
                }
            }
            (waiting(loaded))
            section.payloads aria-label="Input and output" {
                (payload("Input", s.input.as_ref()))
                @if s.status == RuntimeStatus::Terminated {
                    (payload("Termination reason", s.output.as_ref()))
                } @else {
                    (payload("Output", s.output.as_ref()))
                }
                (payload("Custom status", s.custom_status.as_ref()))
                @if let Some(f) = &s.failure {
                    div.payload.failure {
                        h2 { "Failure" }
                        p { strong { (f.error_type) } ": " (f.message) }
                        @if let Some(d) = &f.details { pre { (d) } }
                    }
                }
            }
            section aria-labelledby="timeline-h" {
                h2 #timeline-h { "Timeline" }
                (timeline.render())
            }
            section aria-labelledby="history-h" {
                h2 #history-h { "History" }
                (history_table(&loaded.history))
            }
            details.raw {
                summary { "Raw JSON" }
                pre.json { (raw_json(loaded)) }
            }
        }
    }
}

fn time(t: Timestamp) -> Markup {
    html! { time datetime=(format::iso(t)) { (format::time(t)) } }
}

fn payload(title: &str, p: Option<&Payload>) -> Markup {
    html! {
        div.payload {
            h2 { (title) }
            @match p {
                Some(p) => pre.json { (format::json(p)) },
                None => p.none { "none" },
            }
        }
    }
}

/// Open timers, running activities and sub-orchestrations, and awaited events.
fn waiting(loaded: &Loaded) -> Markup {
    let s = &loaded.state;
    if s.status.is_terminal() {
        return html! {};
    }
    let timeline = Timeline::build(&loaded.history, s, Timestamp::now());
    use crate::timeline::{Kind, Outcome};
    let open: Vec<_> = timeline.bars.iter().filter(|b| b.outcome == Outcome::Open).collect();
    html! {
        section.waiting aria-labelledby="waiting-h" {
            h2 #waiting-h { "Waiting for" }
            ul {
                @match &loaded.awaited {
                    Some(names) if !names.is_empty() => {
                        @for name in names { li { "event " strong { (name) } } }
                    }
                    Some(_) => {}
                    None => li.hint { "Awaited events are not known on this node (the instance is not loaded here)." }
                }
                @for bar in &open {
                    @match bar.kind {
                        Kind::Timer => li { "timer #" (bar.id) " due " (time(bar.end)) },
                        Kind::Activity => li { "activity " strong { (bar.label) } " (#" (bar.id) "), scheduled " (time(bar.start)) },
                        Kind::SubOrchestration => li {
                            "sub-orchestration " strong { (bar.label) } " "
                            @if let Some(child) = &bar.link { a href=(instance_href(child)) { code { (child) } } }
                        },
                    }
                }
                @if open.is_empty() && loaded.awaited.as_ref().is_some_and(Vec::is_empty) {
                    li.hint { "nothing known" }
                }
            }
        }
    }
}

/// One row per event: position, time, type, what it concerns, data.
fn history_table(history: &[HistoryEvent]) -> Markup {
    if history.is_empty() {
        return html! { p.empty { "No history yet: the first turn has not run." } };
    }
    html! {
        table.history {
            caption.visually-hidden { "History events in order" }
            thead {
                tr {
                    th scope="col" { "#" }
                    th scope="col" { "Time (UTC)" }
                    th scope="col" { "Event" }
                    th scope="col" { "About" }
                    th scope="col" { "Data" }
                }
            }
            tbody {
                @for (i, e) in history.iter().enumerate().take(MAX_TABLE_ROWS) {
                    @let (about, data) = describe(&e.kind);
                    tr class=(format!("ev {}", e.kind.type_name())) {
                        td { (i) }
                        td { (time(e.timestamp)) }
                        td { (e.kind.type_name()) }
                        td { (about) }
                        td.data { @if let Some(d) = data { code { (d) } } }
                    }
                }
            }
        }
        @if history.len() > MAX_TABLE_ROWS {
            p.hint { "Only the first " (MAX_TABLE_ROWS) " of " (history.len()) " events are listed; Raw JSON has all." }
        }
    }
}

fn short(p: &Option<Payload>) -> Option<String> {
    p.as_ref().map(|p| format::json_short(p, 120))
}

fn describe(kind: &EventKind) -> (Markup, Option<String>) {
    match kind {
        EventKind::OrchestratorStarted => (html! {}, None),
        EventKind::ExecutionStarted { name, input, parent, .. } => (
            html! {
                (name)
                @if let Some(p) = parent { " (child of " a href=(instance_href(&p.instance_id)) { code { (p.instance_id) } } ")" }
            },
            short(input),
        ),
        EventKind::ExecutionCompleted { status, result, failure } => (
            html! { (status.as_str()) @if let Some(f) = failure { ": " (f.error_type) " — " (f.message) } },
            short(result),
        ),
        EventKind::ExecutionTerminated { reason }
        | EventKind::ExecutionSuspended { reason }
        | EventKind::ExecutionResumed { reason }
        | EventKind::ExecutionRewound { reason } => (html! { @if let Some(r) = reason { (r) } }, None),
        EventKind::TaskScheduled { id, name, input } => (html! { "#" (id) " " (name) }, short(input)),
        EventKind::TaskCompleted { task_id, result } => (html! { "#" (task_id) }, short(result)),
        EventKind::TaskFailed { task_id, failure }
        | EventKind::SubOrchestrationFailed { task_id, failure } => {
            (html! { "#" (task_id) " " (failure.error_type) " — " (failure.message) }, None)
        }
        EventKind::SubOrchestrationCreated { id, name, instance_id, input } => (
            html! { "#" (id) " " (name) " → " a href=(instance_href(instance_id)) { code { (instance_id) } } },
            short(input),
        ),
        EventKind::SubOrchestrationCompleted { task_id, result } => (html! { "#" (task_id) }, short(result)),
        EventKind::TimerCreated { id, fire_at } => (html! { "#" (id) " due " (time(*fire_at)) }, None),
        EventKind::TimerFired { timer_id, .. } => (html! { "#" (timer_id) }, None),
        EventKind::EventRaised { name, input, .. } => (html! { (name) }, short(input)),
        EventKind::EventSent { id, instance_id, name, input } => (
            html! { "#" (id) " " (name) " → " a href=(instance_href(instance_id)) { code { (instance_id) } } },
            short(input),
        ),
    }
}

/// The status row and the history as one JSON document (what the API returns, in our shape).
fn raw_json(loaded: &Loaded) -> String {
    let doc = serde_json::json!({ "instance": loaded.state, "history": loaded.history });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_core::TraceContext;

    const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

    fn started(trace: Option<&str>) -> Vec<HistoryEvent> {
        let trace = trace.map(|traceparent| TraceContext {
            traceparent: traceparent.to_owned(),
            parent_span_id: None,
            tracestate: None,
        });
        let kind = EventKind::ExecutionStarted { name: "Orch".into(), input: None, parent: None, trace };
        vec![
            HistoryEvent::new(Timestamp::UNIX_EPOCH, EventKind::OrchestratorStarted),
            HistoryEvent::new(Timestamp::UNIX_EPOCH, kind),
        ]
    }

    fn loaded(history: Vec<HistoryEvent>, template: Option<&str>) -> Loaded {
        let state = InstanceState {
            instance_id: "i".into(),
            name: "Orch".into(),
            execution_id: "e".into(),
            status: RuntimeStatus::Running,
            input: None,
            output: None,
            failure: None,
            custom_status: None,
            created_at: Timestamp::UNIX_EPOCH,
            last_updated_at: Timestamp::UNIX_EPOCH,
            completed_at: None,
            parent_instance_id: None,
            history_len: history.len() as u64,
            stall: None,
        };
        let trace = TraceLink::of(&history, template);
        Loaded { state, history, awaited: None, trace }
    }

    #[test]
    fn the_instance_page_links_its_trace_when_a_trace_viewer_is_configured() {
        let traceparent = format!("00-{TRACE_ID}-b7ad6b7169203331-01");
        let page =
            details(&loaded(started(Some(&traceparent)), Some("http://jaeger:16686/trace/{trace_id}")))
                .into_string();
        assert!(page.contains(&format!(r#"href="http://jaeger:16686/trace/{TRACE_ID}""#)), "{page}");

        // Without a viewer: the id alone, to paste into one.
        let page = details(&loaded(started(Some(&traceparent)), None)).into_string();
        assert!(page.contains(TRACE_ID) && !page.contains("jaeger"), "{page}");

        // Tracing was off when it started (or the traceparent is not W3C): no trace row.
        for history in [started(None), started(Some("garbage"))] {
            let page = details(&loaded(history, Some("http://jaeger/{trace_id}"))).into_string();
            assert!(!page.contains("<dt>Trace</dt>"), "{page}");
        }
    }
}
