//! Sending SMS through Twilio's Programmable Messaging API, for durable's phone-verification
//! sample, plus a loopback fake of Twilio for tests (feature `fake`).
//!
//! The client makes one `POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json` per
//! attempt (HTTP Basic auth, form fields `To`, `From`, `Body`), parses the `201 Created` Message
//! resource or Twilio's error document, and retries throttling, server errors, timeouts and
//! transport failures with exponential backoff, jitter and `Retry-After`. Other 4xx answers
//! (invalid number, unsubscribed recipient, bad credentials) are permanent and returned at once.
//!
//! Neither the auth token nor the message body is ever logged; recipients appear masked
//! ([`mask_phone`]).
//!
//! ```no_run
//! use durable_twilio::{TwilioClient, TwilioConfig};
//!
//! # async fn send() -> Result<(), durable_twilio::Error> {
//! let config = TwilioConfig::new(
//!     std::env::var("TWILIO_ACCOUNT_SID").unwrap_or_default(),
//!     std::env::var("TWILIO_AUTH_TOKEN").unwrap_or_default(),
//!     "+15005550006",
//! );
//! let client = TwilioClient::new(config)?;
//! match client.send_sms("+14155551234", "Your verification code is 123456").await {
//!     Ok(message) => println!("queued as {}", message.sid),
//!     Err(err) if err.is_permanent() => eprintln!("will not work, do not retry: {err}"),
//!     Err(err) => eprintln!("Twilio unavailable, try again later: {err}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Tests run the real client against `fake::FakeTwilio` (feature `fake`) on `127.0.0.1`:
//!
//! ```no_run
//! # #[cfg(feature = "fake")]
//! # async fn test() {
//! use durable_twilio::fake::{FakeTwilio, FakeTwilioOptions};
//! use durable_twilio::TwilioClient;
//! use std::time::Duration;
//!
//! let fake = FakeTwilio::start(FakeTwilioOptions::default()).await.unwrap();
//! let client = TwilioClient::new(fake.client_config()).unwrap();
//! client.send_sms("+14155551234", "Your code is 123456").await.unwrap();
//! let sms = fake.wait_for_message_to("+14155551234", Duration::from_secs(5)).await.unwrap();
//! assert_eq!(sms.body, "Your code is 123456");
//! # }
//! ```

mod client;
mod config;
mod error;
mod mask;
mod message;
mod retry;
pub mod webhook;

#[cfg(feature = "fake")]
pub mod fake;

pub use client::{AttemptError, SmsOptions, TwilioClient};
pub use config::{DEFAULT_BASE_URL, SecretString, TwilioConfig};
pub use error::Error;
pub use mask::{MAX_MASKED_CHARS, mask_phone};
pub use message::{MessageStatus, SentMessage};
