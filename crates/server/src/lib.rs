//! A **durable** node as a library: an embedded SQLite store in a data directory, the runtime
//! and the Durable Functions compatible HTTP API, started in a few lines. `durable serve` is this
//! library with the phone-verification sample registered.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use durable_core::{Error, OrchestrationContext};
//! use durable_runtime::Registry;
//! use durable_server::{Server, ServerOptions};
//!
//! async fn hello(ctx: OrchestrationContext, name: String) -> Result<String, Error> {
//!     ctx.call_activity("Greet", &name).await
//! }
//!
//! let registry = Registry::new()
//!     .orchestrator("Hello", hello)
//!     .activity("Greet", |_ctx, name: String| async move { Ok::<_, Error>(format!("Hello, {name}!")) });
//! let server = Server::start(ServerOptions::default(), registry).await?;
//! println!("listening on http://{}", server.local_addr());
//! server.run_until_signal().await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod keys;

use durable_http::{HttpOptions, HttpState};
use durable_runtime::{Client, Registry, Runtime, RuntimeOptions};
use durable_store::Store;
use durable_store_sqlite::{SqliteStore, SqliteStoreOptions, Synchronous};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// File name of the SQLite database inside the data directory.
pub const DATABASE_FILE: &str = "durable.db";

/// Errors of starting a server; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is wrong.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data directory or a key file could not be used.
    #[error("{what} ({path}): {source}")]
    Io {
        /// What we tried to do.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] durable_store::Error),
    /// The data directory was used before but its database is gone: starting would silently
    /// begin with an empty store.
    #[error(
        "the data directory {data_dir} was used before (it holds {marker}) but its database {database} is {state}: \
         starting would create a new, empty store and every instance would silently be gone. Restore the \
         database from a backup, or start with --fresh-store (fresh_store = true in [server]) to create an \
         empty store on purpose"
    )]
    DamagedDataDir {
        /// The data directory.
        data_dir: PathBuf,
        /// The file that shows it was used.
        marker: String,
        /// The database file.
        database: PathBuf,
        /// `missing` or `empty`.
        state: &'static str,
    },
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {source}; pick another --port or --bind")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// SQLite durability setting, as configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous=FULL` (default): survives power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a process crash; may lose the last commits on power loss.
    Normal,
}

/// Everything a node needs. Serde-friendly so it can come from a config file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerOptions {
    /// Address to listen on (default 127.0.0.1: expose it deliberately).
    pub bind: IpAddr,
    /// Port (default 7071, like the Functions host; 0 picks a free one).
    pub port: u16,
    /// Directory of the database and key files (created on first start).
    pub data_dir: PathBuf,
    /// SQLite durability.
    pub durability: Durability,
    /// `postgres://…` to share a PostgreSQL database with other nodes instead of the embedded
    /// SQLite file (the data directory then only holds keys and the development outbox).
    pub store: Option<String>,
    /// PostgreSQL schema of this task hub (default `durable`).
    pub postgres_schema: Option<String>,
    /// HTTP API settings. When `system_keys` is empty and `allow_no_auth` is false, the key in
    /// `<data_dir>/system.key` is used (generated on first start).
    pub http: HttpOptions,
    /// Serve without authentication (only for local experiments).
    pub allow_no_auth: bool,
    /// Create a new, empty SQLite store even though the data directory was used before and its
    /// database is missing or empty (otherwise the start is refused, see
    /// [`Error::DamagedDataDir`]).
    pub fresh_store: bool,
    /// Runtime settings.
    pub runtime: RuntimeOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 7071,
            data_dir: PathBuf::from("durable-data"),
            durability: Durability::Full,
            store: None,
            postgres_schema: None,
            http: HttpOptions::default(),
            allow_no_auth: false,
            fresh_store: false,
            runtime: RuntimeOptions::default(),
        }
    }
}

