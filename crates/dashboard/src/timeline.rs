//! The timeline of an execution, drawn on the server as SVG: activities from scheduled to
//! completed, timers from created to fired (or cancelled), sub-orchestrations from created to
//! completed (linked to the child), and events as marks.

use crate::format;
use crate::pages::instance_href;
use durable_core::{EventKind, HistoryEvent, RuntimeStatus, TaskId, Timestamp};
use durable_store::InstanceState;
use maud::{Markup, html};
use std::collections::HashMap;

/// Rows drawn at most; the history table has everything.
const MAX_ROWS: usize = 300;
const WIDTH: f64 = 960.0;
const LABEL_WIDTH: f64 = 250.0;
const ROW: f64 = 24.0;
const TOP: f64 = 28.0;

/// What a bar stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Activity,
    Timer,
    SubOrchestration,
}

/// How a bar ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Failed,
    Fired,
    /// A timer that will not fire: cancelled by the code, or left when the instance ended.
    Cancelled,
    /// Still running or due: the bar reaches the due time or now.
    Open,
}

/// One bar.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bar {
    pub kind: Kind,
    pub id: TaskId,
    pub label: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub outcome: Outcome,
    /// The child instance of a sub-orchestration.
    pub link: Option<String>,
}

/// One mark (a point in time).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mark {
    pub label: String,
    pub at: Timestamp,
    pub class: &'static str,
}

/// The bars and marks of a history.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Timeline {
    pub bars: Vec<Bar>,
    pub marks: Vec<Mark>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

impl Timeline {
    /// Builds the timeline of `history`; `state` tells whether the instance has ended and
    /// `now` where open bars stop.
    pub(crate) fn build(history: &[HistoryEvent], state: &InstanceState, now: Timestamp) -> Timeline {
        let finished = state.status.is_terminal() || state.status == RuntimeStatus::ContinuedAsNew;
        let last_turn = history
            .iter()
            .rev()
            .find(|e| matches!(e.kind, EventKind::OrchestratorStarted))
            .map(|e| e.timestamp);
        let end_of_run = if finished {
            state.completed_at.or(history.last().map(|e| e.timestamp)).unwrap_or(now)
        } else {
            now
        };
        let mut bars: Vec<Bar> = Vec::new();
        let mut open: HashMap<TaskId, usize> = HashMap::new();
        let mut marks = Vec::new();
        for event in history {
            let at = event.timestamp;
            let mut close = |id: TaskId, outcome: Outcome, end: Timestamp, bars: &mut Vec<Bar>| {
                if let Some(i) = open.remove(&id) {
                    bars[i].outcome = outcome;
                    bars[i].end = end.max(bars[i].start);
                }
            };
            match &event.kind {
                EventKind::TaskScheduled { id, name, .. } => {
                    open.insert(*id, bars.len());
                    bars.push(Bar::open(Kind::Activity, *id, name.clone(), at, None));
                }
                EventKind::TimerCreated { id, fire_at } => {
                    open.insert(*id, bars.len());
                    let mut bar = Bar::open(Kind::Timer, *id, format!("timer #{id}"), at, None);
                    bar.end = *fire_at;
                    bars.push(bar);
                }
                EventKind::SubOrchestrationCreated { id, name, instance_id, .. } => {
                    open.insert(*id, bars.len());
                    bars.push(Bar::open(
                        Kind::SubOrchestration,
                        *id,
                        name.clone(),
                        at,
                        Some(instance_id.clone()),
                    ));
                }
                EventKind::TaskCompleted { task_id, .. }
                | EventKind::SubOrchestrationCompleted { task_id, .. } => {
                    close(*task_id, Outcome::Completed, at, &mut bars);
                }
                EventKind::TaskFailed { task_id, .. } | EventKind::SubOrchestrationFailed { task_id, .. } => {
                    close(*task_id, Outcome::Failed, at, &mut bars);
                }
                EventKind::TimerFired { timer_id, fire_at } => {
                    close(*timer_id, Outcome::Fired, *fire_at, &mut bars);
                }
                EventKind::EventRaised { name, .. } => {
                    marks.push(Mark { label: format!("event {name}"), at, class: "event" });
                }
                EventKind::EventSent { name, instance_id, .. } => {
                    marks.push(Mark { label: format!("sent {name} → {instance_id}"), at, class: "sent" });
                }
                EventKind::ExecutionSuspended { .. } => {
                    marks.push(Mark { label: "suspended".into(), at, class: "lifecycle" });
                }
                EventKind::ExecutionResumed { .. } => {
                    marks.push(Mark { label: "resumed".into(), at, class: "lifecycle" });
                }
                EventKind::ExecutionRewound { .. } => {
                    marks.push(Mark { label: "rewound".into(), at, class: "lifecycle" });
                }
                EventKind::ExecutionTerminated { .. } => {
                    marks.push(Mark { label: "terminated".into(), at, class: "lifecycle" });
                }
                EventKind::ExecutionCompleted { status, .. } => {
                    marks.push(Mark { label: status.as_str().to_lowercase(), at, class: "lifecycle" });
                }
                EventKind::OrchestratorStarted | EventKind::ExecutionStarted { .. } => {}
            }
        }
        // What is still open: activities and sub-orchestrations run until now (or stopped
        // when the instance ended); timers are due later, or will never fire.
        for i in open.into_values() {
            let bar = &mut bars[i];
            match bar.kind {
                Kind::Timer if finished => {
                    bar.outcome = Outcome::Cancelled;
                    bar.end = end_of_run.min(bar.end).max(bar.start);
                }
                Kind::Timer if bar.end > now || last_turn.is_none_or(|t| t <= bar.start) => {}
                Kind::Timer => {
                    // Due and not fired, with a turn since: cancelled, or firing right now.
                    bar.end = bar.end.max(bar.start);
                }
                _ => bar.end = end_of_run.max(bar.start),
            }
        }
        let start = history.first().map(|e| e.timestamp);
        let end = bars
            .iter()
            .map(|b| b.end)
            .chain(marks.iter().map(|m| m.at))
            .chain(start)
            .chain([end_of_run])
            .max();
        Timeline { bars, marks, start, end }
    }

