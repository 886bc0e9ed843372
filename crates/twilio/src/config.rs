//! Client configuration and its validation.

use std::fmt;
use std::time::Duration;

use crate::Error;

/// Twilio's production API origin; tests point [`TwilioConfig::base_url`] at a loopback fake instead.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// A string that must never reach a log line: its `Debug` prints `***`, it has no `Display`,
/// and the value is only reachable through [`SecretString::expose`], so leaks are greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call it only where the value is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string (a common misconfiguration: an unset env var).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// Everything [`TwilioClient`](crate::TwilioClient) needs. Build it with [`TwilioConfig::new`] and
/// adjust the public fields; [`TwilioConfig::validate`] (also run by `TwilioClient::new`) says
/// what is wrong in terms a person can act on.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// The account SID, `AC` followed by 32 hex digits (Twilio console → Account info).
    pub account_sid: String,
    /// The account's auth token, the password half of HTTP Basic auth.
    pub auth_token: SecretString,
    /// The sender: a Twilio number in E.164 form (`+15005550006`) or an alphanumeric sender ID.
    pub from: String,
    /// The API origin without a trailing path, default [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// Deadline for one HTTP attempt, from connecting until the response body is read.
    pub request_timeout: Duration,
    /// Attempts per [`send_sms`](crate::TwilioClient::send_sms) call, the first one included (≥ 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt; it doubles per attempt up to `max_backoff`, with jitter.
    pub initial_backoff: Duration,
    /// Upper bound of the computed backoff.
    pub max_backoff: Duration,
    /// The longest `Retry-After` we are willing to sleep for inside one call. Longer requests give
    /// up and return the 429/503 error, so the caller's own (durable) retry policy decides rather
    /// than an activity worker being held for minutes.
    pub max_retry_after: Duration,
}

impl TwilioConfig {
    /// A configuration with production defaults: 10 s per attempt, 3 attempts, 500 ms → 10 s backoff.
    pub fn new(
        account_sid: impl Into<String>,
        auth_token: impl Into<SecretString>,
        from: impl Into<String>,
    ) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            from: from.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            request_timeout: Duration::from_secs(10),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(30),
        }
    }

    /// Replaces [`base_url`](Self::base_url), e.g. with the address of the
    /// `fake::FakeTwilio` test server (feature `fake`).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Checks every field; the error names the field and what a valid value looks like.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field: &'static str, reason: String| Err(Error::InvalidConfig { field, reason });

        if !is_account_sid(&self.account_sid) {
            return invalid(
                "account_sid",
                format!(
                    "expected \"AC\" followed by 32 hex digits (34 characters), got {} characters \
                     starting with {:?}; copy the Account SID from the Twilio console (an API key \
                     SID starts with \"SK\" and is not an account SID)",
                    self.account_sid.chars().count(),
                    self.account_sid.chars().take(2).collect::<String>(),
                ),
            );
        }
        if self.auth_token.is_empty() {
            return invalid("auth_token", "is empty; set the account's auth token".to_owned());
        }
        if self.from.trim().is_empty() {
            return invalid(
                "from",
                "is empty; set a Twilio phone number in E.164 form such as +15005550006".to_owned(),
            );
        }
        match reqwest::Url::parse(&self.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                // The auth token travels in every request header, so plain HTTP is only sane
                // towards a fake on this machine.
                if url.scheme() == "http" && !is_loopback_host(&url) {
                    tracing::warn!(
                        base_url = %self.base_url,
                        "Twilio base_url uses plain http to a non-loopback host; the auth token will be sent unencrypted"
                    );
                }
            }
            Ok(_) => {
                return invalid(
                    "base_url",
                    format!("{:?} must be an http(s) URL with a host", self.base_url),
                );
            }
            Err(err) => {
                return invalid(
                    "base_url",
                    format!("{:?} is not a URL ({err}); the default is {DEFAULT_BASE_URL}", self.base_url),
                );
            }
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout", "must be greater than zero".to_owned());
        }
        if self.max_attempts == 0 {
            return invalid("max_attempts", "must be at least 1 (1 means no retries)".to_owned());
        }
        if self.initial_backoff > self.max_backoff {
            return invalid(
                "initial_backoff",
                format!("{:?} is larger than max_backoff {:?}", self.initial_backoff, self.max_backoff),
            );
        }
        Ok(())
    }
}

/// `AC` + 32 hex digits, the shape of the `AccountSid` path parameter in Twilio's OpenAPI spec.
pub(crate) fn is_account_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("AC") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_loopback_host(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    // IPv6 hosts come back bracketed (`[::1]`).
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789ABCDEF";

    fn valid() -> TwilioConfig {
        TwilioConfig::new(SID, "tok3n-value", "+15005550006")
    }

    #[test]
    fn defaults_are_valid() {
        valid().validate().unwrap();
    }

    #[test]
    fn debug_hides_the_auth_token() {
        let cfg = TwilioConfig::new(SID, "super-secret-token-42", "+15005550006");
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("super-secret-token-42"), "{debug}");
        assert!(debug.contains("auth_token: ***"), "{debug}");
        let pretty = format!("{cfg:#?}");
        assert!(!pretty.contains("super-secret-token-42"), "{pretty}");
    }

    #[test]
    fn account_sid_shape_is_checked() {
        for bad in ["", "AC123", "SK0123456789abcdef0123456789abcdef", "AC0123456789abcdef0123456789abcdeg"] {
            let mut cfg = valid();
            cfg.account_sid = bad.to_owned();
            let err = cfg.validate().unwrap_err();
            assert!(matches!(err, Error::InvalidConfig { field: "account_sid", .. }), "{bad}: {err}");
            assert!(err.to_string().contains("32 hex digits"), "{err}");
        }
    }

    #[test]
    fn other_fields_are_checked() {
        type Breakage = fn(&mut TwilioConfig);
        let cases: [(&str, Breakage); 6] = [
            ("auth_token", |c| c.auth_token = SecretString::new("")),
            ("from", |c| c.from = " ".into()),
            ("base_url", |c| c.base_url = "api.twilio.com".into()),
            ("request_timeout", |c| c.request_timeout = Duration::ZERO),
            ("max_attempts", |c| c.max_attempts = 0),
            ("initial_backoff", |c| c.initial_backoff = Duration::from_secs(60)),
        ];
        for (field, break_it) in cases {
            let mut cfg = valid();
            break_it(&mut cfg);
            match cfg.validate() {
                Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
        }
    }
}
