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

pub mod keys;
pub mod otel;

use durable_http::{HttpOptions, HttpState};
use durable_runtime::{Client, Registry, Runtime, RuntimeOptions};
use durable_store::Store;
use durable_store_sqlite::{SqliteStore, SqliteStoreOptions, Synchronous};
use serde::{Deserialize, Serialize};
use std::future::Future;
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
    /// The local RPC listener could not be bound.
    #[error("cannot listen on {addr} for the local RPC endpoint: {source}; pick another --local-rpc-port")]
    LocalRpcBind {
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
    /// Port of the **local RPC endpoint**: the same API without a key, on 127.0.0.1 only, like
    /// Durable Functions' local listener (`rpcBaseUrl` = `http://127.0.0.1:{port}/durabletask/`)
    /// that the Python and JavaScript client SDKs call. Off by default; 0 picks a free port.
    /// The main listener keeps requiring the key.
    pub local_rpc_port: Option<u16>,
    /// Create a new, empty SQLite store even though the data directory was used before and its
    /// database is missing or empty (otherwise the start is refused, see
    /// [`Error::DamagedDataDir`]).
    pub fresh_store: bool,
    /// Runtime settings.
    pub runtime: RuntimeOptions,
    /// Prometheus metrics (`GET /metrics`).
    pub metrics: MetricsOptions,
    /// Serve the web dashboard under `/` (default true; `dashboard = false` turns it off).
    /// `/healthz` and `/readyz` are served either way.
    pub dashboard: bool,
    /// A trace viewer's URL for one trace, with `{trace_id}` where the id goes (e.g. Jaeger's
    /// `http://localhost:16686/trace/{trace_id}`, Grafana Tempo's explore URL): the dashboard's
    /// instance page links the instance's trace there. Without it the page shows the id only.
    pub trace_url: Option<String>,
}

/// What the dashboard gets from the code that starts the server (it cannot come from a
/// config file): the try-it page of a sample, and event names worth offering.
#[derive(Clone, Default)]
pub struct DashboardExtras {
    /// The try-it page of the phone-verification sample.
    pub try_it: Option<durable_dashboard::TryIt>,
    /// Event names offered in the raise-event form.
    pub event_names: Vec<String>,
}

/// `[server.metrics]`: the Prometheus endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsOptions {
    /// Serve `GET /metrics` and record metrics (default on; off, nothing is recorded).
    pub enabled: bool,
    /// Whether a scrape needs the system key.
    pub auth: MetricsAuth,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions { enabled: true, auth: MetricsAuth::Auto }
    }
}

/// Whether `GET /metrics` needs the system key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAuth {
    /// No key when the server listens on a loopback address (only this machine can scrape),
    /// the key otherwise (the default).
    #[default]
    Auto,
    /// Never a key (e.g. behind a network policy that only lets Prometheus in).
    None,
    /// Always the key (`code=` or `x-functions-key`, as for the API).
    Key,
}

impl MetricsAuth {
    /// Whether a scrape of a server bound to `bind` needs the key.
    pub fn requires_key(self, bind: IpAddr) -> bool {
        match self {
            MetricsAuth::Auto => !bind.is_loopback(),
            MetricsAuth::None => false,
            MetricsAuth::Key => true,
        }
    }
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
            local_rpc_port: None,
            fresh_store: false,
            runtime: RuntimeOptions::default(),
            metrics: MetricsOptions::default(),
            dashboard: true,
            trace_url: None,
        }
    }
}

