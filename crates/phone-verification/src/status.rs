//! What a verification shows in its custom status: the SMS delivery status (from Twilio's
//! status callbacks) and how many answers it still checks.

use serde::{Deserialize, Serialize};

/// The event `POST /twilio/status` raises on the verification with Twilio's delivery report.
pub const DELIVERY_EVENT: &str = "SmsDeliveryStatus";

/// A delivery report: Twilio's `MessageStatus` and, for `undelivered`/`failed`, its `ErrorCode`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryReport {
    /// `queued`, `sending`, `sent`, `delivered`, `undelivered`, `failed`, ...
    pub status: String,
    /// Twilio's error code (e.g. 30003 "unreachable handset"), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
}

/// The custom status of `E4_SmsPhoneVerification` once the SMS is out, e.g.
/// `{"sms":"undelivered","smsErrorCode":30003,"attemptsLeft":4}`, so the calling app can say
/// "not delivered, try again" or "2 tries left".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationStatus {
    /// The SMS delivery status (Twilio's names; `outbox` for the development outbox).
    pub sms: String,
    /// Twilio's error code for `undelivered` and `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_error_code: Option<u32>,
    /// Answers the verification still checks.
    pub attempts_left: u32,
}

impl VerificationStatus {
    /// The status right after the SMS was handed over.
    pub fn new(sms_status: Option<&str>, attempts: u32) -> Self {
        let sms = sms_status.filter(|s| rank(s).is_some()).unwrap_or("queued").to_owned();
        VerificationStatus { sms, sms_error_code: None, attempts_left: attempts }
    }

    /// Applies a delivery report; returns whether the status changed. Twilio's callbacks may
    /// arrive out of order, so a report never moves the status back (a late `sent` does not
    /// overwrite `delivered`); unknown statuses are ignored, which also keeps the custom status
    /// small whatever a caller raises.
    pub fn record(&mut self, report: &DeliveryReport) -> bool {
        let (Some(new), Some(old)) = (rank(&report.status), rank(&self.sms)) else { return false };
        if new < old || (new == old && report.status == self.sms) {
            return false;
        }
        self.sms = report.status.clone();
        self.sms_error_code =
            report.error_code.filter(|_| matches!(report.status.as_str(), "undelivered" | "failed"));
        true
    }
}

/// Order of delivery statuses; `None` for names we do not show.
fn rank(status: &str) -> Option<u8> {
    Some(match status {
        "outbox" | "accepted" | "scheduled" | "queued" => 0,
        "sending" => 1,
        "sent" => 2,
        "delivered" | "undelivered" | "failed" => 3,
        "read" => 4,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: &str, error_code: Option<u32>) -> DeliveryReport {
        DeliveryReport { status: status.into(), error_code }
    }

    #[test]
    fn reports_move_forward_only_and_keep_error_codes_of_failures() {
        let mut s = VerificationStatus::new(Some("queued"), 4);
        assert!(s.record(&report("sent", None)));
        assert!(!s.record(&report("queued", None)), "a late queued is ignored");
        assert!(s.record(&report("undelivered", Some(30003))));
        assert_eq!(s.sms_error_code, Some(30003));
        assert!(!s.record(&report("sent", None)));
        assert!(!s.record(&report("whatever", None)));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"sms":"undelivered","smsErrorCode":30003,"attemptsLeft":4}"#);
        let mut s = VerificationStatus::new(Some("bogus"), 4);
        assert_eq!(s.sms, "queued");
        assert!(s.record(&report("delivered", Some(1))));
        assert_eq!(s.sms_error_code, None, "only failures carry a code");
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"sms":"delivered","attemptsLeft":4}"#);
    }
}
