//! How values read on a page: times, durations, JSON.

use durable_core::{Payload, Timestamp};

/// A time in UTC with milliseconds, e.g. `2026-03-01 12:00:05.123Z`.
pub(crate) fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

/// The machine-readable form for `<time datetime=…>`.
pub(crate) fn iso(t: Timestamp) -> String {
    t.to_string()
}

/// A duration for people: `850 ms`, `12.4 s`, `3 min 20 s`, `5 h 2 min`, `3 d 4 h`.
pub(crate) fn duration(from: Timestamp, to: Timestamp) -> String {
    let us = to.as_microsecond().saturating_sub(from.as_microsecond()).max(0);
    let ms = us / 1000;
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {} s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{} h {} min", s / 3600, s / 60 % 60),
        _ => format!("{} d {} h", s / 86_400, s / 3600 % 24),
    }
}

/// A payload as indented JSON.
pub(crate) fn json(p: &Payload) -> String {
    serde_json::from_str::<serde_json::Value>(p.as_str())
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| p.as_str().to_owned())
}

/// A payload on one line, cut to about `max` characters (for tables).
pub(crate) fn json_short(p: &Payload, max: usize) -> String {
    let text = p.as_str();
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Parses a time filter typed or picked in a form: RFC 3339 (`2026-03-01T12:00:00Z`), or a
/// date and time without zone (`2026-03-01T12:00`, `2026-03-01 12:00:30`, as
/// `<input type=datetime-local>` sends it) or a date (`2026-03-01`), both read as UTC.
pub(crate) fn parse_time(input: &str) -> Result<Option<Timestamp>, String> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(Some(t));
    }
    let civil = s
        .replace(' ', "T")
        .parse::<jiff::civil::DateTime>()
        .or_else(|_| s.parse::<jiff::civil::Date>().map(|d| d.to_datetime(jiff::civil::Time::midnight())));
    match civil.and_then(|dt| dt.to_zoned_datetime(jiff::tz::TimeZone::UTC)) {
        Ok(z) => Ok(Some(z.timestamp())),
        Err(_) => Err(format!(
            "'{}' is not a time; use e.g. 2026-03-01, 2026-03-01T12:00 (UTC) or 2026-03-01T12:00:00Z",
            s.escape_debug()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_well() {
        let t: Timestamp = "2026-03-01T12:00:05.123456Z".parse().unwrap();
        assert_eq!(time(t), "2026-03-01 12:00:05.123Z");
        let later = |us: i64| Timestamp::from_microsecond(t.as_microsecond() + us).unwrap();
        assert_eq!(duration(t, later(850_000)), "850 ms");
        assert_eq!(duration(t, later(12_400_000)), "12.4 s");
        assert_eq!(duration(t, later(200_000_000)), "3 min 20 s");
        assert_eq!(duration(t, later(18_120_000_000)), "5 h 2 min");
        assert_eq!(duration(t, later(273_600_000_000)), "3 d 4 h");
        assert_eq!(duration(later(5), t), "0 ms", "never negative");
    }

    #[test]
    fn time_filters_accept_what_forms_send() {
        let at = |s: &str| parse_time(s).unwrap().unwrap().to_string();
        assert_eq!(at("2026-03-01T12:00:00Z"), "2026-03-01T12:00:00Z");
        assert_eq!(at("2026-03-01T12:00"), "2026-03-01T12:00:00Z");
        assert_eq!(at("2026-03-01 12:00:30"), "2026-03-01T12:00:30Z");
        assert_eq!(at("2026-03-01"), "2026-03-01T00:00:00Z");
        assert_eq!(parse_time("  ").unwrap(), None);
        assert!(parse_time("yesterday").unwrap_err().contains("not a time"));
    }

    #[test]
    fn json_is_indented_or_cut() {
        let p = Payload::from_json(r#"{"a":[1,2]}"#).unwrap();
        assert_eq!(json(&p), "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
        assert_eq!(json_short(&p, 4), "{\"a\"…");
        assert_eq!(json_short(&p, 40), r#"{"a":[1,2]}"#);
    }
}
