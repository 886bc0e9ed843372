//! The try-it page of the phone-verification sample: enter a number, read the SMS in the
//! development outbox (when Twilio is not configured), answer it, watch the instance finish.
//!
//! The dashboard does not depend on the sample: the server describes it with a [`TryIt`] (the
//! orchestrator and event names, and an [`Outbox`] to read), so the dependencies keep pointing
//! inward. The outbox message is the only place any page shows a code: it stands in for the
//! user's phone. Answers are never echoed.

use crate::auth::Session;
use crate::pages::{self, Flash, Nav, encode_segment, instance_href, layout};
use crate::{Dashboard, actions, format};
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use durable_core::{Payload, RuntimeStatus};
use durable_store::InstanceState;
use maud::{Markup, html};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// One message of the development outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// When it was kept (RFC 3339).
    pub sent_at: String,
    /// The recipient.
    pub to: String,
    /// The text (it holds the code: shown only on the try-it page).
    pub body: String,
}

/// Where the try-it page reads the SMS of an instance (the development outbox).
pub trait Outbox: Send + Sync + 'static {
    /// The messages the instance's activities sent, oldest first.
    fn messages_for(&self, instance_id: &str) -> std::io::Result<Vec<OutboxEntry>>;
}

/// The sample the try-it page runs, as the server describes it.
#[derive(Clone)]
pub struct TryIt {
    /// The orchestrator to start with the phone number (`E4_SmsPhoneVerification`).
    pub orchestrator: String,
    /// The event that carries an answer (`SmsChallengeResponse`).
    pub answer_event: String,
    /// Digits of a code.
    pub code_digits: u32,
    /// How long an answer is accepted.
    pub window: Duration,
    /// The development outbox, when SMS are not really sent (`None` with Twilio).
    pub outbox: Option<Arc<dyn Outbox>>,
}

fn config(dashboard: &Dashboard) -> Result<&TryIt, Response> {
    dashboard.options.try_it.as_ref().ok_or_else(|| {
        pages::error_response(
            StatusCode::NOT_FOUND,
            "This server does not run the phone-verification sample.",
        )
    })
}

fn href(id: &str) -> String {
    format!("/try/phone-verification/{}", encode_segment(id))
}

/// `GET /try/phone-verification`.
pub(crate) async fn page(
    State(dashboard): State<Dashboard>,
    Extension(session): Extension<Session>,
) -> Response {
    let try_it = match config(&dashboard) {
        Ok(t) => t,
        Err(r) => return r,
    };
    start_page(&dashboard, &session, try_it, None, "", StatusCode::OK)
}

fn start_page(
    dashboard: &Dashboard,
    session: &Session,
    try_it: &TryIt,
    flash: Option<Flash>,
    phone: &str,
    status: StatusCode,
) -> Response {
    let body = html! {
        h1 { "Try phone verification" }
        p {
            "Starts " code { (try_it.orchestrator) } ": a " (try_it.code_digits) "-digit code goes to the number by SMS, and the instance waits "
            (format::duration(jiff::Timestamp::UNIX_EPOCH, jiff::Timestamp::UNIX_EPOCH + try_it.window))
            " for the right answer."
        }
        @if try_it.outbox.is_some() {
            p.hint { "Twilio is not configured: the SMS goes to the development outbox, which this page shows you." }
        } @else {
            p.hint { "SMS are sent through Twilio: use a phone you hold." }
        }
        @if let Some(flash) = &flash { (flash.render()) }
        form.card method="post" action="/try/phone-verification" {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="phone" { "Phone number (E.164)" }
            input #phone name="phone" type="tel" required placeholder="+14255550123" autocomplete="tel" value=(phone);
            button.primary type="submit" { "Send the code" }
        }
    };
    (status, layout(dashboard, session, "Try phone verification", Nav::TryIt, body)).into_response()
}

#[derive(Deserialize)]
pub(crate) struct StartForm {
    csrf: String,
    phone: String,
}

/// `POST /try/phone-verification`: starts a verification and shows its page.
pub(crate) async fn start(
    State(dashboard): State<Dashboard>,
    Extension(session): Extension<Session>,
    Form(form): Form<StartForm>,
) -> Response {
    let try_it = match config(&dashboard) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused;
    }
    let phone = form.phone.trim();
    let input = Payload::from_value(phone).expect("a string is JSON");
    match dashboard.client.start_raw(&try_it.orchestrator, None, Some(input)).await {
        Ok(id) => Redirect::to(&href(&id)).into_response(),
        Err(e) => {
            let (status, message) = pages::client_error(&e);
            start_page(&dashboard, &session, try_it, Some(Flash::error(message)), phone, status)
        }
    }
}

/// The instance, if it exists and is a run of the sample.
async fn sample_instance(dashboard: &Dashboard, try_it: &TryIt, id: &str) -> Result<InstanceState, Response> {
    match dashboard.client.status(id).await {
        Ok(Some(state)) if state.name == try_it.orchestrator => Ok(state),
        Ok(_) => {
            Err(pages::error_response(StatusCode::NOT_FOUND, "There is no phone verification with this id."))
        }
        Err(e) => {
            let (status, message) = pages::client_error(&e);
            Err(pages::error_response(status, &message))
        }
    }
}

