//! The client commands: they talk to a server's HTTP API, like any other client would.

use crate::args::Remote;
use anyhow::{Context, Result, bail};
use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const WEBHOOK: &str = "/runtime/webhooks/durabletask";

/// An authenticated connection to a server.
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    pub json: bool,
}

/// A response: status, headers and parsed JSON body (`Value::Null` when empty).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Api {
    pub fn new(remote: &Remote) -> Result<Api> {
        let key = remote.key.clone().or_else(|| durable_server::keys::read_system_key(&remote.data_dir));
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api { http, base: remote.url.trim_end_matches('/').to_owned(), key, json: remote.json })
    }

    /// Sends a request; the key travels in the `x-functions-key` header, never in the URL.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<String>,
    ) -> Result<Reply> {
        let url = format!("{}{}", self.base, path);
        let mut request = self.http.request(method, &url).query(query);
        if let Some(key) = &self.key {
            request = request.header(durable_http::KEY_HEADER, key);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response =
            request.send().await.with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.context("cannot read the server's answer")?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_client_error() || status.is_server_error() {
            let message = body
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| body.to_string());
            let hint = if status == StatusCode::UNAUTHORIZED && self.key.is_none() {
                " (no key given: pass --key, set DURABLE_SYSTEM_KEY, or --data-dir of the server)"
            } else {
                ""
            };
            bail!("{} {}{hint}", status.as_u16(), message);
        }
        Ok(Reply { status, headers, body })
    }
}

fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON prints"));
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn check_json(what: &str, json: &str) -> Result<String> {
    serde_json::from_str::<Value>(json)
        .with_context(|| format!("{what} must be JSON, e.g. 42, \"text\" or {{\"a\": 1}} (quote strings)"))?;
    Ok(json.to_owned())
}

pub async fn start(api: &Api, name: &str, input: Option<&str>, id: Option<&str>) -> Result<()> {
    let mut path = format!("{WEBHOOK}/orchestrators/{}", encode(name));
    if let Some(id) = id {
        path.push('/');
        path.push_str(&encode(id));
    }
    let body = input.map(|i| check_json("--input", i)).transpose()?;
    let reply = api.call(Method::POST, &path, &[], body).await?;
    if api.json {
        print_json(&reply.body);
    } else {
        println!("started {} as instance {}", name, text(&reply.body["id"]));
    }
    Ok(())
}

pub async fn status(api: &Api, id: &str, history: bool) -> Result<()> {
    let mut query = vec![];
    if history {
        query.push(("showHistory", "true".to_owned()));
        query.push(("showHistoryOutput", "true".to_owned()));
    }
    let reply = api.call(Method::GET, &format!("{WEBHOOK}/instances/{}", encode(id)), &query, None).await?;
    if api.json {
        print_json(&reply.body);
        return Ok(());
    }
    let b = &reply.body;
    for field in [
        "instanceId",
        "name",
        "runtimeStatus",
        "input",
        "output",
        "customStatus",
        "createdTime",
        "lastUpdatedTime",
    ] {
        println!("{:<16} {}", format!("{field}:"), text(&b[field]));
    }
    if let Some(events) = b["historyEvents"].as_array() {
        let mut table = Table::new();
        table.load_style(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic);
        table.set_header(vec!["Timestamp", "EventType", "Name", "Details"]);
        for e in events {
            let name = e.get("FunctionName").or_else(|| e.get("Name")).map(text).unwrap_or_default();
            let details = ["Result", "Input", "Reason", "FireAt", "OrchestrationStatus"]
                .iter()
                .filter_map(|k| e.get(*k).map(|v| format!("{k}={}", text(v))))
                .collect::<Vec<_>>()
                .join(" ");
            table.add_row(vec![text(&e["Timestamp"]), text(&e["EventType"]), name, details]);
        }
        println!("{table}");
    }
    Ok(())
}

pub async fn raise(api: &Api, id: &str, event: &str, data: &str) -> Result<()> {
    let body = check_json("the event data", data)?;
    let path = format!("{WEBHOOK}/instances/{}/raiseEvent/{}", encode(id), encode(event));
    api.call(Method::POST, &path, &[], Some(body)).await?;
    if !api.json {
        println!("raised {event} on {id}");
    }
    Ok(())
}

