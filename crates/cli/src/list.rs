//! `durable list` and `durable purge`: instances by filter.

use crate::args::{ListArgs, PurgeArgs, StatusArg};
use crate::exit;
use crate::history::human_time;
use crate::output::{Out, note, status_style};
use crate::remote::{Api, CallError, WEBHOOK, cli_words, instance_path, text};
use crate::table::{Cell, Column, Table};
use anyhow::{Result, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::IsTerminal;

/// The API's largest page.
const MAX_PAGE: usize = 1000;

/// What to list.
struct Filter<'a> {
    statuses: Vec<&'static str>,
    prefix: Option<&'a str>,
    created_from: Option<&'a str>,
    created_to: Option<&'a str>,
}

impl Filter<'_> {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("showInput", "false".to_owned())];
        if !self.statuses.is_empty() {
            query.push(("runtimeStatus", self.statuses.join(",")));
        }
        if let Some(p) = self.prefix {
            query.push(("instanceIdPrefix", p.to_owned()));
        }
        if let Some(t) = self.created_from {
            query.push(("createdTimeFrom", t.to_owned()));
        }
        if let Some(t) = self.created_to {
            query.push(("createdTimeTo", t.to_owned()));
        }
        query
    }
}

/// The instances matching `filter`, following continuation tokens, at most `limit` (`None`:
/// all); `true` when there are more than `limit`.
async fn fetch(api: &Api, filter: &Filter<'_>, limit: Option<usize>) -> Result<(Vec<Value>, bool)> {
    let mut rows = Vec::new();
    let mut token: Option<String> = None;
    loop {
        // One more than asked for tells whether there are more.
        let want = limit.map_or(MAX_PAGE, |l| (l + 1 - rows.len()).min(MAX_PAGE));
        let mut query = filter.query();
        query.push(("top", want.to_string()));
        let headers: Vec<(&str, String)> =
            token.iter().map(|t| (durable_http::CONTINUATION_HEADER, t.clone())).collect();
        let reply = api
            .call(Method::GET, &format!("{WEBHOOK}/instances"), &query, &headers, None)
            .await
            .map_err(|e| api.explain(e, None))?;
        rows.extend(reply.body.as_array().cloned().unwrap_or_default());
        token = reply
            .headers
            .get(durable_http::CONTINUATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && *v != "null")
            .map(str::to_owned);
        if token.is_none() || limit.is_some_and(|l| rows.len() > l) {
            break;
        }
    }
    let more = limit.is_some_and(|l| rows.len() > l);
    if let Some(l) = limit {
        rows.truncate(l);
    }
    Ok((rows, more))
}

fn statuses(args: &[StatusArg]) -> Vec<&'static str> {
    args.iter().map(|s| s.as_str()).collect()
}

pub(crate) async fn list(args: ListArgs) -> Result<u8> {
    let api = Api::new(&args.remote)?;
    let out = Out::new(&args.output, args.wide);
    let filter = Filter {
        statuses: statuses(&args.filter.statuses),
        prefix: args.filter.prefix.as_deref(),
        created_from: args.filter.created_from.as_deref(),
        created_to: args.filter.created_to.as_deref(),
    };
    let limit = (!args.all).then_some(args.limit as usize);
    let (rows, more) = fetch(&api, &filter, limit).await?;
    if !out.text() {
        out.json(&Value::Array(rows.clone()))?;
    } else if rows.is_empty() {
        note("no instances match");
    } else {
        out.table(&instance_table(&rows))?;
    }
    if more {
        note(&format!(
            "showing the first {}; there are more: raise --limit or pass --all",
            count(rows.len())
        ));
    } else if out.text() && !rows.is_empty() {
        note(&count(rows.len()));
    }
    Ok(exit::OK)
}

/// Instances as a table: ids whole, the rest fitted.
fn instance_table(rows: &[Value]) -> Table {
    let mut table = Table::new(vec![
        Column::fixed("INSTANCE"),
        Column::flexible("NAME", 10),
        Column::fixed("STATUS"),
        Column::fixed("CREATED (UTC)").optional(3),
        Column::fixed("UPDATED (UTC)").optional(1),
        Column::flexible("OUTPUT", 6).optional(2),
    ]);
    for r in rows {
        let status = text(&r["runtimeStatus"]);
        let style = status_style(&status);
        table.row(vec![
            text(&r["instanceId"]).into(),
            text(&r["name"]).into(),
            Cell { text: status, style },
            human_time(&text(&r["createdTime"]), false).into(),
            human_time(&text(&r["lastUpdatedTime"]), false).into(),
            r["output"].to_string().into(),
        ]);
    }
    table
}

/// Statuses a filter purge takes when none are given (the API's default too).
const FINISHED: [&str; 3] = ["Completed", "Failed", "Terminated"];
/// The API needs a start time; "since the beginning" when none is given.
const EPOCH: &str = "1970-01-01T00:00:00Z";

pub(crate) async fn purge(args: PurgeArgs) -> Result<u8> {
    let api = Api::new(&args.remote)?;
    let out = Out::new(&args.output, args.wide);
    match args.id.as_deref() {
        Some(id) => purge_one(&api, &out, id, args.force).await,
        None => purge_filtered(&api, &out, &args).await,
    }
}

