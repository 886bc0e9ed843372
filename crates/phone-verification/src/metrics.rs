//! Metrics of the sample's SMS, through the `metrics` facade (no-ops without a recorder).
//!
//! Labels are `&'static str` on purpose: only values fixed in code (the sender kind) can become
//! labels, never a phone number. Starts the abuse limits refuse (no SMS is sent for them) are
//! counted by the runtime as `durable_starts_limited_total`, by limit.

/// Registers the help texts (called when the sample is registered).
pub fn describe() {
    metrics::describe_counter!(
        "durable_sms_sent_total",
        "Verification SMS handed to the sender, by sender (twilio, outbox)."
    );
    metrics::describe_counter!(
        "durable_sms_failed_total",
        "Verification SMS the sender refused or could not send, by sender and whether retrying can help (permanent: false/true)."
    );
}

/// One SMS was accepted by `sender`.
pub fn sms_sent(sender: &'static str) {
    metrics::counter!("durable_sms_sent_total", "sender" => sender).increment(1);
}

/// One SMS failed at `sender`.
pub fn sms_failed(sender: &'static str, permanent: bool) {
    let permanent = if permanent { "true" } else { "false" };
    metrics::counter!("durable_sms_failed_total", "sender" => sender, "permanent" => permanent).increment(1);
}
