//! Where verification SMS go: Twilio, or a development outbox in the data directory.

use async_trait::async_trait;
use durable_twilio::{TwilioClient, mask_phone};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why an SMS could not be sent.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SmsError {
    /// What happened (never contains the message text).
    pub message: String,
    /// True when retrying cannot help (e.g. an invalid number).
    pub permanent: bool,
}

/// Sends one SMS.
#[async_trait]
pub trait SmsSender: Send + Sync + 'static {
    /// Sends `body` to `to`. `reference` identifies the sending activity (instance, execution,
    /// task) for deduplication and diagnostics.
    async fn send(&self, to: &str, body: &str, reference: &str) -> Result<(), SmsError>;

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
}

impl TwilioSender {
    /// Wraps a configured client.
    pub fn new(client: TwilioClient) -> Self {
        TwilioSender { client }
    }
}

#[async_trait]
impl SmsSender for TwilioSender {
    async fn send(&self, to: &str, body: &str, reference: &str) -> Result<(), SmsError> {
        match self.client.send_sms(to, body).await {
            Ok(sent) => {
                tracing::info!(to = %mask_phone(to), sid = %sent.sid, reference, "verification SMS accepted by Twilio");
                Ok(())
            }
            Err(e) => Err(SmsError { message: e.to_string(), permanent: e.is_permanent() }),
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
    async fn send(&self, to: &str, body: &str, reference: &str) -> Result<(), SmsError> {
        let message = OutboxMessage {
            sent_at: jiff::Timestamp::now().to_string(),
            to: to.to_owned(),
            body: body.to_owned(),
            reference: reference.to_owned(),
        };
        let mut line = serde_json::to_string(&message).expect("outbox message is JSON");
        line.push('\n');
        let write = || -> std::io::Result<()> {
            let _guard = self.lock.lock();
            let mut options = std::fs::OpenOptions::new();
            options.append(true).create(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&self.path)?;
            file.write_all(line.as_bytes())
        };
        write().map_err(|e| SmsError {
            message: format!("cannot write the development outbox: {e}"),
            permanent: false,
        })?;
        tracing::info!(to = %mask_phone(to), reference, "verification SMS kept in the development outbox (`durable outbox` shows it)");
        Ok(())
    }

    fn describe(&self) -> String {
        format!("development outbox {}", self.path.display())
    }

    fn kind(&self) -> &'static str {
        "outbox"
    }
}
