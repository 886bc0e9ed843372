//! The crate's one error type.

use std::time::Duration;

/// Why sending an SMS failed. [`Error::is_permanent`] tells the caller whether another try can help.
///
/// `Display` of [`Error::Api`] includes Twilio's own message, which may quote the recipient's
/// number (e.g. error 21211); it never includes the auth token or the message body.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work; nothing was sent.
    #[error("invalid Twilio configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The offending [`TwilioConfig`](crate::TwilioConfig) field.
        field: &'static str,
        /// What is wrong and what a valid value looks like.
        reason: String,
    },

    /// Twilio answered with an error status (the last answer, if we retried).
    #[error("{}", api_display(*http_status, *code, message, more_info.as_deref(), *attempts))]
    Api {
        /// The HTTP status, e.g. 400, 401, 429, 503.
        http_status: u16,
        /// Twilio's error code (e.g. 21211), if the body was a Twilio error document.
        code: Option<u32>,
        /// Twilio's message, or the start of the body when it was not a Twilio error document.
        message: String,
        /// Twilio's link to the error dictionary entry.
        more_info: Option<String>,
        /// HTTP attempts made, this one included.
        attempts: u32,
    },

    /// The request could not be delivered or the response could not be read (connection
    /// refused, reset, TLS failure, ...).
    #[error("could not reach Twilio after {attempts} attempt(s): {source}")]
    Transport {
        /// HTTP attempts made.
        attempts: u32,
        /// The underlying client error.
        #[source]
        source: reqwest::Error,
    },

    /// Every attempt ran into [`TwilioConfig::request_timeout`](crate::TwilioConfig::request_timeout).
    #[error(
        "Twilio did not answer within {timeout:?} on any of {attempts} attempt(s); \
         the message may or may not have been sent"
    )]
    Timeout {
        /// The per-attempt timeout.
        timeout: Duration,
        /// HTTP attempts made.
        attempts: u32,
    },

    /// Twilio answered with success but a body we could not understand. The message has most
    /// likely been accepted, so this is not retried (a retry would send a second SMS).
    #[error("Twilio answered HTTP {http_status} but the response was not understood: {reason}")]
    InvalidResponse {
        /// The HTTP status of the response.
        http_status: u16,
        /// What was wrong with the body.
        reason: String,
    },
}

impl Error {
    /// `true` when repeating the same request cannot succeed or must not be done: a bad
    /// configuration, a 4xx other than 429 (bad number, unsubscribed recipient, wrong credentials,
    /// ...), or a success response we could not parse. `false` for throttling (429), server
    /// errors (5xx), timeouts and transport errors, which a later retry may get past.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::InvalidConfig { .. } | Error::InvalidResponse { .. } => true,
            Error::Api { http_status, .. } => !is_retryable_status(*http_status),
            Error::Transport { .. } | Error::Timeout { .. } => false,
        }
    }

    /// Twilio's error code, for [`Error::Api`] errors that carried one.
    pub fn code(&self) -> Option<u32> {
        match self {
            Error::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// The HTTP status Twilio answered with, if it answered at all.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Api { http_status, .. } | Error::InvalidResponse { http_status, .. } => Some(*http_status),
            _ => None,
        }
    }

    /// `true` when Twilio may have accepted the message despite the error: the request may have
    /// reached Twilio before the connection broke or the timeout fired, or Twilio said yes in a
    /// form we could not read. A caller that must not double-send can check this before retrying.
    pub fn may_have_been_sent(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::InvalidResponse { .. } => true,
            // A refused connection never carried the request.
            Error::Transport { source, .. } => !source.is_connect(),
            Error::InvalidConfig { .. } | Error::Api { .. } => false,
        }
    }
}

/// Throttling, a request timeout, and server-side failures are worth another attempt; every other
/// 4xx means the request itself is wrong and will be rejected again.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}

fn api_display(
    http_status: u16,
    code: Option<u32>,
    message: &str,
    more_info: Option<&str>,
    attempts: u32,
) -> String {
    let code_part = code.map(|c| format!(" ({c})")).unwrap_or_default();
    let see = match (more_info, code) {
        (Some(url), _) => format!(" See {url}"),
        (None, Some(c)) => format!(" See https://www.twilio.com/docs/errors/{c}"),
        (None, None) => String::new(),
    };
    let message = message.trim();
    let stop = if message.ends_with(['.', '!', '?']) { "" } else { "." };
    match http_status {
        401 | 403 => format!(
            "Twilio refused the credentials{code_part}: {message}{stop} Check account_sid and \
             auth_token (test credentials only work with Twilio's magic numbers).{see}"
        ),
        429 => format!(
            "Twilio is throttling requests (HTTP 429{}): {message}{stop} Gave up after {attempts} \
             attempt(s).{see}",
            code.map(|c| format!(", code {c}")).unwrap_or_default()
        ),
        s if is_retryable_status(s) => format!(
            "Twilio failed with HTTP {s}{}: {message}{stop} Gave up after {attempts} attempt(s).{see}",
            code.map(|c| format!(", code {c}")).unwrap_or_default()
        ),
        _ if code.is_some() => format!("Twilio rejected the message{code_part}: {message}{stop}{see}"),
        s => format!("Twilio rejected the message with HTTP {s}: {message}{stop}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(http_status: u16, code: Option<u32>, message: &str) -> Error {
        Error::Api {
            http_status,
            code,
            message: message.to_owned(),
            more_info: code.map(|c| format!("https://www.twilio.com/docs/errors/{c}")),
            attempts: 3,
        }
    }

    #[test]
    fn display_of_a_rejection_quotes_twilio() {
        let e = api(400, Some(21211), "The 'To' number +1555 is not a valid phone number.");
        assert_eq!(
            e.to_string(),
            "Twilio rejected the message (21211): The 'To' number +1555 is not a valid phone number. \
             See https://www.twilio.com/docs/errors/21211"
        );
        assert!(e.is_permanent());
    }

    #[test]
    fn display_of_auth_failure_says_what_to_check() {
        let e = api(401, Some(20003), "Authenticate");
        assert_eq!(
            e.to_string(),
            "Twilio refused the credentials (20003): Authenticate. Check account_sid and auth_token \
             (test credentials only work with Twilio's magic numbers). See https://www.twilio.com/docs/errors/20003"
        );
        assert!(e.is_permanent());
    }

    #[test]
    fn transient_statuses_are_not_permanent() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(!api(s, None, "x").is_permanent(), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422] {
            assert!(api(s, None, "x").is_permanent(), "{s}");
        }
        let e = api(503, None, "Service Unavailable");
        assert_eq!(
            e.to_string(),
            "Twilio failed with HTTP 503: Service Unavailable. Gave up after 3 attempt(s)."
        );
        let e = api(429, Some(20429), "Too Many Requests");
        assert!(e.to_string().starts_with("Twilio is throttling requests (HTTP 429, code 20429)"), "{e}");
    }
}
