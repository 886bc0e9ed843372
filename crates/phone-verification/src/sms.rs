//! Where verification SMS go: Twilio, or a development outbox in the data directory.

use async_trait::async_trait;
use durable_runtime::private_files::private_open_options;
use durable_twilio::{SmsOptions, TwilioClient, mask_phone};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One SMS to send.
#[derive(Clone, Copy, Debug)]
pub struct Sms<'a> {
    /// Recipient (E.164).
    pub to: &'a str,
    /// Text (holds the code: never log it).
    pub body: &'a str,
    /// The sending activity (`instance:execution:task`), the same on every re-run, for
    /// deduplication and diagnostics.
    pub reference: &'a str,
    /// The verification the SMS belongs to (for delivery status callbacks).
    pub instance_id: &'a str,
}

/// What a sender knows once the SMS was handed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmsReceipt {
    /// The delivery status at hand-over, as Twilio names it (`queued`, `accepted`, ...), or
    /// `outbox` for the development outbox.
    pub status: String,
}

/// Why an SMS could not be sent.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SmsError {
    /// What happened (never contains the message text).
    pub message: String,
    /// True when retrying cannot help (e.g. an invalid number).
    pub permanent: bool,
    /// How long the provider asked to wait before the next try, if it did.
    pub retry_after: Option<Duration>,
}

impl SmsError {
    /// A failure that another try may get past.
    pub fn transient(message: impl Into<String>) -> Self {
        SmsError { message: message.into(), permanent: false, retry_after: None }
    }

    /// A failure that no retry can fix (invalid number, unsubscribed recipient, ...).
    pub fn permanent(message: impl Into<String>) -> Self {
        SmsError { message: message.into(), permanent: true, retry_after: None }
    }
}

/// Sends one SMS, one attempt per call: the sample retries (with backoff, within the
/// verification window) itself.
#[async_trait]
pub trait SmsSender: Send + Sync + 'static {
    /// Hands `sms` over for delivery.
    async fn send(&self, sms: &Sms<'_>) -> Result<SmsReceipt, SmsError>;

    /// A short description for startup logs.
    fn describe(&self) -> String;

    /// What kind of sender this is, as the `sender` label of the SMS metrics (a fixed name).
    fn kind(&self) -> &'static str {
        "custom"
    }
}

/// Sends through the Twilio REST API.
pub struct TwilioSender {
    client: TwilioClient,
    status_callback_base: Option<String>,
}

impl TwilioSender {
    /// Wraps a configured client.
    pub fn new(client: TwilioClient) -> Self {
        TwilioSender { client, status_callback_base: None }
    }

    /// Asks Twilio for delivery status callbacks at `{public_base_url}/twilio/status`, where
    /// `durable serve` records them in the verification's custom status.
    pub fn with_status_callbacks(mut self, public_base_url: &str) -> Self {
        self.status_callback_base = Some(public_base_url.trim_end_matches('/').to_owned());
        self
    }
}

#[async_trait]
impl SmsSender for TwilioSender {
    async fn send(&self, sms: &Sms<'_>) -> Result<SmsReceipt, SmsError> {
        let options = SmsOptions {
            status_callback: self
                .status_callback_base
                .as_ref()
                .map(|base| crate::webhooks::status_callback_url(base, sms.instance_id)),
        };
        match self.client.try_send_sms(sms.to, sms.body, &options).await {
            Ok(sent) => {
                tracing::info!(to = %mask_phone(sms.to), sid = %sent.sid, reference = sms.reference, "verification SMS accepted by Twilio");
                Ok(SmsReceipt { status: sent.status.as_str().to_owned() })
            }
            Err(failure) => Err(SmsError {
                message: failure.error.to_string(),
                permanent: failure.error.is_permanent(),
                retry_after: failure.retry_after,
            }),
        }
    }

    fn describe(&self) -> String {
        format!("Twilio ({})", self.client.config().base_url)
    }

    fn kind(&self) -> &'static str {
        "twilio"
    }
}

/// One message kept by the [`DevOutbox`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// When it was "sent" (RFC 3339).
    pub sent_at: String,
    /// Recipient.
    pub to: String,
    /// Text.
    pub body: String,
    /// The sending activity.
    pub reference: String,
}

/// The development outbox: messages are appended to `outbox.jsonl` in the data directory
/// instead of being sent, so the sample can be tried without a Twilio account.
pub struct DevOutbox {
    path: PathBuf,
    lock: Mutex<()>,
}

impl DevOutbox {
    /// File name inside the data directory.
    pub const FILE_NAME: &'static str = "outbox.jsonl";

    /// An outbox in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        DevOutbox { path: data_dir.join(Self::FILE_NAME), lock: Mutex::new(()) }
    }

    /// Every message kept so far, oldest first.
    pub fn read(data_dir: &Path) -> std::io::Result<Vec<OutboxMessage>> {
        let text = match std::fs::read_to_string(data_dir.join(Self::FILE_NAME)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }
}

#[async_trait]
impl SmsSender for DevOutbox {
    async fn send(&self, sms: &Sms<'_>) -> Result<SmsReceipt, SmsError> {
        let message = OutboxMessage {
            sent_at: jiff::Timestamp::now().to_string(),
            to: sms.to.to_owned(),
            body: sms.body.to_owned(),
            reference: sms.reference.to_owned(),
        };
        let mut line = serde_json::to_string(&message).expect("outbox message is JSON");
        line.push('\n');
        let write = || -> std::io::Result<()> {
            let _guard = self.lock.lock();
            let mut file = private_open_options().append(true).create(true).open(&self.path)?;
            file.write_all(line.as_bytes())
        };
        write().map_err(|e| SmsError::transient(format!("cannot write the development outbox: {e}")))?;
        tracing::info!(to = %mask_phone(sms.to), reference = sms.reference, "verification SMS kept in the development outbox (`durable outbox` shows it)");
        Ok(SmsReceipt { status: "outbox".to_owned() })
    }

    fn describe(&self) -> String {
        format!("development outbox {}", self.path.display())
    }

    fn kind(&self) -> &'static str {
        "outbox"
    }
}
