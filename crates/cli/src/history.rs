//! An instance's history for people: times, event types, names and the details that matter;
//! the table of `status --history` and the live view of `watch`.

use crate::args::WatchArgs;
use crate::exit;
use crate::instances::get_status;
use crate::output::{Out, note, paint, status_style};
use crate::remote::{Api, text};
use crate::table::{Cell, Column, Table, cut};
use anyhow::Result;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often `watch` asks for the history (the HTTP API has no change notification).
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// `2026-11-26 10:15:03 UTC` (with `zone`) for an RFC 3339 time; other text unchanged.
pub(crate) fn human_time(rfc3339: &str, zone: bool) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => {
            let s = t.strftime("%Y-%m-%d %H:%M:%S").to_string();
            if zone { s + " UTC" } else { s }
        }
        Err(_) => rfc3339.to_owned(),
    }
}

/// An event's time: `10:15:03.125`, with the date in front when it is not `day`.
fn event_time(rfc3339: &str, day: Option<&str>) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        // A timestamp formats in UTC.
        Ok(t) if day.is_some_and(|d| d != t.strftime("%Y-%m-%d").to_string()) => {
            t.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string()
        }
        Ok(t) => t.strftime("%H:%M:%S%.3f").to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

/// The UTC date of an RFC 3339 time.
fn day_of(rfc3339: &str) -> Option<String> {
    rfc3339.parse::<jiff::Timestamp>().ok().map(|t| t.strftime("%Y-%m-%d").to_string())
}

/// `90s`, `2m`, `1h30m`, `250ms`.
pub(crate) fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 || !ms.is_multiple_of(1000) {
        return if ms < 1000 { format!("{ms}ms") } else { format!("{:.1}s", d.as_secs_f64()) };
    }
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, s) => format!("{h}h{m}m{s}s").trim_end_matches("0s").to_owned(),
    }
}

/// One event's columns: type, name, details (what it produced first).
fn describe(e: &Value, day: Option<&str>) -> (String, String, String) {
    let name = e.get("FunctionName").or_else(|| e.get("Name")).map(text).unwrap_or_default();
    let mut details = Vec::new();
    // A failure's result repeats its error message.
    if let Some(result) = e.get("Result").filter(|_| e.get("FailureDetails").is_none()) {
        details.push(format!("result={result}"));
    }
    if let Some(reason) = e.get("Reason") {
        details.push(format!("reason={}", text(reason)));
    } else if let Some(failure) = e.get("FailureDetails") {
        details.push(format!("error={}: {}", text(&failure["ErrorType"]), text(&failure["ErrorMessage"])));
    }
    if let Some(at) = e.get("FireAt") {
        details.push(format!("fires={}", event_time(&text(at), day)));
    }
    if let Some(id) = e.get("InstanceId") {
        details.push(format!("instance={}", text(id)));
    }
    if let Some(input) = e.get("Input") {
        details.push(format!("input={input}"));
    }
    (text(&e["EventType"]), name, details.join(", "))
}

/// Failures in red, termination in yellow.
fn event_style(event_type: &str) -> Option<&'static str> {
    match event_type {
        t if t.ends_with("Failed") => status_style("Failed"),
        "ExecutionTerminated" => status_style("Terminated"),
        _ => None,
    }
}

/// The history as a table (`status --history`).
pub(crate) fn print_table(out: &Out, events: &[Value]) -> Result<()> {
    let day = events.first().and_then(|e| day_of(&text(&e["Timestamp"])));
    let mut table = Table::new(vec![
        Column::fixed("TIME (UTC)"),
        Column::fixed("EVENT"),
        Column::flexible("NAME", 10),
        Column::flexible("DETAILS", 12).optional(1),
    ]);
    for e in events {
        let (kind, name, details) = describe(e, day.as_deref());
        let style = event_style(&kind);
        table.row(vec![
            event_time(&text(&e["Timestamp"]), day.as_deref()).into(),
            Cell { text: kind, style },
            name.into(),
            details.into(),
        ]);
    }
    out.line("")?;
    out.table(&table)
}

/// Identity of an event across polls: its fields and how many identical ones came before it
/// (completed activities replace their `TaskScheduled`, so positions shift).
fn keys(events: &[Value]) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    events
        .iter()
        .map(|e| {
            let base = ["EventType", "Timestamp", "Name", "FunctionName", "ScheduledTime", "FireAt"]
                .iter()
                .map(|k| e.get(*k).map(text).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("|");
            let n = seen.entry(base.clone()).or_default();
            *n += 1;
            format!("{base}#{n}")
        })
        .collect()
}

