//! The instances page: counts per status, filters, one page of instances (newest first), and
//! the fragment that live refresh swaps in.

use super::{Flash, Nav, encode_query, instance_href, layout};
use crate::auth::Session;
use crate::{Dashboard, format};
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use durable_core::RuntimeStatus;
use durable_store::{Cursor, InstanceQuery, InstanceState, StatusCounts};
use maud::{Markup, html};
use serde::Deserialize;

/// Page sizes offered; the first is the default.
const PAGE_SIZES: [usize; 4] = [50, 20, 100, 200];

/// The query string of the instances page (every field optional, as forms send them).
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    prefix: String,
    /// Continuation: show instances older than this cursor.
    #[serde(default)]
    after: String,
    /// Show the page of instances just newer than this cursor.
    #[serde(default)]
    before: String,
    #[serde(default)]
    size: String,
}

impl Filters {
    fn status(&self) -> Result<Option<RuntimeStatus>, String> {
        let s = self.status.trim();
        if s.is_empty() {
            return Ok(None);
        }
        RuntimeStatus::parse(s).map(Some).ok_or_else(|| format!("'{}' is not a status", s.escape_debug()))
    }

    fn size(&self) -> usize {
        self.size.parse().ok().filter(|n| PAGE_SIZES.contains(n)).unwrap_or(PAGE_SIZES[0])
    }

    /// The store query of these filters (without paging).
    fn query(&self) -> Result<InstanceQuery, String> {
        Ok(InstanceQuery {
            statuses: self.status()?.into_iter().collect(),
            name: Some(self.name.trim().to_owned()).filter(|n| !n.is_empty()),
            created_from: format::parse_time(&self.from)?,
            created_to: format::parse_time(&self.to)?,
            instance_id_prefix: Some(self.prefix.clone()).filter(|p| !p.is_empty()),
            page_size: self.size(),
            continuation: None,
            include_input: false,
            newest_first: true,
        })
    }

    /// The query string of these filters, without paging, plus `extra`.
    fn href(&self, extra: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(&str, &str)> = [
            ("status", self.status.as_str()),
            ("name", self.name.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("prefix", self.prefix.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
        if self.size() != PAGE_SIZES[0] {
            pairs.push(("size", self.size.as_str()));
        }
        pairs.extend_from_slice(extra);
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", encode_query(v))).collect();
        if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) }
    }
}

/// One page of the list and where the neighbouring pages are.
struct Listing {
    instances: Vec<InstanceState>,
    newer: Option<String>,
    older: Option<String>,
}

fn cursor_of(i: &InstanceState) -> String {
    Cursor { created_at: i.created_at, instance_id: i.instance_id.clone() }.encode()
}

async fn list(dashboard: &Dashboard, filters: &Filters) -> Result<Listing, String> {
    let mut query = filters.query()?;
    let client = &dashboard.client;
    let failed = |e: durable_runtime::client::Error| super::client_error(&e).1;
    if !filters.before.is_empty() {
        // The page just newer than the cursor: walk forwards (oldest first) from it, then
        // turn the page around. Near the top, that page is simply the first one.
        query.newest_first = false;
        query.continuation = Some(filters.before.clone());
        let page = client.list(&query).await.map_err(failed)?;
        if page.instances.len() == query.page_size {
            let mut instances = page.instances;
            instances.reverse();
            let newer = page.continuation.is_some().then(|| cursor_of(&instances[0]));
            let older = instances.last().map(cursor_of);
            return Ok(Listing { instances, newer, older });
        }
        query.newest_first = true;
        query.continuation = None;
    } else if !filters.after.is_empty() {
        query.continuation = Some(filters.after.clone());
    }
    let page = client.list(&query).await.map_err(failed)?;
    let newer = if query.continuation.is_some() { page.instances.first().map(cursor_of) } else { None };
    Ok(Listing { instances: page.instances, newer, older: page.continuation })
}

/// `GET /instances?id=…`: the "go to instance" box.
pub(crate) async fn goto(Query(q): Query<GotoQuery>) -> Response {
    let id = q.id.trim();
    if id.is_empty() {
        return Redirect::to("/").into_response();
    }
    Redirect::to(&instance_href(id)).into_response()
}

#[derive(Deserialize)]
pub(crate) struct GotoQuery {
    #[serde(default)]
    id: String,
}

/// `GET /`: the instances page.
pub(crate) async fn page(
    State(dashboard): State<Dashboard>,
    Extension(session): Extension<Session>,
    Query(filters): Query<Filters>,
) -> Response {
    let (live, status) = live_content(&dashboard, &filters).await;
    let body = html! {
        h1 { "Instances" }
        (filter_form(&dashboard, &filters))
        div.livebar {
            button.pause type="button" aria-pressed="false" data-live-toggle { "Pause live updates" }
            span.updated aria-live="off" data-live-stamp {}
        }
        div #live data-live-src=(format!("/live/instances{}", live_href(&filters))) { (live) }
    };
    (status, layout(&dashboard, &session, "Instances", Nav::Instances, body)).into_response()
}

/// `GET /live/instances`: the counts, the table and the pager, for live refresh.
pub(crate) async fn live(State(dashboard): State<Dashboard>, Query(filters): Query<Filters>) -> Response {
    let (live, status) = live_content(&dashboard, &filters).await;
    (status, Html(live.into_string())).into_response()
}

/// The live source keeps the page's cursors: a refresh shows the same page, updated.
fn live_href(filters: &Filters) -> String {
    let mut extra = Vec::new();
    if !filters.after.is_empty() {
        extra.push(("after", filters.after.as_str()));
    }
    if !filters.before.is_empty() {
        extra.push(("before", filters.before.as_str()));
    }
    filters.href(&extra)
}

async fn live_content(dashboard: &Dashboard, filters: &Filters) -> (Markup, StatusCode) {
    let counts = dashboard.store.count_instances().await;
    if let Err(e) = &counts {
        tracing::warn!(error = %e, "dashboard: counting instances failed");
    }
    let listing = list(dashboard, filters).await;
    let status = if listing.is_err() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let markup = html! {
        @match &counts {
            Ok(counts) => (counts_bar(counts, filters)),
            Err(_) => (Flash::error("The counts are not available right now.").render()),
        }
        @match &listing {
            Ok(listing) => (table(listing, filters)),
            Err(message) => (Flash::error(message.clone()).render()),
        }
    };
    (markup, status)
}

fn counts_bar(counts: &StatusCounts, filters: &Filters) -> Markup {
    let current = filters.status().ok().flatten();
    html! {
        section.counts aria-label="Instances per status" {
            a.count.total href="/" aria-current=[current.is_none().then_some("true")] {
                span.n data-count="Total" { (counts.total()) }
                span.label { "All" }
            }
            @for status in RuntimeStatus::ALL {
                @let n = counts.get(status);
                @if n > 0 || matches!(status, RuntimeStatus::Running | RuntimeStatus::Completed | RuntimeStatus::Failed | RuntimeStatus::Pending) {
                    a class=(format!("count s-{}", status.as_str().to_lowercase()))
                        href=(format!("/?status={}", status.as_str()))
                        aria-current=[(current == Some(status)).then_some("true")] {
                        span.n data-count=(status.as_str()) { (n) }
                        span.label { (status.as_str()) }
                    }
                }
            }
        }
    }
}

fn filter_form(dashboard: &Dashboard, filters: &Filters) -> Markup {
    let status = filters.status().ok().flatten();
    let _ = dashboard;
    html! {
        form.filters method="get" action="/" aria-label="Filter instances" {
            div.field {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" selected[status.is_none()] { "Any" }
                    @for s in RuntimeStatus::ALL {
                        option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) }
                    }
                }
            }
            div.field {
                label for="f-name" { "Orchestrator" }
                input #f-name name="name" type="text" value=(filters.name) placeholder="any name";
            }
            div.field {
                label for="f-prefix" { "Id starts with" }
                input #f-prefix name="prefix" type="text" value=(filters.prefix) autocomplete="off";
            }
            div.field {
                label for="f-from" { "Created from (UTC)" }
                input #f-from name="from" type="text" value=(filters.from) placeholder="2026-03-01T12:00";
            }
            div.field {
                label for="f-to" { "Created to (UTC)" }
                input #f-to name="to" type="text" value=(filters.to) placeholder="2026-03-01T18:00";
            }
            div.field {
                label for="f-size" { "Per page" }
                select #f-size name="size" {
                    @for n in PAGE_SIZES {
                        option value=(n) selected[filters.size() == n] { (n) }
                    }
                }
            }
            div.field.buttons {
                button.primary type="submit" { "Filter" }
                a.button href="/" { "Clear" }
            }
        }
    }
}