/// Checks a trace viewer URL template: http(s), with `{trace_id}` in it.
fn check_trace_url(template: &str) -> Result<(), Error> {
    let web = template.starts_with("http://") || template.starts_with("https://");
    if web && template.contains("{trace_id}") {
        return Ok(());
    }
    Err(Error::Config(format!(
        "trace_url '{}' must be an http:// or https:// URL with {{trace_id}} where the trace id goes, e.g. \
         http://localhost:16686/trace/{{trace_id}}",
        template.escape_debug()
    )))
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

/// The only address the key-less local RPC endpoint may listen on.
pub const LOCAL_RPC_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Binds the listener of the local RPC endpoint. It serves the API without a key, so anything
/// but [`LOCAL_RPC_IP`] (127.0.0.1) is refused: `0.0.0.0`, another interface, and even other
/// loopback addresses, so that nothing but a process on this machine that dials 127.0.0.1 can
/// reach it.
pub async fn bind_local_rpc(addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    if addr.ip() != IpAddr::V4(LOCAL_RPC_IP) {
        return Err(Error::Config(format!(
            "the local RPC endpoint serves the API without a key, so it listens on {LOCAL_RPC_IP} only, \
             not on {}; reach it from this machine, or use the main port (with the key) from elsewhere",
            addr.ip()
        )));
    }
    tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::LocalRpcBind { addr, source })
}

/// A running node.
pub struct Server {
    local_addr: SocketAddr,
    local_rpc_addr: Option<SocketAddr>,
    runtime: Runtime,
    store: Arc<dyn Store>,
    http: Vec<JoinHandle<()>>,
    stop_http: CancellationToken,
    data_dir: PathBuf,
}

/// A node whose ports are bound but which has not started: [`Server::bind`] then
/// [`start`](Self::start). Binding first means a port clash is found before anything is
/// created on disk (data directory, keys, database).
pub struct BoundServer {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    local_rpc: Option<(tokio::net::TcpListener, SocketAddr)>,
    options: ServerOptions,
}

impl BoundServer {
    /// The address the HTTP API will listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Creates the data directory, opens the store, starts the runtime and serves HTTP on the
    /// bound ports.
    pub async fn start(self, registry: Registry) -> Result<Server, Error> {
        self.start_with(registry, DashboardExtras::default(), |_| axum::Router::new()).await
    }

    /// [`start`](Self::start), with what the dashboard needs to know about the registered
    /// orchestrators, and serving `routes` (built with a client of the node) next to the API:
    /// e.g. an application's webhooks, which authenticate their callers themselves.
    pub async fn start_with(
        self,
        registry: Registry,
        extras: DashboardExtras,
        routes: impl FnOnce(Client) -> axum::Router,
    ) -> Result<Server, Error> {
        let BoundServer { listener, local_addr, local_rpc, mut options } = self;
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
        options.runtime.validate().map_err(|e| Error::Config(e.to_string()))?;
        if let Some(template) = &options.trace_url {
            check_trace_url(template)?;
        }
        // Before the store and the runtime: they register their metrics when they start.
        let metrics = options.metrics.enabled.then(durable_http::metrics::install_recorder);
        let store = open_store(&options).await?;
        let runtime = Runtime::start(store.clone(), registry, options.runtime.clone())
            .map_err(|e| Error::Config(e.to_string()))?;
        let mut state = HttpState::new(runtime.client(), options.http.clone())
            .map_err(|e| Error::Config(e.to_string()))?;
        if let Some(handle) = metrics {
            state = state.with_metrics(handle, options.metrics.auth.requires_key(options.bind));
        }
        let stop_http = CancellationToken::new();
        let stopped = || stop_http.clone().cancelled_owned();
        let mut http = vec![spawn_http(durable_http::serve(
            listener,
            app(&options, &runtime, state.clone(), extras, routes(runtime.client())),
            stopped(),
        ))];
        let local_rpc_addr = local_rpc.map(|(listener, bound)| {
            let router = durable_http::local_rpc_router(state);
            http.push(spawn_http(durable_http::serve(listener, router, stopped())));
            bound
        });
        Ok(Server { local_addr, local_rpc_addr, runtime, store, http, stop_http, data_dir: options.data_dir })
    }
}

