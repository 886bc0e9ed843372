//! [`Payload`]: a JSON document carried through history, messages and the store as text.
//!
//! Inputs, outputs, event data and custom status are kept as raw JSON text from the moment they
//! enter the system until user code decodes them, so the engine never parses what it only moves.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// A JSON document, stored as validated JSON text.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// Serializes `value` to JSON.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Payload)
    }

    /// Parses `json`, which must be one valid JSON document (surrounding whitespace is trimmed).
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json.trim().to_owned()).map(Payload)
    }

    /// The JSON `null`.
    pub fn null() -> Self {
        Payload::from_json("null").expect("null is JSON")
    }

    /// Decodes the document into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Size of the JSON text in bytes.
    pub fn len(&self) -> usize {
        self.0.get().len()
    }

    /// Always false: a payload holds at least one JSON token.
    pub fn is_empty(&self) -> bool {
        self.0.get().is_empty()
    }

    /// True when the document is JSON `null`.
    pub fn is_null(&self) -> bool {
        self.0.get() == "null"
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 200;
        let s = self.as_str();
        if s.len() <= MAX {
            write!(f, "Payload({s})")
        } else {
            let cut = (0..=MAX).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            write!(f, "Payload({}… {} bytes)", &s[..cut], s.len())
        }
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_values_and_text() {
        let p = Payload::from_value(&vec![1, 2, 3]).unwrap();
        assert_eq!(p.as_str(), "[1,2,3]");
        assert_eq!(p.decode::<Vec<u32>>().unwrap(), vec![1, 2, 3]);
        let q = Payload::from_json("  \"+1425\" ").unwrap();
        assert_eq!(q.decode::<String>().unwrap(), "+1425");
        assert!(Payload::null().is_null());
    }

    #[test]
    fn rejects_invalid_json() {
        assert!(Payload::from_json("0042").is_err());
        assert!(Payload::from_json("{").is_err());
        assert!(Payload::from_json("1 2").is_err());
    }

    #[test]
    fn nests_as_json_not_as_a_string() {
        #[derive(Serialize, Deserialize)]
        struct W {
            p: Payload,
        }
        let w = W { p: Payload::from_json("{\"a\":1}").unwrap() };
        let s = serde_json::to_string(&w).unwrap();
        assert_eq!(s, "{\"p\":{\"a\":1}}");
        let back: W = serde_json::from_str(&s).unwrap();
        assert_eq!(back.p.as_str(), "{\"a\":1}");
    }
}
