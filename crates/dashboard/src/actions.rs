//! Management actions on an instance: raise event, terminate, suspend, resume, rewind, restart,
//! purge.
//!
//! Each action is a form inside a disclosure: opening it and pressing its button are the two
//! steps of the confirmation, with or without JavaScript. The script submits the form in the
//! background (the request says so with `x-dashboard-fetch: 1`) and shows the answer, a small
//! fragment, in place; without the script the answer is the whole page with the message.

use crate::Dashboard;
use crate::auth::Session;
use crate::pages::{self, Flash, instance_href};
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use durable_core::{Payload, RuntimeStatus};
use durable_store::InstanceState;
use maud::{Markup, html};
use serde::Deserialize;

/// Header set by the dashboard script when it submits a form in the background.
pub(crate) const FETCH_HEADER: &str = "x-dashboard-fetch";

/// Every action's form fields (each action reads the ones it needs).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ActionForm {
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    data: String,
    #[serde(default)]
    new_id: Option<String>,
    #[serde(default)]
    force: Option<String>,
}

/// `POST /instances/{id}/actions/{action}`.
pub(crate) async fn run(
    State(dashboard): State<Dashboard>,
    Extension(session): Extension<Session>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused;
    }
    let (status, flash) = match perform(&dashboard, &id, &action, &form).await {
        Ok(flash) => (StatusCode::OK, flash),
        Err((status, message)) => (status, Flash::error(message)),
    };
    if headers.get(FETCH_HEADER).is_some() {
        return (status, Html(flash.render().into_string())).into_response();
    }
    pages::instance::render(&dashboard, &session, &id, Some(flash), status).await
}

fn reason(form: &ActionForm) -> Option<&str> {
    Some(form.reason.trim()).filter(|r| !r.is_empty())
}

async fn perform(
    dashboard: &Dashboard,
    id: &str,
    action: &str,
    form: &ActionForm,
) -> Result<Flash, (StatusCode, String)> {
    let client = &dashboard.client;
    let failed = |e: durable_runtime::client::Error| pages::client_error(&e);
    match action {
        "raise-event" => {
            let name = form.event.trim();
            if name.is_empty() {
                return Err((StatusCode::BAD_REQUEST, "Give the event a name.".into()));
            }
            let data = parse_event_data(&form.data).map_err(|m| (StatusCode::BAD_REQUEST, m))?;
            client.raise_event_raw(id, name, data).await.map_err(failed)?;
            // The data is not echoed: it may be an answer to a challenge.
            Ok(Flash::ok(format!("Event '{name}' raised.")))
        }
        "terminate" => {
            client.terminate(id, reason(form)).await.map_err(failed)?;
            Ok(Flash::ok("Termination requested: the instance stops at its next turn."))
        }
        "suspend" => {
            client.suspend(id, reason(form)).await.map_err(failed)?;
            Ok(Flash::ok("Suspension requested: events are kept until the instance is resumed."))
        }
        "resume" => {
            client.resume(id, reason(form)).await.map_err(failed)?;
            Ok(Flash::ok("Resume requested."))
        }
        "rewind" => {
            client.rewind(id, reason(form)).await.map_err(failed)?;
            Ok(Flash::ok("Rewind requested: the failed work runs again; what succeeded is kept."))
        }
        "restart" => {
            let new_id = form.new_id.is_some();
            let started = client.restart(id, new_id).await.map_err(failed)?;
            Ok(if new_id {
                Flash::ok("Restarted as a new instance:").with_link(instance_href(&started), started)
            } else {
                Flash::ok("Restarted under the same id with the original input.")
            })
        }
        "purge" => {
            let n = client.purge(id, form.force.is_some()).await.map_err(failed)?;
            Ok(Flash::ok(format!("Purged {n} instance(s) with their history."))
                .with_link("/".into(), "Back to the instances"))
        }
        _ => Err((StatusCode::NOT_FOUND, format!("There is no action '{}'.", action.escape_debug()))),
    }
}

/// Event data as typed in the form: empty means no data; anything else must be JSON.
pub(crate) fn parse_event_data(text: &str) -> Result<Option<Payload>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    Payload::from_json(text)
        .map(Some)
        .map_err(|e| format!("The event data is not valid JSON ({e}). Strings need quotes, e.g. \"1234\"."))
}

