//! Twilio's webhooks of the sample: delivery status callbacks (`POST /twilio/status`) and
//! replies by SMS (`POST /twilio/sms`).

/// Path of the delivery status callback.
pub const STATUS_PATH: &str = "/twilio/status";
/// Path of the inbound message webhook.
pub const SMS_PATH: &str = "/twilio/sms";

/// The `StatusCallback` URL of a verification's SMS: `{base}/twilio/status?instance=<id>`. The
/// instance id travels in the URL, which Twilio signs, so a report can only reach the
/// verification its SMS belongs to.
pub fn status_callback_url(public_base_url: &str, instance_id: &str) -> String {
    let id: String = form_urlencoded::byte_serialize(instance_id.as_bytes()).collect();
    format!("{}{STATUS_PATH}?instance={id}", public_base_url.trim_end_matches('/'))
}
