//! Finding the server and its key: flags and environment, the data directory, the file
//! `durable login` writes, and `./durable-data` (where `durable serve` keeps it by default).

use crate::args::RemoteArgs;
use anyhow::{Context, Result};
use durable_runtime::private_files::private_open_options;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The server's address when nothing says otherwise (`durable serve`'s default).
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:7071";
/// `durable serve`'s default data directory.
pub(crate) const DEFAULT_DATA_DIR: &str = "durable-data";

/// What `durable login` saves.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientConfig {
    /// The server's base URL.
    pub url: Option<String>,
    /// Its system key.
    pub key: Option<String>,
}

/// `$XDG_CONFIG_HOME/durable/client.toml`, by default `~/.config/durable/client.toml`
/// (`%APPDATA%\durable\client.toml` on Windows).
pub(crate) fn config_path() -> Option<PathBuf> {
    let absolute = |var: &str| std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = if cfg!(windows) {
        absolute("APPDATA")
    } else {
        absolute("XDG_CONFIG_HOME").or_else(|| absolute("HOME").map(|home| home.join(".config")))
    };
    base.map(|dir| dir.join("durable").join("client.toml"))
}

/// Reads the client config; `Ok(None)` when there is none.
pub(crate) fn read_config(path: &Path) -> Result<Option<ClientConfig>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(toml::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid client config; fix it, or delete it with `durable logout`",
                path.display()
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes the client config, readable by its owner only (it holds a key).
pub(crate) fn write_config(path: &Path, config: &ClientConfig) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = format!(
        "# Written by `durable login`; `durable logout` deletes it.\n{}",
        toml::to_string(config).context("cannot encode the client config")?
    );
    let tmp = path.with_extension("toml.tmp");
    let mut file = private_open_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The server to talk to and the key to present, with where each came from (for messages).
#[derive(Debug)]
pub(crate) struct Target {
    pub url: String,
    pub key: Option<String>,
    /// Where the key came from, e.g. `durable-data/system.key`.
    pub key_source: Option<String>,
    /// Every place looked at, with what was found, for the advice on a 401.
    pub looked: Vec<String>,
}

/// Resolves `--url` and the key. Order for the URL: `--url`/`DURABLE_URL`, the login file, the
/// default. Order for the key: `--key`/`DURABLE_SYSTEM_KEY`; `--data-dir`/`DURABLE_DATA_DIR`
/// (when given, nothing else is tried); the login file (only for the URL it was saved with);
/// `./durable-data/system.key`.
pub(crate) fn target(args: &RemoteArgs) -> Result<Target> {
    let path = config_path();
    let saved = match &path {
        Some(path) => read_config(path)?,
        None => None,
    };
    let saved_url = saved.as_ref().and_then(|c| c.url.as_deref()).map(normalize);
    let url = match (&args.url, &saved_url) {
        (Some(url), _) => normalize(url),
        (None, Some(saved)) => saved.clone(),
        (None, None) => DEFAULT_URL.to_owned(),
    };
    let mut looked = Vec::new();
    if let Some(key) = args.key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        return Ok(Target {
            url,
            key: Some(key.to_owned()),
            key_source: Some("--key/DURABLE_SYSTEM_KEY".into()),
            looked,
        });
    }
    looked.push("--key/DURABLE_SYSTEM_KEY: not set".to_owned());
    let from_dir = |dir: &Path, looked: &mut Vec<String>| {
        let file = durable_server::keys::system_key_path(dir);
        match durable_server::keys::read_system_key(dir) {
            Some(key) => Some((key, file.display().to_string())),
            None => {
                looked.push(format!("{}: not found", file.display()));
                None
            }
        }
    };
    if let Some(dir) = &args.data_dir {
        let found = from_dir(dir, &mut looked);
        let (key, key_source) = found.map_or((None, None), |(k, s)| (Some(k), Some(s)));
        return Ok(Target { url, key, key_source, looked });
    }
    looked.push("--data-dir/DURABLE_DATA_DIR: not set".to_owned());
    match (&saved, &path) {
        (Some(config), Some(path)) if saved_url.as_deref() == Some(url.as_str()) && config.key.is_some() => {
            return Ok(Target {
                url,
                key: config.key.clone(),
                key_source: Some(path.display().to_string()),
                looked,
            });
        }
        (Some(_), Some(path)) => {
            looked.push(format!(
                "{}: saved for {}",
                path.display(),
                saved_url.as_deref().unwrap_or("no URL")
            ));
        }
        (None, Some(path)) => {
            looked.push(format!("{}: no such file (`durable login` writes it)", path.display()));
        }
        (_, None) => {}
    }
    let found = from_dir(Path::new(DEFAULT_DATA_DIR), &mut looked);
    let (key, key_source) = found.map_or((None, None), |(k, s)| (Some(k), Some(s)));
    Ok(Target { url, key, key_source, looked })
}

/// URLs compare without a trailing slash.
fn normalize(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}
