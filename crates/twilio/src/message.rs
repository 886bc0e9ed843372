//! Twilio's wire documents: the created Message resource and the error body.

use serde::{Deserialize, Deserializer};

/// The Message resource from Twilio's `201 Created` answer, reduced to what a caller can use.
///
/// The `body` field is deliberately not kept: it holds the verification code, and this struct is
/// `Debug` and likely to be logged. Only `sid` and `status` are required; the other fields are
/// optional so that a harmless format change on Twilio's side cannot turn an accepted (and
/// already billed) message into an error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct SentMessage {
    /// The message SID, `SM` (or `MM` for MMS) + 32 hex digits.
    pub sid: String,
    /// The delivery status at creation, normally [`MessageStatus::Queued`].
    pub status: MessageStatus,
    /// The account that owns the message.
    #[serde(default)]
    pub account_sid: Option<String>,
    /// The recipient as Twilio normalised it.
    #[serde(default)]
    pub to: Option<String>,
    /// The sender Twilio used.
    #[serde(default)]
    pub from: Option<String>,
    /// The Messaging Service, when one picked the sender.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// `outbound-api` for messages created through this endpoint.
    #[serde(default)]
    pub direction: Option<String>,
    /// Creation time (Twilio sends RFC 2822, e.g. `Thu, 24 Aug 2023 05:01:45 +0000`).
    #[serde(default, deserialize_with = "lenient_rfc2822")]
    pub date_created: Option<jiff::Timestamp>,
    /// Last update time.
    #[serde(default, deserialize_with = "lenient_rfc2822")]
    pub date_updated: Option<jiff::Timestamp>,
    /// When the message left Twilio; `null` while queued.
    #[serde(default, deserialize_with = "lenient_rfc2822")]
    pub date_sent: Option<jiff::Timestamp>,
    /// SMS segments billed (Twilio sends it as a string; `0` until known for Messaging Services).
    #[serde(default, deserialize_with = "lenient_u32")]
    pub num_segments: Option<u32>,
    /// Media items attached.
    #[serde(default, deserialize_with = "lenient_u32")]
    pub num_media: Option<u32>,
    /// Price as a decimal string (negative = charge), `null` until known.
    #[serde(default)]
    pub price: Option<String>,
    /// ISO 4217 currency of `price`.
    #[serde(default)]
    pub price_unit: Option<String>,
    /// Asynchronous delivery error code; `null` at creation.
    #[serde(default)]
    pub error_code: Option<i64>,
    /// Asynchronous delivery error text; `null` at creation.
    #[serde(default)]
    pub error_message: Option<String>,
    /// `2010-04-01`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// The resource's path, relative to the API origin.
    #[serde(default)]
    pub uri: Option<String>,
}

/// A Message's delivery status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MessageStatus {
    /// Waiting in Twilio's queue (the usual answer to a create).
    Queued,
    /// Being sent to the carrier.
    Sending,
    /// Accepted by the carrier.
    Sent,
    /// Could not be sent.
    Failed,
    /// The carrier confirmed delivery.
    Delivered,
    /// The carrier reported non-delivery.
    Undelivered,
    /// Inbound, being received.
    Receiving,
    /// Inbound, received.
    Received,
    /// Accepted by a Messaging Service, sender not chosen yet.
    Accepted,
    /// Scheduled for later sending.
    Scheduled,
    /// Read (WhatsApp and similar channels).
    Read,
    /// Some parts were delivered.
    PartiallyDelivered,
    /// A scheduled message was canceled.
    Canceled,
    /// A status this version does not know; Twilio adds values without notice.
    #[serde(other)]
    Unknown,
}

impl MessageStatus {
    /// Twilio's name of the status (`queued`, `delivered`, ...; `unknown` for [`Self::Unknown`]).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Failed => "failed",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Undelivered => "undelivered",
            MessageStatus::Receiving => "receiving",
            MessageStatus::Received => "received",
            MessageStatus::Accepted => "accepted",
            MessageStatus::Scheduled => "scheduled",
            MessageStatus::Read => "read",
            MessageStatus::PartiallyDelivered => "partially_delivered",
            MessageStatus::Canceled => "canceled",
            MessageStatus::Unknown => "unknown",
        }
    }
}

/// Twilio's error document: `{"code": 21211, "message": "...", "more_info": "...", "status": 400}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiErrorBody {
    pub(crate) code: Option<u32>,
    pub(crate) message: Option<String>,
    pub(crate) more_info: Option<String>,
}

fn lenient_rfc2822<'de, D: Deserializer<'de>>(d: D) -> Result<Option<jiff::Timestamp>, D::Error> {
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.and_then(|s| match PARSER.parse_timestamp(&s) {
        Ok(ts) => Some(ts),
        Err(err) => {
            tracing::debug!(value = %s, %err, "ignoring unparseable Twilio date");
            None
        }
    }))
}

/// Twilio documents counts as strings but a number is accepted too; anything else becomes `None`.
fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let raw: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(match raw {
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_201_body() {
        let body = r#"{
          "account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
          "api_version": "2010-04-01",
          "body": "Your verification code is 2168",
          "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
          "date_sent": null,
          "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
          "direction": "outbound-api",
          "error_code": null,
          "error_message": null,
          "from": "+14155552345",
          "messaging_service_sid": "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
          "num_media": "0",
          "num_segments": "1",
          "price": null,
          "price_unit": null,
          "sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
          "status": "queued",
          "subresource_uris": {"media": "/2010-04-01/Accounts/AC/Messages/SM/Media.json"},
          "to": "+14155552345",
          "uri": "/2010-04-01/Accounts/AC/Messages/SM.json"
        }"#;
        let m: SentMessage = serde_json::from_str(body).unwrap();
        assert_eq!(m.sid, "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(m.status, MessageStatus::Queued);
        assert_eq!(m.num_segments, Some(1));
        assert_eq!(m.num_media, Some(0));
        assert_eq!(m.date_created.unwrap().to_string(), "2023-08-24T05:01:45Z");
        assert_eq!(m.date_sent, None);
        assert_eq!(m.direction.as_deref(), Some("outbound-api"));
        assert!(!format!("{m:?}").contains("2168"), "the body must not be kept");
    }

    #[test]
    fn tolerates_unknown_status_and_odd_fields() {
        let m: SentMessage = serde_json::from_str(
            r#"{"sid":"SM1","status":"teleported","num_segments":2,"date_created":"yesterday"}"#,
        )
        .unwrap();
        assert_eq!(m.status, MessageStatus::Unknown);
        assert_eq!(m.num_segments, Some(2));
        assert_eq!(m.date_created, None);
    }
}
