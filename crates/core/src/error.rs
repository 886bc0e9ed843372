//! [`Error`]: what durable tasks fail with and what orchestrators and activities return.

use crate::history::FailureDetails;
use std::fmt;

/// Stable error codes users can search for. Each appears in messages as `[DTxxxx]` (built by
/// [`coded`](codes::coded)) and has a page in `docs/errors/` saying what it means and what to do.
pub mod codes {
    use std::fmt;

    /// Every code, in order (each has a page `docs/errors/<code>.md`).
    pub const ALL: [&str; 9] = [
        NONDETERMINISM,
        UNKNOWN_ORCHESTRATOR,
        UNKNOWN_ACTIVITY,
        BAD_INPUT,
        ORCHESTRATOR_PANIC,
        NON_DURABLE_AWAIT,
        ACTIVITY_PANIC,
        PAYLOAD_TOO_LARGE,
        HISTORY_LIMIT,
    ];

    /// A message tagged with `code`: `[DT0001] nondeterminism: …`. Every coded message is built
    /// here, so the tag's form is the same everywhere.
    pub fn coded(code: &str, message: impl fmt::Display) -> String {
        format!("[{code}] {message}")
    }

    /// Replayed code issued an action that differs from the recorded history.
    pub const NONDETERMINISM: &str = "DT0001";
    /// No orchestrator is registered under the instance's name.
    pub const UNKNOWN_ORCHESTRATOR: &str = "DT0002";
    /// No activity is registered under the scheduled name.
    pub const UNKNOWN_ACTIVITY: &str = "DT0003";
    /// An input could not be decoded into the function's parameter type.
    pub const BAD_INPUT: &str = "DT0004";
    /// Orchestrator code panicked.
    pub const ORCHESTRATOR_PANIC: &str = "DT0005";
    /// The orchestrator awaits something that is not a durable task, so it could never resume.
    pub const NON_DURABLE_AWAIT: &str = "DT0006";
    /// Activity code panicked.
    pub const ACTIVITY_PANIC: &str = "DT0007";
    /// A payload is larger than the configured limit.
    pub const PAYLOAD_TOO_LARGE: &str = "DT0008";
    /// The history of one execution grew past the configured limit.
    pub const HISTORY_LIMIT: &str = "DT0009";
}

/// The message of a panic payload (`panic!` with a literal or a formatted string), for the
/// `[DT0005]` / `[DT0007]` failures.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".into())
}

/// The error of a durable task (activity, sub-orchestration, event wait) and of orchestrator and
/// activity functions.
///
/// Build your own with [`Error::msg`] (or `"text".into()`), or [`Error::permanent`] for a failure
/// that retry policies must not retry.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// An activity or sub-orchestration failed; the details say why.
    Failed(FailureDetails),
    /// `wait_for_external_event_with_timeout` did not receive the event in time.
    Timeout {
        /// The event name.
        event: String,
    },
    /// A result or event could not be decoded into the requested type.
    Decode {
        /// What was being decoded.
        what: String,
        /// The decoder's message.
        message: String,
    },
}

/// A setting outside what it allows: which one (`setting`, as named in the options struct or
/// the config file) and a message that says what it must be. Every `validate()` of an options
/// struct returns it, so callers can tell settings apart without parsing text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSetting {
    /// The setting, e.g. `"max_number_of_attempts"` or `"verification.limits.sms_global"`.
    pub setting: String,
    /// What is wrong and what it must be, naming the setting.
    pub message: String,
}

impl InvalidSetting {
    /// `setting` is wrong; `message` says how (and names it).
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidSetting { setting: setting.into(), message: message.into() }
    }
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvalidSetting {}

impl Error {
    /// A failure with a message, e.g. `Error::msg("phone number is required")`.
    pub fn msg(message: impl fmt::Display) -> Self {
        Error::Failed(FailureDetails::new("Error", message.to_string()))
    }

    /// A failure retry policies will not retry.
    pub fn permanent(message: impl fmt::Display) -> Self {
        Error::Failed(FailureDetails::new("Error", message.to_string()).non_retriable())
    }

    /// The failure details recorded in history for this error.
    pub fn to_failure(&self) -> FailureDetails {
        match self {
            Error::Failed(f) => f.clone(),
            Error::Timeout { .. } => FailureDetails::new("TimeoutError", self.to_string()),
            Error::Decode { .. } => FailureDetails::new("DecodeError", self.to_string()),
        }
    }

    /// The failure details, when this is a task failure.
    pub fn failure(&self) -> Option<&FailureDetails> {
        match self {
            Error::Failed(f) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Failed(d) => f.write_str(&d.message),
            Error::Timeout { event } => write!(f, "event '{event}' was not received in time"),
            Error::Decode { what, message } => write!(f, "cannot decode {what}: {message}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<FailureDetails> for Error {
    fn from(f: FailureDetails) -> Self {
        Error::Failed(f)
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error::msg(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error::msg(s)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Decode { what: "JSON".into(), message: e.to_string() }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Failed(FailureDetails::new("IoError", e.to_string()))
    }
}

impl From<Error> for FailureDetails {
    fn from(e: Error) -> Self {
        match e {
            Error::Failed(f) => f,
            other => other.to_failure(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::codes;

    #[test]
    fn every_code_has_a_page_and_a_tag() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/errors");
        for code in codes::ALL {
            let page = std::fs::read_to_string(dir.join(format!("{code}.md")))
                .unwrap_or_else(|e| panic!("no page for {code}: {e}"));
            assert!(page.starts_with(&format!("# {code}")), "{code}");
        }
        assert_eq!(codes::coded(codes::HISTORY_LIMIT, "too long"), "[DT0009] too long");
    }
}
