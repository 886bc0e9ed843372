//! Column encodings shared by the stores: status numbers (part of every store's schema: never
//! renumber), and payloads, failures and events as JSON text.

use crate::{Error, Result};
use durable_core::{FailureDetails, Payload, RuntimeStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The column value of a status.
pub fn status_code(s: RuntimeStatus) -> i16 {
    match s {
        RuntimeStatus::Pending => 0,
        RuntimeStatus::Running => 1,
        RuntimeStatus::Completed => 2,
        RuntimeStatus::Failed => 3,
        RuntimeStatus::Terminated => 4,
        RuntimeStatus::Suspended => 5,
        RuntimeStatus::ContinuedAsNew => 6,
    }
}

/// The status of a column value.
pub fn status_from(code: i64) -> Result<RuntimeStatus> {
    RuntimeStatus::ALL
        .into_iter()
        .find(|s| i64::from(status_code(*s)) == code)
        .ok_or_else(|| corrupt(format!("unknown status code {code}")))
}

/// Serializes a value as compact JSON.
pub fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(Error::backend)
}

/// Parses JSON written by [`to_json`].
pub fn from_json<T: DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| corrupt(format!("unreadable JSON in the database: {e}")))
}

/// The column text of an optional payload.
pub fn payload_text(p: &Option<Payload>) -> Option<&str> {
    p.as_ref().map(Payload::as_str)
}

/// The payload of an optional column text.
pub fn payload(text: Option<String>) -> Result<Option<Payload>> {
    text.map(|t| {
        Payload::from_json(&t).map_err(|e| corrupt(format!("unreadable payload in the database: {e}")))
    })
    .transpose()
}

/// The column text of an optional failure.
pub fn failure_text(f: &Option<FailureDetails>) -> Result<Option<String>> {
    f.as_ref().map(to_json).transpose()
}

/// The failure of an optional column text.
pub fn failure(text: Option<String>) -> Result<Option<FailureDetails>> {
    text.map(|t| from_json(&t)).transpose()
}

/// An error for data the store did not write (or a newer version wrote).
pub fn corrupt(msg: String) -> Error {
    Error::Backend(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_round_trip_and_unknown_codes_are_errors() {
        for s in RuntimeStatus::ALL {
            assert_eq!(status_from(i64::from(status_code(s))).unwrap(), s);
        }
        assert!(status_from(99).is_err());
    }
}