pub(crate) async fn watch(args: WatchArgs) -> Result<u8> {
    let api = Api::new(&args.remote)?;
    let out = Out::new(&args.output, args.wide);
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut printed: std::collections::HashSet<String> = Default::default();
    let mut day = None;
    let mut first = true;
    loop {
        let status = get_status(&api, &args.id, true).await?;
        let runtime_status = text(&status["runtimeStatus"]);
        let events = status["historyEvents"].as_array().cloned().unwrap_or_default();
        if first {
            day = day_of(&text(&status["createdTime"]));
            if out.text() {
                note(&format!(
                    "watching {} ({}); Ctrl-C stops watching, not the instance",
                    args.id,
                    text(&status["name"])
                ));
                out.line(&watch_line(&out, "TIME (UTC)", "EVENT", "NAME", "DETAILS", None))?;
            }
            first = false;
        }
        for (event, key) in events.iter().zip(keys(&events)) {
            if !printed.insert(key) {
                continue;
            }
            if out.text() {
                let (kind, name, details) = describe(event, day.as_deref());
                let time = event_time(&text(&event["Timestamp"]), day.as_deref());
                out.line(&watch_line(&out, &time, &kind, &name, &details, event_style(&kind)))?;
            } else {
                // One event per line in both JSON formats: a stream has no end to wait for.
                out.json_line(event)?;
            }
        }
        if let Some(code) = exit::for_status(&runtime_status) {
            if out.text() {
                let output = status["output"].to_string();
                out.line(&format!("{} output={}", out.status(&runtime_status), cut_to(&out, &output, 20)))?;
            }
            return Ok(code);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            note(&format!(
                "{} did not finish within --timeout {} (it is {runtime_status})",
                args.id,
                human_duration(args.timeout.unwrap_or_default())
            ));
            return Ok(exit::TIMED_OUT);
        }
        let mut pause = WATCH_INTERVAL;
        if let Some(d) = deadline {
            pause = pause.min(d.saturating_duration_since(Instant::now()));
        }
        tokio::time::sleep(pause).await;
    }
}

/// A row of the live view: fixed column widths (a row is printed before the next ones are
/// known), the details cut to the width.
fn watch_line(out: &Out, time: &str, kind: &str, name: &str, details: &str, style: Option<&str>) -> String {
    let name = if out.width.is_some() { cut(name, NAME_WIDTH) } else { name.to_owned() };
    let pad = |text: &str, width: usize| " ".repeat(width.saturating_sub(text.chars().count()));
    let mut line =
        format!("{time}{}  {}{}  {name}", pad(time, 12), paint(out.color, style, kind), pad(kind, 19));
    if details.is_empty() {
        return line;
    }
    line.push_str(&pad(&name, NAME_WIDTH));
    line.push_str("  ");
    let used = [(time, 12), (kind, 19), (name.as_str(), NAME_WIDTH)]
        .iter()
        .map(|(t, w)| t.chars().count().max(*w) + 2)
        .sum::<usize>();
    match out.width {
        Some(w) => line.push_str(&cut(details, w.saturating_sub(used).max(8))),
        None => line.push_str(details),
    }
    line
}

/// Width of the NAME column of the live view.
const NAME_WIDTH: usize = 24;

fn cut_to(out: &Out, text: &str, reserved: usize) -> String {
    match out.width {
        Some(w) => cut(text, w.saturating_sub(reserved).max(10)),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_and_durations_for_people() {
        assert_eq!(human_time("2026-11-26T10:15:03.123456Z", true), "2026-11-26 10:15:03 UTC");
        assert_eq!(human_time("not a time", true), "not a time");
        let day = day_of("2026-11-26T00:00:00Z");
        assert_eq!(event_time("2026-11-26T10:15:03.123456Z", day.as_deref()), "10:15:03.123");
        assert_eq!(event_time("2026-11-27T10:15:03.123456Z", day.as_deref()), "2026-11-27 10:15:03.123");
        assert_eq!(human_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(human_duration(Duration::from_secs(120)), "2m");
        assert_eq!(human_duration(Duration::from_secs(30)), "30s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn identical_events_keep_distinct_keys_when_earlier_ones_vanish() {
        let raised = json!({"EventType": "EventRaised", "Name": "A", "Timestamp": "t"});
        let scheduled = json!({"EventType": "TaskScheduled", "Name": "S", "Timestamp": "t0"});
        let first = keys(&[scheduled, raised.clone()]);
        let later = keys(&[raised.clone(), raised]);
        assert_eq!(first[1], later[0], "the first EventRaised keeps its key");
        assert_ne!(later[0], later[1]);
    }

    #[test]
    fn details_say_what_matters() {
        let e = json!({"EventType": "TaskCompleted", "FunctionName": "E4_SendSmsChallenge",
            "Input": "+14255550123", "Result": {"mac": "x"}, "Timestamp": "t"});
        let (kind, name, details) = describe(&e, None);
        assert_eq!((kind.as_str(), name.as_str()), ("TaskCompleted", "E4_SendSmsChallenge"));
        assert_eq!(details, "result={\"mac\":\"x\"}, input=\"+14255550123\"");
    }
}