pub async fn lifecycle(api: &Api, id: &str, verb: &str, reason: Option<&str>) -> Result<()> {
    let query: Vec<(&str, String)> = reason.map(|r| vec![("reason", r.to_owned())]).unwrap_or_default();
    api.call(Method::POST, &format!("{WEBHOOK}/instances/{}/{verb}", encode(id)), &query, None).await?;
    if !api.json {
        println!("{verb} requested for {id}");
    }
    Ok(())
}

pub struct ListArgs<'a> {
    pub statuses: &'a [String],
    pub prefix: Option<&'a str>,
    pub created_from: Option<&'a str>,
    pub created_to: Option<&'a str>,
    pub top: u32,
    pub all: bool,
}

pub async fn list(api: &Api, args: ListArgs<'_>) -> Result<()> {
    let mut query = vec![("top", args.top.to_string()), ("showInput", "false".to_owned())];
    if !args.statuses.is_empty() {
        query.push(("runtimeStatus", args.statuses.join(",")));
    }
    if let Some(p) = args.prefix {
        query.push(("instanceIdPrefix", p.to_owned()));
    }
    if let Some(t) = args.created_from {
        query.push(("createdTimeFrom", t.to_owned()));
    }
    if let Some(t) = args.created_to {
        query.push(("createdTimeTo", t.to_owned()));
    }
    let mut rows = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request =
            api.http.request(Method::GET, format!("{}{WEBHOOK}/instances", api.base)).query(&query);
        if let Some(key) = &api.key {
            request = request.header(durable_http::KEY_HEADER, key);
        }
        if let Some(t) = &token {
            request = request.header(durable_http::CONTINUATION_HEADER, t);
        }
        let response =
            request.send().await.with_context(|| format!("cannot reach the server at {}", api.base))?;
        let status = response.status();
        let next = response
            .headers()
            .get(durable_http::CONTINUATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && *v != "null")
            .map(str::to_owned);
        let body: Value = response.json().await.context("cannot read the server's answer")?;
        if !status.is_success() {
            bail!(
                "{} {}",
                status.as_u16(),
                body.get("message").map(text).unwrap_or_else(|| body.to_string())
            );
        }
        rows.extend(body.as_array().cloned().unwrap_or_default());
        match next {
            Some(t) if args.all => token = Some(t),
            _ => break,
        }
    }
    if api.json {
        print_json(&Value::Array(rows));
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(vec!["Instance", "Name", "Status", "Created", "Updated", "Output"]);
    for r in &rows {
        let mut output = text(&r["output"]);
        if output.chars().count() > 40 {
            output = output.chars().take(39).collect::<String>() + "…";
        }
        table.add_row(vec![
            text(&r["instanceId"]),
            text(&r["name"]),
            text(&r["runtimeStatus"]),
            text(&r["createdTime"]),
            text(&r["lastUpdatedTime"]),
            output,
        ]);
    }
    println!("{table}");
    eprintln!("{} instance(s)", rows.len());
    Ok(())
}

pub struct PurgeArgs<'a> {
    pub id: Option<&'a str>,
    pub force: bool,
    pub created_from: Option<&'a str>,
    pub created_to: Option<&'a str>,
    pub statuses: &'a [String],
}

pub async fn purge(api: &Api, args: PurgeArgs<'_>) -> Result<()> {
    let reply = match args.id {
        Some(id) => {
            let query = if args.force { vec![("force", "true".to_owned())] } else { vec![] };
            api.call(Method::DELETE, &format!("{WEBHOOK}/instances/{}", encode(id)), &query, None).await?
        }
        None => {
            let Some(from) = args.created_from else {
                bail!(
                    "purging by filter needs --created-from (e.g. --created-from 2026-01-01T00:00:00Z), or give an instance id"
                );
            };
            let mut query = vec![("createdTimeFrom", from.to_owned())];
            if let Some(to) = args.created_to {
                query.push(("createdTimeTo", to.to_owned()));
            }
            if !args.statuses.is_empty() {
                query.push(("runtimeStatus", args.statuses.join(",")));
            }
            if args.force {
                query.push(("force", "true".to_owned()));
            }
            api.call(Method::DELETE, &format!("{WEBHOOK}/instances"), &query, None).await?
        }
    };
    if api.json {
        print_json(&reply.body);
    } else {
        println!("purged {} instance(s)", text(&reply.body["instancesDeleted"]));
        // Unfinished instances are kept unless --force; the server says which and why.
        if let Some(message) = reply.body["message"].as_str() {
            eprintln!("{message}");
        }
    }
    let _ = (reply.status, reply.headers);
    Ok(())
}
