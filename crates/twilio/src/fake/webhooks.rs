//! The fake's outgoing webhooks, signed like Twilio's: delivery status callbacks for accepted
//! messages that asked for them (`StatusCallback`), and inbound messages ("the user replied
//! by SMS") posted to an application's webhook.

use super::{FakeMessage, Shared};
use crate::webhook::{SIGNATURE_HEADER, signature};
use std::sync::Arc;
use std::time::Instant;

/// How the fake reports a message's delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// `sent`, then `delivered`.
    Delivered,
    /// `sent`, then `undelivered` with this Twilio error code (e.g. 30003, unreachable handset).
    Undelivered(u32),
    /// `failed` with this error code (e.g. 30008).
    Failed(u32),
}

/// A status callback the fake posted.
#[derive(Clone, Debug)]
pub struct FakeCallback {
    /// When it was posted.
    pub sent_at: Instant,
    /// The `StatusCallback` URL.
    pub url: String,
    /// `MessageStatus`.
    pub status: String,
    /// `ErrorCode`, if any.
    pub error_code: Option<u32>,
    /// The application's answer; `None` if it could not be reached.
    pub response_status: Option<u16>,
}

/// What the application answered to an inbound message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundReply {
    /// HTTP status.
    pub status: u16,
    /// The body (TwiML for a 200).
    pub body: String,
}

/// How to sign a request: right, with another auth token, or not at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signing<'a> {
    /// Twilio's signature with the fake's auth token.
    Valid,
    /// A signature made with another token (what a forger would send).
    WithToken(&'a str),
    /// No `X-Twilio-Signature` header.
    Missing,
}

/// Posts the status callbacks of `message` (if it asked for them) in the background.
pub(super) fn schedule_callbacks(shared: Arc<Shared>, message: &FakeMessage) {
    let Some(url) = message.params.iter().find(|(k, _)| k == "StatusCallback").map(|(_, v)| v.clone()) else {
        return;
    };
    let delivery = shared.state.borrow().delivery.get(&message.to).cloned().unwrap_or(Delivery::Delivered);
    let steps: Vec<(&str, Option<u32>)> = match delivery {
        Delivery::Delivered => vec![("sent", None), ("delivered", None)],
        Delivery::Undelivered(code) => vec![("sent", None), ("undelivered", Some(code))],
        Delivery::Failed(code) => vec![("failed", Some(code))],
    };
    let message = message.clone();
    let steps: Vec<(String, Option<u32>)> = steps.into_iter().map(|(s, c)| (s.to_owned(), c)).collect();
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        for (status, error_code) in steps {
            let mut params = vec![
                ("AccountSid".to_owned(), message.account_sid.clone()),
                ("ApiVersion".to_owned(), "2010-04-01".to_owned()),
                ("From".to_owned(), message.from.clone()),
                ("MessageSid".to_owned(), message.sid.clone()),
                ("MessageStatus".to_owned(), status.clone()),
                ("SmsSid".to_owned(), message.sid.clone()),
                ("SmsStatus".to_owned(), status.clone()),
                ("To".to_owned(), message.to.clone()),
            ];
            if let Some(code) = error_code {
                params.push(("ErrorCode".to_owned(), code.to_string()));
            }
            let response = post(&http, &url, &params, &shared.auth_token, Signing::Valid).await;
            let callback = FakeCallback {
                sent_at: Instant::now(),
                url: url.clone(),
                status,
                error_code,
                response_status: response.ok().map(|r| r.status),
            };
            shared.state.send_modify(|s| s.callbacks.push(callback));
        }
    });
}

/// POSTs `params` as a form to `url`, signed as `signing` says.
pub(super) async fn post(
    http: &reqwest::Client,
    url: &str,
    params: &[(String, String)],
    auth_token: &str,
    signing: Signing<'_>,
) -> Result<InboundReply, reqwest::Error> {
    let mut request = http.post(url).form(params);
    match signing {
        Signing::Valid => request = request.header(SIGNATURE_HEADER, signature(auth_token, url, params)),
        Signing::WithToken(token) => {
            request = request.header(SIGNATURE_HEADER, signature(token, url, params));
        }
        Signing::Missing => {}
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.text().await?;
    Ok(InboundReply { status, body })
}
