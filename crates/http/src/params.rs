//! Query-string parsing with Durable Functions' rules: names are case-insensitive, values may
//! repeat, booleans parse like .NET's `bool.TryParse`, times like `DateTime.TryParse` (ISO 8601).

use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use durable_core::{RuntimeStatus, Timestamp};
use std::convert::Infallible;
use std::time::Duration;

/// The decoded query parameters of a request.
#[derive(Clone, Debug, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn parse(query: Option<&str>) -> Self {
        let pairs = query
            .map(|q| {
                form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
            })
            .unwrap_or_default();
        Params { pairs }
    }

    /// Every value of `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The first non-empty value of `name`.
    pub(crate) fn get<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.all(name).find(|v| !v.is_empty())
    }

    /// A boolean: `true`/`false` in any case; anything else (or absence) gives `default`, as
    /// Durable Functions does.
    pub(crate) fn flag(&self, name: &str, default: bool) -> bool {
        match self.get(name).map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            _ => default,
        }
    }

    /// A time filter; unparsable values are a 400 rather than silently ignored, because a
    /// dropped filter would list (or purge!) far more than asked.
    pub(crate) fn time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        self.get(name).map(|v| parse_time(v).ok_or_else(|| bad_time(name, v))).transpose()
    }

    /// Runtime statuses from comma-separated and/or repeated `runtimeStatus` values. Returns
    /// `None` when only statuses we never produce (`Canceled`) were asked for: nothing matches.
    pub(crate) fn statuses(&self) -> Result<Option<Vec<RuntimeStatus>>, ApiError> {
        let mut statuses = Vec::new();
        let mut asked = false;
        for name in self.all("runtimeStatus").flat_map(|v| v.split(',')).map(str::trim) {
            if name.is_empty() {
                continue;
            }
            asked = true;
            // Durable Functions has a Canceled status that is never produced; clients such as
            // dashboards still send it, so accept it as matching nothing.
            if name.eq_ignore_ascii_case("Canceled") {
                continue;
            }
            let status = RuntimeStatus::parse(name).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown runtimeStatus '{}'; use one or more of {}, separated by commas",
                    name.escape_debug(),
                    RuntimeStatus::ALL.map(RuntimeStatus::as_str).join(", ")
                ))
            })?;
            if !statuses.contains(&status) {
                statuses.push(status);
            }
        }
        Ok(if asked && statuses.is_empty() { None } else { Some(statuses) })
    }

    /// A duration given in (possibly fractional) seconds.
    pub(crate) fn seconds(&self, name: &str) -> Result<Option<Duration>, ApiError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        v.trim().parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok()).map(Some).ok_or_else(
            || {
                ApiError::bad_request(format!(
                    "{name} must be a non-negative number of seconds, e.g. {name}=10 or {name}=0.5"
                ))
            },
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Params::parse(parts.uri.query()))
    }
}

fn bad_time(name: &str, value: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{name} '{}' is not a date-time; use ISO 8601, e.g. {name}=2026-01-31T12:00:00Z",
        value.escape_debug()
    ))
}

/// Parses an ISO 8601 date-time. Without an offset the time is taken as UTC, and a bare date
/// means its midnight UTC (what Durable Functions does with `DateTime.TryParse` on a UTC host).
pub(crate) fn parse_time(value: &str) -> Option<Timestamp> {
    let value = value.trim();
    if let Ok(ts) = value.parse::<Timestamp>() {
        return Some(ts);
    }
    if let Ok(dt) = value.parse::<jiff::civil::DateTime>() {
        return jiff::tz::TimeZone::UTC.to_timestamp(dt).ok();
    }
    if let Ok(d) = value.parse::<jiff::civil::Date>() {
        return jiff::tz::TimeZone::UTC.to_timestamp(d.to_datetime(jiff::civil::Time::midnight())).ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_values_decoded() {
        let p = Params::parse(Some("ShowInput=FALSE&reason=a+b%20c&code=&Code=k"));
        assert!(!p.flag("showInput", true));
        assert_eq!(p.get("REASON"), Some("a b c"));
        assert_eq!(p.get("code"), Some("k"), "empty values are skipped");
    }

    #[test]
    fn unparsable_flags_fall_back_to_the_default() {
        let p = Params::parse(Some("showHistory=yes&showInput=1"));
        assert!(!p.flag("showHistory", false));
        assert!(p.flag("showInput", true));
        assert!(p.flag("missing", true));
        assert!(Params::parse(Some("a=True")).flag("a", false));
    }

    #[test]
    fn statuses_are_comma_separated_and_repeatable() {
        let p =
            Params::parse(Some("runtimeStatus=Running,completed&runtimeStatus=Failed&runtimeStatus=Running"));
        assert_eq!(
            p.statuses().unwrap(),
            Some(vec![RuntimeStatus::Running, RuntimeStatus::Completed, RuntimeStatus::Failed])
        );
        assert_eq!(Params::parse(None).statuses().unwrap(), Some(vec![]));
        assert_eq!(Params::parse(Some("runtimeStatus=Canceled")).statuses().unwrap(), None);
        let err = Params::parse(Some("runtimeStatus=Runing")).statuses().unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(err.message.contains("Pending"), "{}", err.message);
    }

    #[test]
    fn times_accept_iso_8601_variants() {
        let want: Timestamp = "2026-01-31T12:00:00Z".parse().unwrap();
        assert_eq!(parse_time("2026-01-31T12:00:00Z"), Some(want));
        assert_eq!(parse_time("2026-01-31T13:00:00+01:00"), Some(want));
        assert_eq!(parse_time("2026-01-31T12:00:00"), Some(want));
        assert_eq!(parse_time("2026-01-31"), "2026-01-31T00:00:00Z".parse().ok());
        assert_eq!(parse_time("yesterday"), None);
        assert!(Params::parse(Some("createdTimeFrom=nope")).time("createdTimeFrom").is_err());
        assert_eq!(Params::parse(None).time("createdTimeFrom").unwrap(), None);
    }

    #[test]
    fn seconds_accept_fractions_and_reject_garbage() {
        let p = Params::parse(Some("timeout=1.5&pollingInterval=-1&x=abc"));
        assert_eq!(p.seconds("timeout").unwrap(), Some(Duration::from_millis(1500)));
        assert!(p.seconds("pollingInterval").is_err());
        assert!(p.seconds("x").is_err());
        assert_eq!(p.seconds("missing").unwrap(), None);
    }
}