/// The actions that make sense for the instance's status.
pub(crate) fn panel(dashboard: &Dashboard, session: &Session, state: &InstanceState) -> Markup {
    let id = &state.instance_id;
    let base = format!("{}/actions", instance_href(id));
    let terminal = state.status.is_terminal();
    let suspended = state.status == RuntimeStatus::Suspended;
    let csrf = html! { input type="hidden" name="csrf" value=(session.csrf); };
    html! {
        section.actions aria-labelledby="actions-h" {
            h2 #actions-h { "Actions" }
            div.action-list {
                @if !terminal {
                    details.action data-action="raise-event" {
                        summary { "Raise event…" }
                        form method="post" action=(format!("{base}/raise-event")) data-confirm data-clear {
                            (csrf)
                            label for="ev-name" { "Event name" }
                            input #ev-name name="event" type="text" required list="ev-names" autocomplete="off";
                            datalist #ev-names {
                                @for name in &dashboard.options.event_names { option value=(name) {} }
                            }
                            label for="ev-data" { "Data (JSON; empty for none)" }
                            textarea #ev-data name="data" rows="4" spellcheck="false" data-json
                                aria-describedby="ev-data-msg" {}
                            p #ev-data-msg .hint data-json-msg aria-live="polite" { "e.g. " code { "\"1234\"" } ", " code { "{\"approved\": true}" } }
                            button.primary type="submit" { "Raise event" }
                        }
                    }
                    details.action data-action="terminate" {
                        summary { "Terminate…" }
                        form method="post" action=(format!("{base}/terminate")) data-confirm {
                            (csrf)
                            label for="t-reason" { "Reason (optional)" }
                            input #t-reason name="reason" type="text";
                            p.hint { "Running sub-orchestrations are terminated too. This cannot be undone." }
                            button.danger type="submit" { "Terminate instance" }
                        }
                    }
                    @if suspended {
                        details.action data-action="resume" {
                            summary { "Resume…" }
                            form method="post" action=(format!("{base}/resume")) data-confirm {
                                (csrf)
                                label for="r-reason" { "Reason (optional)" }
                                input #r-reason name="reason" type="text";
                                button.primary type="submit" { "Resume instance" }
                            }
                        }
                    } @else {
                        details.action data-action="suspend" {
                            summary { "Suspend…" }
                            form method="post" action=(format!("{base}/suspend")) data-confirm {
                                (csrf)
                                label for="s-reason" { "Reason (optional)" }
                                input #s-reason name="reason" type="text";
                                p.hint { "Events are kept and delivered after it is resumed." }
                                button.primary type="submit" { "Suspend instance" }
                            }
                        }
                    }
                }
                @if state.status == RuntimeStatus::Failed {
                    details.action data-action="rewind" {
                        summary { "Rewind…" }
                        form method="post" action=(format!("{base}/rewind")) data-confirm {
                            (csrf)
                            label for="rw-reason" { "Reason (optional)" }
                            input #rw-reason name="reason" type="text";
                            p.hint { "Runs the failed activities and sub-orchestrations again and continues from there; what succeeded is not run again." }
                            button.primary type="submit" { "Rewind instance" }
                        }
                    }
                }
                details.action data-action="restart" {
                    summary { "Restart…" }
                    form method="post" action=(format!("{base}/restart")) data-confirm {
                        (csrf)
                        div.check {
                            input #rs-new name="new_id" type="checkbox" value="yes" checked[!terminal];
                            label for="rs-new" { "Under a new instance id (otherwise the instance must have finished)" }
                        }
                        button.primary type="submit" { "Restart with the original input" }
                    }
                }
                details.action data-action="purge" {
                    summary { "Purge…" }
                    form method="post" action=(format!("{base}/purge")) data-confirm {
                        (csrf)
                        @if !terminal {
                            div.check {
                                input #p-force name="force" type="checkbox" value="yes" required;
                                label for="p-force" { "Yes, purge although it has not finished" }
                            }
                        }
                        p.hint { "Deletes the instance, its history and its sub-orchestrations. This cannot be undone." }
                        button.danger type="submit" { "Purge instance" }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_data_is_strict_json_or_nothing() {
        assert_eq!(parse_event_data("  ").unwrap(), None);
        assert_eq!(parse_event_data(" \"0042\" ").unwrap().unwrap().as_str(), "\"0042\"");
        assert!(parse_event_data("0042").unwrap_err().contains("not valid JSON"));
        assert!(parse_event_data("{oops").is_err());
    }
}