    /// The SVG, with a title and a summary for screen readers (the history table below it is
    /// the accessible alternative).
    pub(crate) fn render(&self) -> Markup {
        let (Some(t0), Some(t1)) = (self.start, self.end) else {
            return html! { p.empty { "Nothing has happened yet." } };
        };
        let span_us = (t1.as_microsecond() - t0.as_microsecond()).max(1) as f64;
        let plot = WIDTH - LABEL_WIDTH - 16.0;
        let x =
            |t: Timestamp| LABEL_WIDTH + (t.as_microsecond() - t0.as_microsecond()) as f64 / span_us * plot;
        let rows = self.bars.len() + self.marks.len();
        let shown = rows.min(MAX_ROWS);
        let height = TOP + shown as f64 * ROW + 8.0;
        let summary = format!(
            "{} activities, {} timers, {} sub-orchestrations and {} marks over {}",
            self.bars.iter().filter(|b| b.kind == Kind::Activity).count(),
            self.bars.iter().filter(|b| b.kind == Kind::Timer).count(),
            self.bars.iter().filter(|b| b.kind == Kind::SubOrchestration).count(),
            self.marks.len(),
            format::duration(t0, t1)
        );
        let ticks: Vec<(f64, String)> = (0..=4)
            .map(|i| {
                let t =
                    Timestamp::from_microsecond(t0.as_microsecond() + (span_us * f64::from(i) / 4.0) as i64)
                        .unwrap_or(t0);
                (x(t), format!("+{}", format::duration(t0, t)))
            })
            .collect();
        // Bars and marks in time order, so the picture reads top-down like the history.
        let mut rows_in_order: Vec<(Timestamp, Result<&Bar, &Mark>)> = self
            .bars
            .iter()
            .map(|b| (b.start, Ok(b)))
            .chain(self.marks.iter().map(|m| (m.at, Err(m))))
            .collect();
        rows_in_order.sort_by_key(|(t, _)| *t);
        html! {
            figure.timeline {
                svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {height:.0}"))
                    role="img" aria-labelledby="tl-title tl-desc" data-timeline="true" {
                    title #tl-title { "Timeline" }
                    desc #tl-desc { (summary) }
                    @for (i, (tx, label)) in ticks.iter().enumerate() {
                        line.tick x1=(fmt(*tx)) x2=(fmt(*tx)) y1="18" y2=(fmt(height - 4.0)) {}
                        text.ticklabel x=(fmt(*tx)) y="12"
                            text-anchor=(match i { 0 => "start", 4 => "end", _ => "middle" }) { (label) }
                    }
                    @for (row, (_, item)) in rows_in_order.iter().take(shown).enumerate() {
                        @let y = TOP + row as f64 * ROW;
                        @match item {
                            Ok(bar) => (bar_svg(bar, y, x(bar.start), x(bar.end))),
                            Err(mark) => (mark_svg(mark, y, x(mark.at))),
                        }
                    }
                }
                figcaption {
                    (summary) "."
                    @if rows > shown { " Only the first " (shown) " rows are drawn; the table below has everything." }
                }
            }
        }
    }
}