impl Server {
    /// Binds the ports, then creates the data directory, opens the store and starts the
    /// runtime and the HTTP listeners.
    pub async fn start(options: ServerOptions, registry: Registry) -> Result<Server, Error> {
        Server::bind(options).await?.start(registry).await
    }

    /// Binds the HTTP port (and the local RPC port, when on) and nothing else (see
    /// [`BoundServer`]).
    pub async fn bind(options: ServerOptions) -> Result<BoundServer, Error> {
        let addr = SocketAddr::new(options.bind, options.port);
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
        let local_rpc = match options.local_rpc_port {
            Some(port) => {
                let addr = SocketAddr::new(IpAddr::V4(LOCAL_RPC_IP), port);
                let listener = bind_local_rpc(addr).await?;
                let bound = listener.local_addr().map_err(|source| Error::LocalRpcBind { addr, source })?;
                Some((listener, bound))
            }
            None => None,
        };
        Ok(BoundServer { listener, local_addr, local_rpc, options })
    }

    /// The address the HTTP API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the key-less local RPC endpoint, when it is on (always 127.0.0.1); its
    /// base URL for the SDKs' `rpcBaseUrl` is `http://{addr}/durabletask/`.
    pub fn local_rpc_addr(&self) -> Option<SocketAddr> {
        self.local_rpc_addr
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
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
        for http in self.http {
            let _ = http.await;
        }
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

/// One router for the port: the Durable Functions API, the health checks and (unless turned
/// off) the dashboard. Their paths are disjoint and `merge` panics on an overlap, so the API
/// keeps every route it had; unknown paths still get the API's JSON 404.
fn app(
    options: &ServerOptions,
    runtime: &Runtime,
    state: HttpState,
    extras: DashboardExtras,
    routes: axum::Router,
) -> axum::Router {
    let mut router =
        durable_http::router_with(state, routes).merge(durable_http::health_router(runtime.store().clone()));
    if options.dashboard {
        let dashboard = durable_dashboard::DashboardOptions {
            system_keys: options.http.system_keys.clone(),
            trust_forwarded_headers: options.http.trust_forwarded_headers,
            max_body_bytes: options.http.max_body_bytes,
            event_names: extras.event_names,
            try_it: extras.try_it,
            trace_url: options.trace_url.clone(),
            ..Default::default()
        };
        let dashboard =
            durable_dashboard::Dashboard::new(runtime.client(), runtime.store().clone(), dashboard);
        router = router.merge(durable_dashboard::router(dashboard));
    }
    router
}

/// Runs one listener's serve loop in the background.
fn spawn_http(serve: impl Future<Output = std::io::Result<()>> + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_url_must_be_a_web_url_with_the_trace_id() {
        assert!(check_trace_url("http://localhost:16686/trace/{trace_id}").is_ok());
        assert!(check_trace_url("https://tempo.example/explore?trace={trace_id}").is_ok());
        for bad in ["http://localhost:16686/trace/", "javascript:alert({trace_id})", "{trace_id}"] {
            let message = check_trace_url(bad).unwrap_err().to_string();
            assert!(message.contains("{trace_id}"), "{bad}: {message}");
        }
    }

    #[tokio::test]
    async fn the_local_rpc_listener_binds_127_0_0_1_and_nothing_else() {
        for refused in ["0.0.0.0:0", "127.0.0.2:0", "[::1]:0", "[::]:0", "192.168.1.10:0"] {
            let addr: SocketAddr = refused.parse().unwrap();
            let message = bind_local_rpc(addr).await.unwrap_err().to_string();
            assert!(message.contains("listens on 127.0.0.1 only"), "{refused}: {message}");
        }
        let listener = bind_local_rpc("127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert_eq!(listener.local_addr().unwrap().ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        // A port in use is a bind error that names the setting to change.
        let taken = listener.local_addr().unwrap();
        let message = bind_local_rpc(taken).await.unwrap_err().to_string();
        assert!(message.contains("--local-rpc-port"), "{message}");
    }
}
