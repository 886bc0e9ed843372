//! The page shell and what every page shares: layout, messages, errors.

pub(crate) mod instance;
pub(crate) mod instances;

use crate::Dashboard;
use crate::auth::Session;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// A message shown at the top of a page or in place of an action's result.
#[derive(Clone, Debug)]
pub(crate) struct Flash {
    pub ok: bool,
    pub text: String,
    /// A link after the text: (href, label).
    pub link: Option<(String, String)>,
}

impl Flash {
    pub(crate) fn ok(text: impl Into<String>) -> Self {
        Flash { ok: true, text: text.into(), link: None }
    }

    pub(crate) fn error(text: impl Into<String>) -> Self {
        Flash { ok: false, text: text.into(), link: None }
    }

    pub(crate) fn with_link(mut self, href: String, label: impl Into<String>) -> Self {
        self.link = Some((href, label.into()));
        self
    }

    pub(crate) fn render(&self) -> Markup {
        let link = html! { @if let Some((href, label)) = &self.link { " " a href=(href) { (label) } } };
        html! {
            @if self.ok {
                p.flash.ok role="status" data-result="ok" { (self.text) (link) }
            } @else {
                p.flash.error role="alert" data-result="error" { (self.text) (link) }
            }
        }
    }
}

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Instances,
    TryIt,
    None,
}

/// A whole page: head, navigation, `body`.
pub(crate) fn layout(
    dashboard: &Dashboard,
    session: &Session,
    title: &str,
    nav: Nav,
    body: Markup,
) -> Html<String> {
    let refresh_ms = dashboard.options.refresh_interval.as_millis();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · durable" }
                link rel="stylesheet" href=(crate::assets::CSS_PATH);
                script src=(crate::assets::JS_PATH) defer {}
            }
            body data-refresh-ms=(refresh_ms) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "durable" }
                    nav aria-label="Main" {
                        a href="/" aria-current=[(nav == Nav::Instances).then_some("page")] { "Instances" }
                        @if dashboard.options.try_it.is_some() {
                            a href="/try/phone-verification" aria-current=[(nav == Nav::TryIt).then_some("page")] { "Try phone verification" }
                        }
                    }
                    form.goto method="get" action="/instances" role="search" {
                        label for="goto-id" { "Go to instance" }
                        input #goto-id name="id" type="text" required placeholder="instance id" autocomplete="off";
                        button type="submit" { "Open" }
                    }
                    @if session.signed_in {
                        form.signout method="post" action="/sign-out" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    };
    Html(page.into_string())
}

/// The sign-in page (no session yet, so its own shell).
pub(crate) fn sign_in(token: &str, next: &str, flash: Option<Flash>) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · durable" }
                link rel="stylesheet" href=(crate::assets::CSS_PATH);
            }
            body {
                main #main .narrow {
                    h1 { "Sign in to durable" }
                    @if let Some(flash) = &flash { (flash.render()) }
                    form.card method="post" action="/sign-in" {
                        input type="hidden" name="token" value=(token);
                        input type="hidden" name="next" value=(next);
                        label for="key" { "System key" }
                        input #key name="key" type="password" required autocomplete="current-password" autofocus;
                        p.hint { "The key of the HTTP API: " code { "durable key" } " prints it, or it is in " code { "DURABLE_SYSTEM_KEY" } "." }
                        button.primary type="submit" { "Sign in" }
                    }
                }
            }
        }
    };
    Html(page.into_string())
}

/// A plain page for errors outside a session (and the body of refused requests).
pub(crate) fn error_response(status: StatusCode, message: &str) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (status.canonical_reason().unwrap_or("Error")) " · durable" }
                link rel="stylesheet" href=(crate::assets::CSS_PATH);
            }
            body {
                main #main .narrow {
                    h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                    p.flash.error role="alert" { (message) }
                    p { a href="/" { "Back to the instances" } }
                }
            }
        }
    };
    (status, Html(page.into_string())).into_response()
}

/// A panic in a handler becomes a 500 page; the server keeps running.
pub(crate) fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a dashboard handler panicked");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on the server; it has been logged.",
    )
}

/// A store or client error as a page message, without internal details.
pub(crate) fn client_error(e: &durable_runtime::client::Error) -> (StatusCode, String) {
    use durable_runtime::client::Error as E;
    match e {
        E::NotFound(_) => (StatusCode::NOT_FOUND, e.to_string()),
        E::AlreadyExists { .. } | E::InstanceFinished { .. } | E::Conflict(_) => {
            (StatusCode::CONFLICT, e.to_string())
        }
        E::UnknownOrchestrator { .. }
        | E::InvalidInstanceId(_)
        | E::InvalidEventName(_)
        | E::InvalidInput(_) => (StatusCode::BAD_REQUEST, e.to_string()),
        E::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, e.to_string()),
        E::Store(inner) => {
            tracing::warn!(error = %inner, "dashboard: store error");
            (StatusCode::SERVICE_UNAVAILABLE, "The store could not answer; try again shortly.".to_owned())
        }
        #[allow(unreachable_patterns)]
        _ => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// What must be escaped in a path segment (RFC 3986), plus `%`; ids keep `-`, `:`, `.` readable.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// What must be escaped in a query parameter value.
const QUERY: &percent_encoding::AsciiSet = &SEGMENT.add(b'&').add(b'=').add(b'+').add(b';');

/// Percent-encodes a query parameter value.
pub(crate) fn encode_query(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, QUERY).to_string()
}

/// Percent-encodes one path segment (instance ids may contain spaces, `%`, non-ASCII, …).
pub(crate) fn encode_segment(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, SEGMENT).to_string()
}

/// The page of an instance.
pub(crate) fn instance_href(id: &str) -> String {
    format!("/instances/{}", encode_segment(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_readable_in_links_and_round_trip() {
        assert_eq!(instance_href("dash-done:1.a"), "/instances/dash-done:1.a");
        assert_eq!(instance_href("a b%c#d"), "/instances/a%20b%25c%23d");
        assert_eq!(encode_query("a&b=c+d/e"), "a%26b%3Dc%2Bd%2Fe");
        let id = "ünï cödé?&%";
        let encoded = encode_segment(id);
        assert_eq!(percent_encoding::percent_decode_str(&encoded).decode_utf8().unwrap(), id);
    }
}