/// What `--store` selects.
pub fn describe_store(options: &ServerOptions) -> String {
    match options.store.as_deref() {
        Some(url) if is_postgres_url(url) => {
            format!("PostgreSQL (schema {})", options.postgres_schema.as_deref().unwrap_or("durable"))
        }
        _ => format!("SQLite {}", options.data_dir.join(DATABASE_FILE).display()),
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The file that shows `data_dir` was used by a node before, if any: a key file (`*.key`) or
/// the SQLite lock file, which outlives the database it guards.
pub fn data_dir_marker(data_dir: &Path) -> Option<String> {
    let mut lock = DATABASE_FILE.to_owned();
    lock.push_str(".lock");
    let entries = std::fs::read_dir(data_dir).ok()?;
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names.into_iter().find(|n| n.ends_with(".key") || *n == lock)
}

/// Refuses to open the SQLite store of a data directory that was used before but whose
/// database is missing or empty, unless `fresh_store` says that is intended.
pub fn check_data_dir(options: &ServerOptions) -> Result<(), Error> {
    let sqlite = matches!(options.store.as_deref(), None | Some("sqlite"));
    if !sqlite || options.fresh_store {
        return Ok(());
    }
    let Some(marker) = data_dir_marker(&options.data_dir) else { return Ok(()) };
    let database = options.data_dir.join(DATABASE_FILE);
    let state = match std::fs::metadata(&database) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing",
        Ok(m) if m.len() == 0 => "empty",
        _ => return Ok(()),
    };
    Err(Error::DamagedDataDir { data_dir: options.data_dir.clone(), marker, database, state })
}

/// Opens the store `options` select: the SQLite file of the data directory, or PostgreSQL.
pub async fn open_store(options: &ServerOptions) -> Result<Arc<dyn Store>, Error> {
    match options.store.as_deref() {
        None | Some("sqlite") => {
            let mut store_options = SqliteStoreOptions::new(options.data_dir.join(DATABASE_FILE));
            store_options.synchronous = match options.durability {
                Durability::Full => Synchronous::Full,
                Durability::Normal => Synchronous::Normal,
            };
            Ok(Arc::new(SqliteStore::open(store_options)?))
        }
        #[cfg(feature = "postgres")]
        Some(url) if is_postgres_url(url) => {
            let mut pg = durable_store_postgres::PostgresStoreOptions::new(url);
            if let Some(schema) = &options.postgres_schema {
                pg.schema = schema.clone();
            }
            Ok(Arc::new(durable_store_postgres::PostgresStore::connect(pg).await?))
        }
        #[cfg(not(feature = "postgres"))]
        Some(url) if is_postgres_url(url) => Err(Error::Config(
            "this build has no PostgreSQL store: enable the `postgres` feature of durable-server \
             (the `durable` command has it)"
                .into(),
        )),
        Some(other) => Err(Error::Config(format!(
            "unknown store '{}': use `sqlite` (the default) or a postgres://user@host:port/database URL",
            other.split(['@', '?']).next().unwrap_or_default()
        ))),
    }
}

/// A running node.
pub struct Server {
    local_addr: SocketAddr,
    runtime: Runtime,
    store: Arc<dyn Store>,
    http: JoinHandle<()>,
    stop_http: CancellationToken,
    data_dir: PathBuf,
}

impl Server {
    /// Creates the data directory, opens the store, starts the runtime and the HTTP listener.
    pub async fn start(options: ServerOptions, registry: Registry) -> Result<Server, Error> {
        Server::start_with_routes(options, registry, |_| axum::Router::new()).await
    }

    /// [`start`](Self::start), serving `routes` (built with a client of the node) next to the
    /// API: e.g. an application's webhooks, which authenticate their callers themselves.
    pub async fn start_with_routes(
        mut options: ServerOptions,
        registry: Registry,
        routes: impl FnOnce(Client) -> axum::Router,
    ) -> Result<Server, Error> {
        std::fs::create_dir_all(&options.data_dir).map_err(|source| Error::Io {
            what: "cannot create the data directory",
            path: options.data_dir.clone(),
            source,
        })?;
        check_data_dir(&options)?;
        if options.http.system_keys.is_empty() && !options.allow_no_auth {
            let key = keys::load_or_create_system_key(&options.data_dir)?;
            options.http.system_keys.push(key);
        }
        options.runtime.validate().map_err(Error::Config)?;
        let store = open_store(&options).await?;
        let runtime = Runtime::start(store.clone(), registry, options.runtime.clone())
            .map_err(|e| Error::Config(e.to_string()))?;
        let state = HttpState::new(runtime.client(), options.http.clone())
            .map_err(|e| Error::Config(e.to_string()))?;
        let addr = SocketAddr::new(options.bind, options.port);
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
        let stop_http = CancellationToken::new();
        let stop = stop_http.clone();
        let router = durable_http::router_with(state, routes(runtime.client()));
        let http = tokio::spawn(async move {
            if let Err(e) = durable_http::serve(listener, router, stop.cancelled_owned()).await {
                tracing::error!(error = %e, "the HTTP server stopped");
            }
        });
        Ok(Server { local_addr, runtime, store, http, stop_http, data_dir: options.data_dir })
    }

    /// The address the HTTP API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// An in-process client.
    pub fn client(&self) -> Client {
        self.runtime.client()
    }

    /// The runtime (metrics, registry).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Stops accepting requests, finishes in-flight ones, drains the runtime and closes the
    /// store (everything acknowledged is durable).
    pub async fn shutdown(self) {
        self.stop_http.cancel();
        let _ = self.http.await;
        self.runtime.shutdown().await;
        if let Err(e) = self.store.close().await {
            tracing::warn!(error = %e, "closing the store failed");
        }
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