fn table(listing: &Listing, filters: &Filters) -> Markup {
    html! {
        @if listing.instances.is_empty() {
            p.empty { "No instances match." }
        } @else {
            table.instances {
                caption.visually-hidden { "Instances, newest first" }
                thead {
                    tr {
                        th scope="col" { "Instance" }
                        th scope="col" { "Orchestrator" }
                        th scope="col" { "Status" }
                        th scope="col" { "Created (UTC)" }
                        th scope="col" { "Last updated" }
                    }
                }
                tbody {
                    @for i in &listing.instances {
                        tr {
                            td.id { a href=(instance_href(&i.instance_id)) { (i.instance_id) } }
                            td { (i.name) }
                            td { (status_badge(i.status)) }
                            td { time datetime=(format::iso(i.created_at)) { (format::time(i.created_at)) } }
                            td { time datetime=(format::iso(i.last_updated_at)) { (format::time(i.last_updated_at)) } }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if listing.newer.is_some() || !filters.after.is_empty() || !filters.before.is_empty() {
                a href=(format!("/{}", filters.href(&[]))) { "⇤ Newest" }
            }
            @if let Some(newer) = &listing.newer {
                a rel="prev" href=(format!("/{}", filters.href(&[("before", newer)]))) { "← Newer" }
            }
            @if let Some(older) = &listing.older {
                a rel="next" href=(format!("/{}", filters.href(&[("after", older)]))) { "Older →" }
            }
        }
    }
}

/// A status with its colour class.
pub(crate) fn status_badge(status: RuntimeStatus) -> Markup {
    html! { span class=(format!("badge s-{}", status.as_str().to_lowercase())) { (status.as_str()) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_turn_into_a_query_and_back_into_links() {
        let f = Filters {
            status: "Running".into(),
            name: " E4 ".into(),
            prefix: "ab c".into(),
            from: "2026-03-01".into(),
            size: "100".into(),
            ..Default::default()
        };
        let q = f.query().unwrap();
        assert_eq!(q.statuses, [RuntimeStatus::Running]);
        assert_eq!(q.name.as_deref(), Some("E4"));
        assert_eq!(q.instance_id_prefix.as_deref(), Some("ab c"));
        assert_eq!(q.page_size, 100);
        assert!(q.newest_first && !q.include_input);
        assert_eq!(
            f.href(&[("after", "x")]),
            "?status=Running&name=%20E4%20&from=2026-03-01&prefix=ab%20c&size=100&after=x"
        );
        assert!(Filters { status: "Bogus".into(), ..Default::default() }.query().is_err());
        assert!(Filters { to: "tomorrow".into(), ..Default::default() }.query().is_err());
        assert_eq!(Filters { size: "7".into(), ..Default::default() }.size(), 50, "only offered sizes");
    }
}
