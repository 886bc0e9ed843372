//! [`HttpOptions`]: task hub naming, keys, proxies and limits of the HTTP API.

use durable_core::InvalidSetting;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Settings of the HTTP API. The defaults match a local Durable Functions host.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpOptions {
    /// Task hub name put in generated URLs (`taskHub=`). Requests that name another hub get 400.
    pub task_hub: String,
    /// Connection name put in generated URLs (`connection=`); informational only.
    pub connection_name: String,
    /// Accepted system keys (`code=` query parameter or `x-functions-key` header). The first one
    /// is embedded in generated management URLs; the others are accepted too, for rotation.
    /// Empty disables authentication; the binary only allows that behind an explicit flag.
    pub system_keys: Vec<String>,
    /// Honour `X-Forwarded-Host` / `X-Forwarded-Proto` when building URLs. Only enable behind a
    /// proxy that sets them: otherwise clients choose the host of the URLs we hand out.
    pub trust_forwarded_headers: bool,
    /// Largest accepted request body in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Longest time a request may take, in milliseconds, including reading its body and any
    /// wait for completion (`timeout=` on start); then the server answers 408.
    #[serde(with = "duration_ms")]
    pub request_timeout: Duration,
    /// Wrong system keys a client address may send before its requests are refused with 429
    /// for growing periods (1 s, doubling with every further wrong key). 0 turns this off.
    pub wrong_keys_before_throttle: u32,
    /// Longest such period, in milliseconds.
    #[serde(with = "duration_ms")]
    pub max_wrong_key_block: Duration,
    /// New starts are refused with 503 while more instances than this wait for their next turn
    /// (the engine's backlog). 0 turns load shedding off.
    pub max_backlog: u64,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            task_hub: "DurableHub".into(),
            connection_name: "Storage".into(),
            system_keys: Vec::new(),
            trust_forwarded_headers: false,
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            wrong_keys_before_throttle: 5,
            max_wrong_key_block: Duration::from_secs(900),
            max_backlog: 20_000,
        }
    }
}

// Keys must never end up in logs, so Debug redacts them.
impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("task_hub", &self.task_hub)
            .field("connection_name", &self.connection_name)
            .field("system_keys", &format_args!("[{} redacted]", self.system_keys.len()))
            .field("trust_forwarded_headers", &self.trust_forwarded_headers)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("wrong_keys_before_throttle", &self.wrong_keys_before_throttle)
            .field("max_wrong_key_block", &self.max_wrong_key_block)
            .field("max_backlog", &self.max_backlog)
            .finish()
    }
}

impl HttpOptions {
    /// Checks the settings; the message names the wrong one and says what to do.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.task_hub.is_empty() || !self.task_hub.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(InvalidSetting::new(
                "task_hub",
                format!(
                    "task_hub '{}' must be non-empty and alphanumeric (Durable Functions hub naming)",
                    self.task_hub.escape_debug()
                ),
            ));
        }
        if self.connection_name.is_empty() || self.connection_name.chars().any(char::is_control) {
            return Err(InvalidSetting::new(
                "connection_name",
                "connection_name must be non-empty and free of control characters",
            ));
        }
        for key in &self.system_keys {
            // An empty key would accept `code=`; keys travel in URLs and headers, so they must be
            // printable ASCII without spaces.
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(InvalidSetting::new(
                    "system_keys",
                    "system_keys must be non-empty printable ASCII without spaces (generate them randomly)",
                ));
            }
        }
        if self.max_body_bytes == 0 {
            return Err(InvalidSetting::new("max_body_bytes", "max_body_bytes must be at least 1"));
        }
        if self.request_timeout < Duration::from_secs(1) {
            return Err(InvalidSetting::new("request_timeout", "request_timeout must be at least 1000 ms"));
        }
        if self.max_wrong_key_block < Duration::from_secs(1) {
            return Err(InvalidSetting::new(
                "max_wrong_key_block",
                "max_wrong_key_block must be at least 1000 ms",
            ));
        }
        Ok(())
    }

    /// Whether requests must carry a key.
    pub fn auth_enabled(&self) -> bool {
        !self.system_keys.is_empty()
    }
}

/// Durations as whole milliseconds in config files.
pub(crate) mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_durable_functions() {
        let o = HttpOptions::default();
        assert!(o.validate().is_ok());
        assert_eq!(o.task_hub, "DurableHub");
        assert_eq!(o.connection_name, "Storage");
        assert_eq!(o.max_body_bytes, 1 << 20);
        assert!(!o.auth_enabled());
    }

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_fields() {
        let o: HttpOptions =
            serde_json::from_str(r#"{"system_keys":["k1"],"request_timeout":5000}"#).unwrap();
        assert_eq!(o.system_keys, ["k1"]);
        assert_eq!(o.request_timeout, Duration::from_secs(5));
        assert_eq!(o.task_hub, "DurableHub");
        assert!(serde_json::from_str::<HttpOptions>(r#"{"nope":1}"#).is_err());
    }

    #[test]
    fn rejects_bad_settings() {
        let bad = [
            HttpOptions { system_keys: vec![String::new()], ..Default::default() },
            HttpOptions { system_keys: vec!["a b".into()], ..Default::default() },
            HttpOptions { task_hub: "my hub".into(), ..Default::default() },
            HttpOptions { max_body_bytes: 0, ..Default::default() },
            HttpOptions { request_timeout: Duration::from_millis(10), ..Default::default() },
        ];
        for o in bad {
            assert!(o.validate().is_err(), "{o:?}");
        }
    }

    #[test]
    fn debug_never_shows_keys() {
        let o = HttpOptions { system_keys: vec!["SECRET".into()], ..Default::default() };
        let s = format!("{o:?}");
        assert!(!s.contains("SECRET"), "{s}");
        assert!(s.contains("1 redacted"));
    }
}
