//! The commands about one instance: start, status (and waiting), raise, terminate, suspend,
//! resume, rewind, restart.

use crate::args::{LifecycleArgs, RaiseArgs, RestartArgs, StartArgs, StatusArgs, TerminateArgs};
use crate::exit;
use crate::history;
use crate::output::{Out, note};
use crate::remote::{Api, CallError, Refusal, WEBHOOK, encode, instance_path, json_or_string, text};
use anyhow::{Result, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub(crate) async fn start(args: StartArgs) -> Result<u8> {
    let api = Api::new(&args.remote)?;
    let out = Out::new(&args.output, false);
    let mut path = format!("{WEBHOOK}/orchestrators/{}", encode(&args.name));
    if let Some(id) = &args.id {
        path.push('/');
        path.push_str(&encode(id));
    }
    let body = args.input.as_deref().map(|i| json_or_string(i, args.string));
    let reply = match api.call(Method::POST, &path, &[], &[], body).await {
        Ok(reply) => reply,
        Err(CallError::Refused(r)) if r.status == StatusCode::CONFLICT => {
            let id = args.id.as_deref().unwrap_or("?");
            bail!(
                "instance '{id}' already exists and has not finished: pick another --id, leave --id out \
                 for a new random one, or terminate it first (`durable terminate {id}`)"
            )
        }
        Err(CallError::Refused(r)) if r.kind == "UnknownOrchestrator" => {
            bail!("{}", r.message.trim_end_matches("; use one of the registered names"))
        }
        Err(CallError::Refused(r)) if r.kind == "InvalidInput" || r.kind == "InvalidJson" => {
            bail!("--input was refused: {}", r.message)
        }
        Err(CallError::Refused(r)) if r.kind == "InvalidInstanceId" => {
            bail!("--id was refused: {}", r.message)
        }
        Err(e) => return Err(api.explain(e, None)),
    };
    print_started(&out, "started", &args.name, &reply.body)?;
    Ok(exit::OK)
}

/// `started NAME as instance:` on stderr, the id alone on stdout (so `ID=$(durable start …)`
/// works), or the whole 202 body as JSON.
fn print_started(out: &Out, verb: &str, name: &str, body: &Value) -> Result<()> {
    if !out.text() {
        return out.json(body);
    }
    let id = body["id"].as_str().ok_or_else(|| anyhow!("the server's answer has no instance id: {body}"))?;
    note(&format!("{verb} {name}; follow it with `durable watch {id}`. Instance id:"));
    out.line(id)
}

pub(crate) async fn status(args: StatusArgs) -> Result<u8> {
    let api = Api::new(&args.remote)?;
    let out = Out::new(&args.output, args.wide);
    let (status, code) = if args.wait {
        wait(&api, &args.id, args.timeout, args.history, &out).await?
    } else {
        let s = get_status(&api, &args.id, args.history).await?;
        (s, exit::OK)
    };
    if out.text() {
        print_status(&out, &status)?;
        if args.history {
            history::print_table(&out, status["historyEvents"].as_array().map(Vec::as_slice).unwrap_or(&[]))?;
        }
    } else {
        out.json(&status)?;
    }
    if code == exit::TIMED_OUT {
        note(&format!(
            "{} did not finish within --timeout {} (it is {})",
            args.id,
            history::human_duration(args.timeout.unwrap_or_default()),
            text(&status["runtimeStatus"])
        ));
    }
    Ok(code)
}

/// The status body of `id`, with the history when asked.
pub(crate) async fn get_status(api: &Api, id: &str, history: bool) -> Result<Value> {
    let mut query = vec![];
    if history {
        query.push(("showHistory", "true".to_owned()));
        query.push(("showHistoryOutput", "true".to_owned()));
    }
    match api.get(&instance_path(id), &query).await {
        Ok(reply) => Ok(reply.body),
        Err(e) => Err(api.explain(e, Some(id))),
    }
}

/// Waits until `id` finishes or `timeout` passes; the last status and the exit code that says
/// how it ended. Polls the status (the HTTP API has no completion notification), 100 ms at
/// first, growing to 1 s.
async fn wait(
    api: &Api,
    id: &str,
    timeout: Option<Duration>,
    history: bool,
    out: &Out,
) -> Result<(Value, u8)> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut pause = Duration::from_millis(100);
    let mut told = false;
    loop {
        let status = get_status(api, id, false).await?;
        let code = exit::for_status(status["runtimeStatus"].as_str().unwrap_or(""));
        let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
        if code.is_some() || timed_out {
            let status = if history { get_status(api, id, true).await? } else { status };
            return Ok((status, code.unwrap_or(exit::TIMED_OUT)));
        }
        if out.text() && !told {
            note(&format!("waiting for {id} to finish (it is {})…", text(&status["runtimeStatus"])));
            told = true;
        }
        let mut sleep = pause;
        if let Some(d) = deadline {
            sleep = sleep.min(d.saturating_duration_since(Instant::now()));
        }
        tokio::time::sleep(sleep).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(1));
    }
}