/// `GET /try/phone-verification/{id}`.
pub(crate) async fn instance(
    State(dashboard): State<Dashboard>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    render(&dashboard, &session, &id, None, StatusCode::OK).await
}

async fn render(
    dashboard: &Dashboard,
    session: &Session,
    id: &str,
    flash: Option<Flash>,
    status: StatusCode,
) -> Response {
    let try_it = match config(dashboard) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let state = match sample_instance(dashboard, try_it, id).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let body = html! {
        h1 { "Try phone verification" }
        p { "Instance " a href=(instance_href(id)) { code { (id) } } " (its history and timeline are on the instance page)." }
        div #live data-live-src=(format!("/live/try/phone-verification/{}", encode_segment(id))) {
            (progress(try_it, &state))
        }
        section.card aria-labelledby="answer-h" {
            h2 #answer-h { "Answer" }
            div #action-result aria-live="polite" { @if let Some(flash) = &flash { (flash.render()) } }
            form method="post" action=(href(id)) data-confirm data-clear {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="code" { "Code from the SMS" }
                input #code name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required
                    pattern=(format!("[0-9]{{{}}}", try_it.code_digits)) maxlength=(try_it.code_digits);
                button.primary type="submit" { "Check the code" }
            }
        }
        p { a href="/try/phone-verification" { "Start another verification" } }
    };
    (status, layout(dashboard, session, "Try phone verification", Nav::TryIt, body)).into_response()
}

/// The instance's progress and, in development, its SMS.
fn progress(try_it: &TryIt, state: &InstanceState) -> Markup {
    let finished = state.status.is_terminal();
    let verified = state.output.as_ref().map(|o| o.as_str().trim() == "true");
    let messages = try_it.outbox.as_ref().map(|o| o.messages_for(&state.instance_id));
    html! {
        div.details data-status=(state.status.as_str()) data-terminal=(finished) {
            section.card aria-labelledby="outbox-h" {
                h2 #outbox-h { "The SMS" }
                @match &messages {
                    None => p { "Sent through Twilio to the number you entered." },
                    Some(Err(e)) => {
                        p.flash.error role="alert" { "The development outbox cannot be read: " (e.kind().to_string()) }
                    }
                    Some(Ok(list)) if list.is_empty() => p.hint { "Not sent yet…" },
                    Some(Ok(list)) => {
                        p.hint { "Development outbox (stands in for the phone):" }
                        @for m in list {
                            figure.sms {
                                blockquote data-sms { (m.body) }
                                figcaption { "to " (m.to) ", " (m.sent_at) }
                            }
                        }
                    }
                }
            }
            section.card aria-labelledby="state-h" {
                h2 #state-h { "Result" }
                p { "Status: " (pages::instances::status_badge(state.status)) }
                @if finished {
                    @match (state.status, verified) {
                        (RuntimeStatus::Completed, Some(true)) => p.verdict.ok data-output="true" { "Verified: output " code { "true" } "." },
                        (RuntimeStatus::Completed, _) => p.verdict.error data-output="false" { "Not verified (wrong codes or too late): output " code { "false" } "." },
                        _ => p.verdict.error { "The instance ended " (state.status.as_str()) "." },
                    }
                } @else {
                    p { "Waiting for the right code…" }
                }
            }
        }
    }
}

/// `GET /live/try/phone-verification/{id}`.
pub(crate) async fn live(State(dashboard): State<Dashboard>, Path(id): Path<String>) -> Response {
    let try_it = match config(&dashboard) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match sample_instance(&dashboard, try_it, &id).await {
        Ok(state) => Html(progress(try_it, &state).into_string()).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub(crate) struct AnswerForm {
    csrf: String,
    code: String,
}

/// `POST /try/phone-verification/{id}`: raises the answer event with the code.
pub(crate) async fn answer(
    State(dashboard): State<Dashboard>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<AnswerForm>,
) -> Response {
    let try_it = match config(&dashboard) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused;
    }
    if let Err(r) = sample_instance(&dashboard, try_it, &id).await {
        return r;
    }
    // The code travels as a JSON string (leading zeros kept); the sample's event hook turns it
    // into a MAC before anything is stored. It is never echoed.
    let data = Payload::from_value(form.code.trim()).expect("a string is JSON");
    let (status, flash) = match dashboard.client.raise_event_raw(&id, &try_it.answer_event, Some(data)).await
    {
        Ok(()) => (StatusCode::OK, Flash::ok("Answer sent.")),
        Err(e) => {
            let (status, message) = pages::client_error(&e);
            (status, Flash::error(message))
        }
    };
    if headers.get(actions::FETCH_HEADER).is_some() {
        return (status, Html(flash.render().into_string())).into_response();
    }
    render(&dashboard, &session, &id, Some(flash), status).await
}