impl Bar {
    fn open(kind: Kind, id: TaskId, label: String, start: Timestamp, link: Option<String>) -> Bar {
        Bar { kind, id, label, start, end: start, outcome: Outcome::Open, link }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

fn bar_svg(bar: &Bar, y: f64, x0: f64, x1: f64) -> Markup {
    let kind = match bar.kind {
        Kind::Activity => "activity",
        Kind::Timer => "timer",
        Kind::SubOrchestration => "sub",
    };
    let outcome = match bar.outcome {
        Outcome::Completed => "completed",
        Outcome::Failed => "failed",
        Outcome::Fired => "fired",
        Outcome::Cancelled => "cancelled",
        Outcome::Open => "open",
    };
    let width = (x1 - x0).max(3.0);
    let tip = format!(
        "{} #{} {}: {} → {} ({}), {}",
        kind,
        bar.id,
        bar.label,
        format::time(bar.start),
        format::time(bar.end),
        format::duration(bar.start, bar.end),
        outcome
    );
    let body = html! {
        text.rowlabel x="6" y=(fmt(y + 15.0)) { (truncate(&format!("{} {}", kind_label(bar.kind), bar.label), 34)) }
        rect class=(format!("bar {kind} {outcome}")) x=(fmt(x0)) y=(fmt(y + 4.0)) width=(fmt(width)) height="14" rx="3"
            data-kind=(kind) data-outcome=(outcome) {
            title { (tip) }
        }
    };
    match &bar.link {
        Some(child) => html! { a href=(instance_href(child)) { (body) } },
        None => body,
    }
}

fn mark_svg(mark: &Mark, y: f64, x: f64) -> Markup {
    let cy = y + 11.0;
    let points = format!(
        "{},{} {},{} {},{} {},{}",
        fmt(x),
        fmt(cy - 7.0),
        fmt(x + 7.0),
        fmt(cy),
        fmt(x),
        fmt(cy + 7.0),
        fmt(x - 7.0),
        fmt(cy)
    );
    html! {
        text.rowlabel x="6" y=(fmt(y + 15.0)) { (truncate(&mark.label, 34)) }
        polygon class=(format!("mark {}", mark.class)) points=(points) data-kind="mark" {
            title { (mark.label) " at " (format::time(mark.at)) }
        }
    }
}

fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Activity => "activity",
        Kind::Timer => "",
        Kind::SubOrchestration => "sub-orchestration",
    }
}

fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_core::{FailureDetails, Payload};

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_770_000_000_000 + ms).unwrap()
    }

    fn ev(ms: i64, kind: EventKind) -> HistoryEvent {
        HistoryEvent::new(at(ms), kind)
    }

    fn state(status: RuntimeStatus, completed: Option<i64>) -> InstanceState {
        InstanceState {
            instance_id: "i".into(),
            name: "Orch".into(),
            execution_id: "e".into(),
            status,
            input: None,
            output: None,
            failure: None,
            custom_status: None,
            created_at: at(0),
            last_updated_at: at(0),
            completed_at: completed.map(at),
            parent_instance_id: None,
            history_len: 0,
            stall: None,
        }
    }

    #[test]
    fn bars_span_from_scheduling_to_completion_and_events_are_marks() {
        let history = vec![
            ev(0, EventKind::OrchestratorStarted),
            ev(
                0,
                EventKind::ExecutionStarted { name: "Orch".into(), input: None, parent: None, trace: None },
            ),
            ev(0, EventKind::TaskScheduled { id: 0, name: "Send".into(), input: None }),
            ev(0, EventKind::TimerCreated { id: 1, fire_at: at(90_000) }),
            ev(
                0,
                EventKind::SubOrchestrationCreated {
                    id: 2,
                    name: "Child".into(),
                    instance_id: "i:2".into(),
                    input: None,
                },
            ),
            ev(200, EventKind::OrchestratorStarted),
            ev(150, EventKind::TaskCompleted { task_id: 0, result: Some(Payload::null()) }),
            ev(300, EventKind::OrchestratorStarted),
            ev(250, EventKind::SubOrchestrationFailed { task_id: 2, failure: FailureDetails::new("E", "x") }),
            ev(400, EventKind::OrchestratorStarted),
            ev(380, EventKind::EventRaised { name: "Answer".into(), input: None, id: None }),
            ev(
                400,
                EventKind::ExecutionCompleted {
                    status: RuntimeStatus::Completed,
                    result: None,
                    failure: None,
                },
            ),
        ];
        let t = Timeline::build(&history, &state(RuntimeStatus::Completed, Some(400)), at(10_000));
        let find = |id| t.bars.iter().find(|b| b.id == id).unwrap();
        assert_eq!(
            (find(0).kind, find(0).start, find(0).end, find(0).outcome),
            (Kind::Activity, at(0), at(150), Outcome::Completed)
        );
        assert_eq!(
            (find(1).kind, find(1).end, find(1).outcome),
            (Kind::Timer, at(400), Outcome::Cancelled),
            "cancelled when the instance ended"
        );
        assert_eq!((find(2).outcome, find(2).link.as_deref()), (Outcome::Failed, Some("i:2")));
        assert_eq!(
            t.marks.iter().map(|m| m.label.as_str()).collect::<Vec<_>>(),
            ["event Answer", "completed"]
        );
        assert_eq!((t.start, t.end), (Some(at(0)), Some(at(400))));
        let svg = t.render().into_string();
        assert!(
            svg.contains("data-outcome=\"completed\"") && svg.contains("href=\"/instances/i:2\""),
            "{svg}"
        );
        assert!(svg.contains("<title>event Answer at "), "{svg}");
    }

    #[test]
    fn a_running_instance_has_open_bars_to_now_and_timers_to_their_due_time() {
        let history = vec![
            ev(0, EventKind::OrchestratorStarted),
            ev(
                0,
                EventKind::ExecutionStarted { name: "Orch".into(), input: None, parent: None, trace: None },
            ),
            ev(0, EventKind::TaskScheduled { id: 0, name: "Slow".into(), input: None }),
            ev(0, EventKind::TimerCreated { id: 1, fire_at: at(90_000) }),
            ev(50, EventKind::OrchestratorStarted),
            ev(40, EventKind::TimerFired { timer_id: 7, fire_at: at(40) }),
        ];
        let t = Timeline::build(&history, &state(RuntimeStatus::Running, None), at(1_000));
        assert_eq!((t.bars[0].end, t.bars[0].outcome), (at(1_000), Outcome::Open));
        assert_eq!((t.bars[1].end, t.bars[1].outcome), (at(90_000), Outcome::Open));
        assert_eq!(t.end, Some(at(90_000)), "the axis reaches the due time");
        assert!(
            Timeline::build(&[], &state(RuntimeStatus::Pending, None), at(0))
                .render()
                .into_string()
                .contains("Nothing")
        );
    }
}