/// The status as `Field  value` lines.
pub(crate) fn print_status(out: &Out, s: &Value) -> Result<()> {
    let status = text(&s["runtimeStatus"]);
    let mut fields: Vec<(&str, String)> = vec![
        ("Instance", text(&s["instanceId"])),
        ("Name", text(&s["name"])),
        ("Status", out.status(&status)),
        ("Created", history::human_time(&text(&s["createdTime"]), true)),
        ("Updated", history::human_time(&text(&s["lastUpdatedTime"]), true)),
    ];
    if let Some(input) = s.get("input") {
        fields.push(("Input", input.to_string()));
    }
    fields.push(("Output", s["output"].to_string()));
    if !s["customStatus"].is_null() {
        fields.push(("Custom", s["customStatus"].to_string()));
    }
    // Why the instance waits for another node (e.g. one that has its orchestrator).
    if let Some(reason) = s["stalled"]["reason"].as_str() {
        let since = history::human_time(&text(&s["stalled"]["since"]), true);
        fields.push(("Stalled", format!("{reason} (since {since})")));
    }
    for (name, value) in fields {
        let value = match out.width {
            // The status word may carry colour codes; it is short anyway.
            Some(w) if name != "Status" => crate::table::cut(&value, w.saturating_sub(10).max(10)),
            _ => value,
        };
        out.line(&format!("{name:<9} {value}"))?;
    }
    Ok(())
}

pub(crate) async fn raise(args: RaiseArgs) -> Result<u8> {
    let api = Api::new(&args.remote)?;
    let out = Out::new(&args.output, false);
    let data = args.data.as_deref().map_or_else(|| "null".to_owned(), |d| json_or_string(d, args.string));
    let path = format!("{}/raiseEvent/{}", instance_path(&args.id), encode(&args.event));
    match api.call(Method::POST, &path, &[], &[], Some(data)).await {
        Ok(_) => {}
        Err(CallError::Refused(r)) if r.status == StatusCode::GONE => {
            bail!(
                "{}: it no longer takes events; `durable status {}` shows how it ended",
                finished(&r, &args.id),
                args.id
            )
        }
        Err(CallError::Refused(r)) if r.status == StatusCode::BAD_REQUEST => {
            bail!("the event was refused: {}", r.message)
        }
        Err(e) => return Err(api.explain(e, Some(&args.id))),
    }
    if out.text() {
        out.line(&format!("raised {} on {}", args.event, args.id))?;
    } else {
        out.json(&json!({ "instanceId": args.id, "event": args.event }))?;
    }
    Ok(exit::OK)
}

/// The lifecycle verbs, as the API names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    Terminate,
    Suspend,
    Resume,
    Rewind,
}

impl Verb {
    fn path(self) -> &'static str {
        match self {
            Verb::Terminate => "terminate",
            Verb::Suspend => "suspend",
            Verb::Resume => "resume",
            Verb::Rewind => "rewind",
        }
    }
}

pub(crate) async fn lifecycle(verb: Verb, args: LifecycleArgs) -> Result<u8> {
    let api = Api::new(&args.remote)?;
    let out = Out::new(&args.output, false);
    request(&api, verb, &args.id, args.reason.as_deref()).await?;
    requested(&out, verb, &args.id)?;
    Ok(exit::OK)
}

pub(crate) async fn terminate(args: TerminateArgs) -> Result<u8> {
    let api = Api::new(&args.remote)?;
    let out = Out::new(&args.output, false);
    let id = args.id.as_str();
    request(&api, Verb::Terminate, id, args.reason.as_deref()).await?;
    if !args.wait {
        requested(&out, Verb::Terminate, id)?;
        return Ok(exit::OK);
    }
    let (status, code) = wait(&api, id, args.timeout, false, &out).await?;
    let now = text(&status["runtimeStatus"]);
    if !out.text() {
        out.json(&status)?;
    } else if code != exit::TIMED_OUT {
        out.line(&match now.as_str() {
            "Terminated" => format!("terminated {id}"),
            other => format!("{id} finished as {} before the termination took effect", out.status(other)),
        })?;
    }
    if code == exit::TIMED_OUT {
        note(&format!(
            "{id} has not stopped within --timeout {} (it is {now}); the termination is still pending",
            history::human_duration(args.timeout.unwrap_or_default())
        ));
        return Ok(exit::TIMED_OUT);
    }
    Ok(exit::OK)
}