async fn purge_one(api: &Api, out: &Out, id: &str, force: bool) -> Result<u8> {
    let query = if force { vec![("force", "true".to_owned())] } else { vec![] };
    let unfinished = || {
        anyhow::anyhow!(
            "{id} has not finished, so it was not purged: terminate it first (`durable terminate {id}`), \
             or pass --force to delete it while it runs"
        )
    };
    let reply = match api.call(Method::DELETE, &instance_path(id), &query, &[], None).await {
        // Servers keep an unfinished instance and say so with 0 deleted (older ones: 409).
        Ok(reply) if reply.body["instancesDeleted"].as_u64() == Some(0) => return Err(unfinished()),
        Ok(reply) => reply,
        Err(CallError::Refused(r)) if r.status == StatusCode::CONFLICT => return Err(unfinished()),
        Err(e) => return Err(api.explain(e, Some(id))),
    };
    if out.text() {
        out.line(&format!("purged {id}"))?;
    } else {
        out.json(&reply.body)?;
    }
    Ok(exit::OK)
}

async fn purge_filtered(api: &Api, out: &Out, args: &PurgeArgs) -> Result<u8> {
    if args.statuses.is_empty() && args.created_from.is_none() && args.created_to.is_none() {
        bail!(
            "give an instance id, or filters (--status, --created-from, --created-to) to purge \
             every finished instance they match; add --dry-run to see what would go"
        );
    }
    let statuses = if args.statuses.is_empty() { FINISHED.to_vec() } else { statuses(&args.statuses) };
    let unfinished: Vec<&str> = statuses.iter().copied().filter(|s| !FINISHED.contains(s)).collect();
    if !unfinished.is_empty() && !args.force {
        bail!(
            "{} instances have not finished: pass --force to delete them while they run, or terminate them first",
            unfinished.join(" and ")
        );
    }
    let created_from = args.created_from.as_deref().unwrap_or(EPOCH);
    let filter = Filter {
        statuses: statuses.clone(),
        prefix: None,
        created_from: Some(created_from),
        created_to: args.created_to.as_deref(),
    };
    let (rows, _) = fetch(api, &filter, None).await?;
    let what = describe_filter(&filter, args.created_from.is_some());
    if args.dry_run {
        if !out.text() {
            return out.json(&Value::Array(rows)).map(|()| exit::OK);
        }
        if !rows.is_empty() {
            out.table(&instance_table(&rows))?;
        }
        note(&format!(
            "{} ({what}) would be purged; this was a dry run, nothing was deleted",
            count(rows.len())
        ));
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        note(&format!("no instances match ({what}): nothing to purge"));
        if !out.text() {
            out.json(&json!({ "instancesDeleted": 0 }))?;
        }
        return Ok(exit::OK);
    }
    let action = format!("purge {} ({what}) and their history", count(rows.len()));
    if !args.yes && !confirm(&action).await? {
        bail!("nothing was purged")
    }
    let mut query = filter.query();
    query.retain(|(k, _)| *k != "showInput");
    if args.force {
        query.push(("force", "true".to_owned()));
    }
    let deleted = match api.call(Method::DELETE, &format!("{WEBHOOK}/instances"), &query, &[], None).await {
        Ok(reply) => {
            // What the server left alone, and why (unfinished instances without --force).
            if let Some(message) = reply.body["message"].as_str() {
                note(&cli_words(message));
            }
            reply.body["instancesDeleted"].as_u64().unwrap_or(0)
        }
        // Nothing matched any more (purged meanwhile).
        Err(CallError::Refused(r)) if r.status == StatusCode::NOT_FOUND && r.kind != "Unauthorized" => 0,
        Err(e) => return Err(api.explain(e, None)),
    };
    if out.text() {
        out.line(&format!("purged {}", count(deleted as usize)))?;
    } else {
        out.json(&json!({ "instancesDeleted": deleted }))?;
    }
    Ok(exit::OK)
}

fn count(n: usize) -> String {
    format!("{n} instance{}", if n == 1 { "" } else { "s" })
}

/// "Completed/Failed/Terminated, created up to …", for messages.
fn describe_filter(filter: &Filter<'_>, from_given: bool) -> String {
    let statuses = filter.statuses.join("/");
    match (filter.created_from.filter(|_| from_given), filter.created_to) {
        (Some(from), Some(to)) => format!("{statuses}, created from {from} to {to}"),
        (Some(from), None) => format!("{statuses}, created from {from}"),
        (None, Some(to)) => format!("{statuses}, created up to {to}"),
        (None, None) => statuses,
    }
}

/// Asks whether to do `action` on the terminal; without one (a script, a pipe) refuses and
/// says how to confirm.
async fn confirm(action: &str) -> Result<bool> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        bail!(
            "this would {action}; not on a terminal to ask: pass --yes to confirm, or --dry-run to list them"
        );
    }
    let mut question = action.to_owned();
    question[..1].make_ascii_uppercase();
    note(&format!("{question}? [y/N] "));
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await??;
    Ok(is_yes(&answer))
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_confirms() {
        assert!(is_yes("y\n") && is_yes("YES") && is_yes(" yes "));
        assert!(!is_yes("") && !is_yes("\n") && !is_yes("n") && !is_yes("yep"));
    }

    #[test]
    fn filters_read_as_sentences() {
        let f = Filter {
            statuses: vec!["Completed", "Failed", "Terminated"],
            prefix: None,
            created_from: Some(EPOCH),
            created_to: Some("2026-01-01T00:00:00Z"),
        };
        assert_eq!(
            describe_filter(&f, false),
            "Completed/Failed/Terminated, created up to 2026-01-01T00:00:00Z"
        );
        let f = Filter { created_from: Some("2025-01-01T00:00:00Z"), ..f };
        assert_eq!(
            describe_filter(&f, true),
            "Completed/Failed/Terminated, created from 2025-01-01T00:00:00Z to 2026-01-01T00:00:00Z"
        );
    }
}
