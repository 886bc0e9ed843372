//! Commands that read the server's data directory or the user's config, not the HTTP API:
//! `outbox`, `key`, `login`/`logout`, `completions`.

use crate::args::{CompletionsArgs, KeyArgs, LoginArgs, OutboxArgs};
use crate::config::{ClientConfig, config_path, write_config};
use crate::exit;
use crate::history::{human_duration, human_time};
use crate::output::{Out, note};
use crate::remote::{Api, WEBHOOK};
use crate::table::{Column, Table};
use anyhow::{Context, Result, anyhow, bail};
use durable_phone_verification::{DevOutbox, OutboxMessage};
use std::io::Write;
use std::time::{Duration, Instant};

/// How often `outbox --wait` looks at the file (it is written by another process).
const OUTBOX_POLL: Duration = Duration::from_millis(100);

pub(crate) async fn outbox(args: OutboxArgs) -> Result<u8> {
    let dir = &args.data_dir;
    if !dir.is_dir() {
        bail!(
            "no data directory {}: run this where `durable serve` keeps its data, or pass --data-dir \
             (or DURABLE_DATA_DIR) with the server's --data-dir",
            dir.display()
        );
    }
    let deadline = args.wait.map(|w| Instant::now() + w);
    let mut messages = loop {
        let messages: Vec<OutboxMessage> = DevOutbox::read(dir)
            .with_context(|| format!("cannot read the outbox in {}", dir.display()))?
            .into_iter()
            .filter(|m| args.to.as_deref().is_none_or(|to| m.to == to))
            .filter(|m| args.instance.as_deref().is_none_or(|id| instance_of(m) == id))
            .collect();
        match deadline {
            Some(d) if messages.is_empty() && Instant::now() < d => tokio::time::sleep(OUTBOX_POLL).await,
            _ => break messages,
        }
    };
    if messages.is_empty() && (args.code || args.wait.is_some()) {
        let which = match (&args.instance, &args.to) {
            (Some(id), _) => format!(" from instance {id}"),
            (None, Some(to)) => format!(" to {to}"),
            _ => String::new(),
        };
        let waited = args.wait.map(|w| format!(" within {}", human_duration(w))).unwrap_or_default();
        bail!(
            "no SMS{which} in {}{waited}: the outbox only fills when the server runs with this \
             --data-dir and without Twilio settings; `durable status ID --history` shows whether \
             the SMS activity ran{}",
            dir.join(DevOutbox::FILE_NAME).display(),
            if args.wait.is_none() { " (--wait waits for it)" } else { "" }
        );
    }
    if args.last || args.code {
        messages = messages.split_off(messages.len().saturating_sub(1));
    }
    if args.code {
        let message = &messages[0];
        let code = code_in(&message.body)
            .ok_or_else(|| anyhow!("the newest message has no code: {:?}", message.body))?;
        Out::plain().line(code)?;
        return Ok(exit::OK);
    }
    let out = Out::new(&args.output, args.wide);
    if !out.text() {
        return out.json(&serde_json::to_value(&messages)?).map(|()| exit::OK);
    }
    if messages.is_empty() {
        note(&format!("the development outbox in {} is empty", dir.display()));
        return Ok(exit::OK);
    }
    let mut table = Table::new(vec![
        Column::fixed("SENT (UTC)"),
        Column::fixed("TO"),
        Column::fixed("INSTANCE").optional(1),
        Column::flexible("MESSAGE", 12),
    ]);
    for m in &messages {
        table.row(vec![
            human_time(&m.sent_at, false).into(),
            m.to.as_str().into(),
            instance_of(m).into(),
            m.body.as_str().into(),
        ]);
    }
    out.table(&table)?;
    Ok(exit::OK)
}

/// The instance that sent a message: its reference is the activity's idempotency key,
/// `instance:execution:task`.
fn instance_of(m: &OutboxMessage) -> &str {
    let mut parts = m.reference.rsplitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(instance)) => instance,
        _ => &m.reference,
    }
}

/// The code in an SMS: its last run of at least 4 digits ("Your verification code is 0042").
fn code_in(body: &str) -> Option<&str> {
    body.split(|c: char| !c.is_ascii_digit()).rfind(|run| run.len() >= 4)
}

pub(crate) fn key(args: KeyArgs) -> Result<u8> {
    let dir = &args.data_dir;
    let path = durable_server::keys::system_key_path(dir);
    if !path.exists() && !args.create {
        bail!(
            "no system key in {}: `durable serve` creates it there on its first start (run it \
             with --data-dir {}), or `durable key --create` creates it now; a server started with \
             DURABLE_SYSTEM_KEY uses that value instead",
            path.display(),
            dir.display()
        );
    }
    if !path.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let existed = path.exists();
    let key = durable_server::keys::load_or_create_system_key(dir)?;
    if !existed {
        note(&format!("created {}", path.display()));
    }
    Out::plain().line(&key)?;
    Ok(exit::OK)
}

pub(crate) async fn login(args: LoginArgs) -> Result<u8> {
    let api = Api::new(&args.remote)?;
    // Only a URL and key that work are saved.
    api.get(&format!("{WEBHOOK}/instances"), &[("top", "1".to_owned()), ("showInput", "false".to_owned())])
        .await
        .map_err(|e| api.explain(e, None))?;
    let path =
        config_path().ok_or_else(|| anyhow!("cannot tell where to save: set HOME (or XDG_CONFIG_HOME)"))?;
    let config = ClientConfig { url: Some(api.target.url.clone()), key: api.target.key.clone() };
    write_config(&path, &config)?;
    let key = match &api.target.key_source {
        Some(source) => format!("the key from {source}"),
        None => "no key (the server needs none)".to_owned(),
    };
    Out::plain().line(&format!(
        "logged in to {} with {key}; client commands use them from any directory now (saved in {}; `durable logout` forgets them)",
        api.target.url,
        path.display()
    ))?;
    Ok(exit::OK)
}

pub(crate) fn logout() -> Result<u8> {
    let path = config_path().ok_or_else(|| anyhow!("cannot tell where the login is: HOME is not set"))?;
    match std::fs::remove_file(&path) {
        Ok(()) => Out::plain().line(&format!("forgot the saved URL and key ({} deleted)", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Out::plain().line(&format!("nothing to forget: {} does not exist", path.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("cannot delete {}", path.display())),
    }
    Ok(exit::OK)
}

pub(crate) fn completions(args: CompletionsArgs, mut command: clap::Command) -> Result<u8> {
    // Generated into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "durable", &mut script);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&script)?;
    stdout.flush()?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(reference: &str, body: &str) -> OutboxMessage {
        OutboxMessage {
            sent_at: String::new(),
            to: String::new(),
            body: body.into(),
            reference: reference.into(),
        }
    }

    #[test]
    fn codes_and_instances_come_out_of_messages() {
        assert_eq!(code_in("Your verification code is 0042"), Some("0042"));
        assert_eq!(code_in("Code 123456, valid 90s"), Some("123456"));
        assert_eq!(code_in("no code"), None);
        assert_eq!(instance_of(&message("abc:exec-1:0", "")), "abc");
        assert_eq!(instance_of(&message("a:b:exec-1:0", "")), "a:b");
        assert_eq!(instance_of(&message("odd", "")), "odd");
    }
}