/// Sends a lifecycle request; a refusal becomes advice.
async fn request(api: &Api, verb: Verb, id: &str, reason: Option<&str>) -> Result<()> {
    let query: Vec<(&str, String)> = reason.iter().map(|r| ("reason", (*r).to_owned())).collect();
    let path = format!("{}/{}", instance_path(id), verb.path());
    match api.call(Method::POST, &path, &query, &[], None).await {
        Ok(_) => Ok(()),
        Err(CallError::Refused(r)) => Err(lifecycle_refused(api, verb, id, r).await),
        Err(e) => Err(api.explain(e, Some(id))),
    }
}

/// "termination requested for ID", or its JSON form.
fn requested(out: &Out, verb: Verb, id: &str) -> Result<()> {
    if !out.text() {
        return out.json(&json!({ "instanceId": id, "requested": verb.path() }));
    }
    let done = match verb {
        Verb::Terminate => "termination requested",
        Verb::Suspend => "suspension requested",
        Verb::Resume => "resumption requested",
        Verb::Rewind => "rewind requested",
    };
    out.line(&format!("{done} for {id}"))
}

/// Advice for a refused lifecycle request, in terms of this command line.
async fn lifecycle_refused(api: &Api, verb: Verb, id: &str, r: Refusal) -> anyhow::Error {
    let status = r.status;
    match verb {
        _ if status == StatusCode::NOT_FOUND || status == StatusCode::UNAUTHORIZED => {
            api.explain(CallError::Refused(r), Some(id))
        }
        Verb::Rewind if status == StatusCode::NOT_IMPLEMENTED => anyhow!(
            "the server at {} cannot rewind instances (501); `durable restart {id}` runs it again from the start with the same input",
            api.base()
        ),
        Verb::Rewind
            if status == StatusCode::CONFLICT
                || status == StatusCode::PRECONDITION_FAILED
                || status == StatusCode::GONE =>
        {
            let now = current_status(api, id).await;
            anyhow!(
                "only a Failed instance can be rewound, and {id} is {now}; `durable restart {id}` runs it again from the start"
            )
        }
        Verb::Terminate if status == StatusCode::GONE => {
            anyhow!("{}: there is nothing to terminate", finished(&r, id))
        }
        Verb::Suspend if status == StatusCode::GONE => {
            anyhow!("{}: it cannot be suspended", finished(&r, id))
        }
        Verb::Resume if status == StatusCode::GONE => anyhow!("{}: it cannot be resumed", finished(&r, id)),
        Verb::Suspend if status == StatusCode::CONFLICT => {
            anyhow!("{id} is already suspended; `durable resume {id}` resumes it")
        }
        Verb::Resume if status == StatusCode::CONFLICT => {
            anyhow!(
                "{id} is {}, not suspended; only a suspended instance can be resumed",
                current_status(api, id).await
            )
        }
        _ => api.explain(CallError::Refused(r), Some(id)),
    }
}

/// "instance X has already finished (Completed)", from a 410's message or built.
fn finished(r: &Refusal, id: &str) -> String {
    if r.message.contains("finished") {
        r.message.split(';').next().unwrap_or(&r.message).to_owned()
    } else {
        format!("instance '{id}' has already finished")
    }
}

/// The runtime status of `id` for a message, or `in another state` when it cannot be read.
async fn current_status(api: &Api, id: &str) -> String {
    match api.get(&instance_path(id), &[("showInput", "false".to_owned())]).await {
        Ok(reply) => text(&reply.body["runtimeStatus"]),
        Err(_) => "not Failed".to_owned(),
    }
}

pub(crate) async fn restart(args: RestartArgs) -> Result<u8> {
    let api = Api::new(&args.remote)?;
    let out = Out::new(&args.output, false);
    let id = args.id.as_str();
    let query = vec![("restartWithNewInstanceId", (!args.same_id).to_string())];
    let path = format!("{}/restart", instance_path(id));
    let reply = match api.call(Method::POST, &path, &query, &[], None).await {
        Ok(reply) => reply,
        Err(CallError::Refused(r)) if r.status == StatusCode::CONFLICT && args.same_id => bail!(
            "{id} has not finished, so it cannot run again under the same id: terminate it first \
             (`durable terminate {id}`), or leave out --same-id to restart it under a new id"
        ),
        Err(CallError::Refused(r))
            if r.status == StatusCode::BAD_REQUEST && r.message.contains("does not match") =>
        {
            return Err(api.explain(
                CallError::Refused(Refusal {
                    status: StatusCode::NOT_FOUND,
                    kind: "InstanceNotFound".into(),
                    ..r
                }),
                Some(id),
            ));
        }
        Err(e) => return Err(api.explain(e, Some(id))),
    };
    print_started(&out, "restarted", id, &reply.body)?;
    Ok(exit::OK)
}
