//! The engine under test: an in-process runtime on a store, or a whole server driven over HTTP.

use crate::Durability;
use crate::measure::sqlite_bytes;
use crate::sender::{BenchSender, Delivery, FreezableClock};
use anyhow::{Context, bail};
use durable_http::{HttpOptions, HttpState};
use durable_phone_verification::{
    EVENT, LimitOptions, ORCHESTRATOR, RateSetting, VerificationKey, VerificationOptions,
};
use durable_runtime::{Client, Registry, Runtime, RuntimeMetrics, RuntimeOptions};
use durable_server::{Server, ServerOptions};
use durable_store::{InstanceState, Store, StoreMetrics};
use durable_store_postgres::{PostgresStore, PostgresStoreOptions};
use durable_store_sqlite::{SqliteStore, SqliteStoreOptions, Synchronous};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The phone number every bench verification is started with (unless limits are charged: then
/// each has its own, see [`phone_of`]).
pub(crate) const PHONE: &str = "+14255550100";

/// The number of the verification `id` when limits are charged: one number per verification,
/// as real traffic has, so per-number budgets never refuse.
pub(crate) fn phone_of(id: &str) -> String {
    let n = crate::sender::instance_index(id).unwrap_or(0);
    format!("+1425{:07}", n % 10_000_000)
}

/// The sample's default limits with every budget raised far beyond any run: charged on every
/// start like in `durable serve`, refusing nothing.
fn bench_limits() -> LimitOptions {
    let huge = |per| RateSetting::new(u32::MAX / 2, per);
    let d = LimitOptions::default();
    LimitOptions {
        sms_per_number: huge(d.sms_per_number.per),
        failed_answers_per_number: huge(d.failed_answers_per_number.per),
        starts_per_client: huge(d.starts_per_client.per),
        sms_global: huge(d.sms_global.per),
        ..d
    }
}
/// Longest wait for one verification (a stuck engine must fail the run, not hang it).
pub(crate) const WAIT_LIMIT: Duration = Duration::from_secs(600);

/// Where the engine keeps its state.
#[derive(Clone, Debug)]
pub(crate) enum StoreKind {
    /// `durable.db` in the data directory.
    Sqlite,
    /// A PostgreSQL server; each run works in a schema of its own.
    Postgres { url: String, schema: String },
}

/// How to build a node; kept so the park scenario can reopen the same database.
#[derive(Clone)]
pub(crate) struct NodeConfig {
    pub store: StoreKind,
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub via_http: bool,
    pub window: Duration,
    pub system_key: String,
    pub verification_key: VerificationKey,
    /// Runtimes on the same store (PostgreSQL only): the first one plus `nodes - 1` more, each
    /// with its own connections, like separate `durable serve` processes.
    pub nodes: usize,
    /// `RuntimeOptions::max_concurrent_turns` of every node (`None`: the default).
    pub max_concurrent_turns: Option<usize>,
    /// `--metrics`: the in-process server serves and records metrics (it does by default).
    pub metrics: bool,
    /// Charge the sample's limits (with budgets nothing reaches) instead of lifting them.
    pub limits: bool,
}

impl NodeConfig {
    pub(crate) fn new(
        store: StoreKind,
        data_dir: &Path,
        durability: Durability,
        via_http: bool,
        window: Duration,
    ) -> anyhow::Result<Self> {
        Ok(NodeConfig {
            store,
            data_dir: data_dir.to_owned(),
            durability,
            via_http,
            window,
            system_key: uuid::Uuid::new_v4().simple().to_string(),
            verification_key: VerificationKey::generate().context("cannot generate a verification key")?,
            nodes: 1,
            max_concurrent_turns: None,
            metrics: false,
            limits: false,
        })
    }

    /// The runtime options of every node.
    fn runtime_options(&self) -> RuntimeOptions {
        let mut options = RuntimeOptions::default();
        if let Some(turns) = self.max_concurrent_turns {
            options.max_concurrent_turns = turns.max(1);
        }
        options
    }

    /// The database file (`durable serve` uses the same name in its data directory).
    pub(crate) fn db_path(&self) -> PathBuf {
        self.data_dir.join(durable_server::DATABASE_FILE)
    }

    /// Bytes the store occupies: (main, write-ahead log). PostgreSQL: tables with their
    /// indexes and TOAST (`pg_total_relation_size`) of the run's schema; its WAL is shared by
    /// the whole server, so not counted.
    pub(crate) async fn store_bytes(&self) -> anyhow::Result<(u64, u64)> {
        match &self.store {
            StoreKind::Sqlite => Ok(sqlite_bytes(&self.db_path())),
            StoreKind::Postgres { url, schema } => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
                let connection = tokio::spawn(connection);
                let row = client
                    .query_one(
                        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
                        &[schema],
                    )
                    .await?;
                drop(client);
                let _ = connection.await;
                Ok((row.get::<_, i64>(0).max(0) as u64, 0))
            }
        }
    }

    /// Drops the run's PostgreSQL schema (SQLite files go with the data directory).
    pub(crate) async fn drop_store(&self) -> anyhow::Result<()> {
        if let StoreKind::Postgres { url, schema } = &self.store {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            let connection = tokio::spawn(connection);
            // The schema name is ours ("bench_" + hex digits), so quoting it is enough.
            client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await?;
            drop(client);
            let _ = connection.await;
        }
        Ok(())
    }
}

enum Engine {
    InProcess {
        runtime: Runtime,
    },
    /// `durable_server::Server` (SQLite), driven over HTTP.
    Server {
        server: Server,
        http: HttpApi,
    },
    /// The runtime behind the same HTTP API, for stores the server library does not open.
    Http {
        runtime: Runtime,
        http: HttpApi,
        stop: oneshot::Sender<()>,
        serving: JoinHandle<()>,
    },
}

/// A running engine with the sample registered on the bench SMS sender.
pub(crate) struct Node {
    engine: Engine,
    store: Arc<dyn Store>,
    client: Client,
    /// More runtimes on the same database (`--nodes`), each on its own store connection.
    others: Vec<(Runtime, Arc<dyn Store>)>,
    /// One number per verification (limits are charged).
    limits: bool,
}

impl Node {
    /// Starts a node; verification codes arrive on the returned channel. `clock` replaces the
    /// engine's clock (in-process only: `durable_server::Server` always runs on the system
    /// clock).
    pub(crate) async fn start(
        config: &NodeConfig,
        clock: Option<Arc<FreezableClock>>,
    ) -> anyhow::Result<(Node, mpsc::UnboundedReceiver<Delivery>)> {
        let (sender, codes) = BenchSender::new();
        let limits = if config.limits { bench_limits() } else { LimitOptions::off() };
        let options = VerificationOptions { window: config.window, limits, ..VerificationOptions::default() };
        let make_registry = || {
            durable_phone_verification::register(
                Registry::new(),
                Arc::new(sender.clone()),
                config.verification_key.clone(),
                options.clone(),
            )
            .map_err(anyhow::Error::msg)
        };
        let registry = make_registry()?;
        if config.nodes > 1 && (config.via_http || !matches!(config.store, StoreKind::Postgres { .. })) {
            bail!("--nodes needs --store postgres://… and the in-process client");
        }
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        let node = match (&config.store, config.via_http) {
            (StoreKind::Sqlite, true) => {
                let mut options = ServerOptions {
                    bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    port: 0,
                    data_dir: config.data_dir.clone(),
                    durability: match config.durability {
                        Durability::Full => durable_server::Durability::Full,
                        Durability::Normal => durable_server::Durability::Normal,
                    },
                    runtime: config.runtime_options(),
                    ..ServerOptions::default()
                };
                options.metrics.enabled = config.metrics;
                options.http.system_keys = vec![config.system_key.clone()];
                // The bench measures the engine: no load shedding of its own starts.
                options.http.max_backlog = 0;
                let server = Server::start(options, registry).await.context("cannot start the server")?;
                let http = HttpApi::new(
                    &format!("http://{}", server.local_addr()),
                    &config.system_key,
                    config.limits,
                )?;
                let store = server.runtime().store().clone();
                let client = server.client();
                Node {
                    engine: Engine::Server { server, http },
                    store,
                    client,
                    others: Vec::new(),
                    limits: config.limits,
                }
            }
            (kind, via_http) => {
                let store = open_store(kind, config).await?;
                let options = config.runtime_options();
                let runtime = match clock {
                    Some(clock) => Runtime::start_with_clock(store.clone(), registry, options, clock),
                    None => Runtime::start(store.clone(), registry, options),
                }?;
                let client = runtime.client();
                let engine = if via_http {
                    let state = HttpState::new(
                        client.clone(),
                        HttpOptions {
                            system_keys: vec![config.system_key.clone()],
                            max_backlog: 0,
                            ..HttpOptions::default()
                        },
                    )?;
                    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
                    let http = HttpApi::new(
                        &format!("http://{}", listener.local_addr()?),
                        &config.system_key,
                        config.limits,
                    )?;
                    let (stop, stopped) = oneshot::channel::<()>();
                    let serving = tokio::spawn(async move {
                        let shutdown = async move {
                            let _ = stopped.await;
                        };
                        if let Err(e) =
                            durable_http::serve(listener, durable_http::router(state), shutdown).await
                        {
                            eprintln!("the bench HTTP server stopped: {e}");
                        }
                    });
                    Engine::Http { runtime, http, stop, serving }
                } else {
                    Engine::InProcess { runtime }
                };
                let mut others = Vec::new();
                for _ in 1..config.nodes {
                    let store = open_store(kind, config).await?;
                    let runtime = Runtime::start(store.clone(), make_registry()?, config.runtime_options())?;
                    others.push((runtime, store));
                }
                Node { engine, store, client, others, limits: config.limits }
            }
        };
        Ok((node, codes))
    }

    /// Stops the runtime (and HTTP server) and closes the store; everything acknowledged is
    /// durable afterwards and the database can be reopened.
    pub(crate) async fn shutdown(self) {
        let Node { engine, store, client, others, .. } = self;
        drop(client);
        for (runtime, store) in others {
            runtime.shutdown().await;
            let _ = store.close().await;
        }
        match engine {
            Engine::InProcess { runtime } => {
                runtime.shutdown().await;
                let _ = store.close().await;
            }
            Engine::Server { server, http } => {
                drop(http);
                server.shutdown().await;
            }
            Engine::Http { runtime, http, stop, serving } => {
                drop(http);
                let _ = stop.send(());
                let _ = serving.await;
                runtime.shutdown().await;
                let _ = store.close().await;
            }
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn runtime_metrics(&self) -> RuntimeMetrics {
        let mut m = match &self.engine {
            Engine::InProcess { runtime } | Engine::Http { runtime, .. } => runtime.metrics(),
            Engine::Server { server, .. } => server.runtime().metrics(),
        };
        for (runtime, _) in &self.others {
            let o = runtime.metrics();
            m.turns += o.turns;
            m.replays += o.replays;
            m.turns_discarded += o.turns_discarded;
            m.activities += o.activities;
            m.direct_events += o.direct_events;
            m.cached_executions += o.cached_executions;
        }
        m
    }

    pub(crate) fn store_metrics(&self) -> StoreMetrics {
        let mut m = self.store.metrics();
        for (_, store) in &self.others {
            let o = store.metrics();
            m.transactions += o.transactions;
            m.turns += o.turns;
            m.activity_completions += o.activity_completions;
            m.client_writes += o.client_writes;
        }
        m
    }

    /// The client of the node that handles `id` (instances are spread over the nodes, as a
    /// load balancer would spread requests).
    fn client_for(&self, id: &str) -> Client {
        if self.others.is_empty() {
            return self.client.clone();
        }
        let n = id.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
            % (self.others.len() + 1);
        if n == 0 { self.client.clone() } else { self.others[n - 1].0.client() }
    }

    /// Starts a verification of [`PHONE`] under `id`.
    pub(crate) async fn start_verification(&self, id: &str) -> anyhow::Result<()> {
        match &self.engine {
            Engine::InProcess { .. } => {
                let phone = if self.limits { phone_of(id) } else { PHONE.to_owned() };
                self.client_for(id).start_with_id(ORCHESTRATOR, id, &phone).await?;
            }
            Engine::Server { http, .. } | Engine::Http { http, .. } => http.start(id).await?,
        }
        Ok(())
    }

    /// Answers `code` (sent as a JSON string, so leading zeros survive).
    pub(crate) async fn answer(&self, id: &str, code: u16) -> anyhow::Result<()> {
        let code = format!("{code:04}");
        match &self.engine {
            Engine::InProcess { .. } => self.client_for(id).raise_event(id, EVENT, &code).await?,
            Engine::Server { http, .. } | Engine::Http { http, .. } => http.raise(id, &code).await?,
        }
        Ok(())
    }

    /// Waits until the instance finishes. Notification-driven (the store wakes the waiter
    /// when the completing turn is committed), so it adds no polling load, also over HTTP,
    /// where the API offers only polling.
    pub(crate) async fn wait(&self, id: &str) -> anyhow::Result<()> {
        self.client.wait_for_completion(id, WAIT_LIMIT).await?;
        Ok(())
    }

    /// The verification's result: `Some(true/false)` when it completed, `None` otherwise.
    /// Read through the HTTP status route when driving over HTTP.
    pub(crate) async fn outcome(&self, id: &str) -> anyhow::Result<Outcome> {
        match &self.engine {
            Engine::InProcess { .. } => {
                let state = self.client.status(id).await?;
                Ok(Outcome::of_state(state.as_ref()))
            }
            Engine::Server { http, .. } | Engine::Http { http, .. } => http.outcome(id).await,
        }
    }
}

async fn open_store(kind: &StoreKind, config: &NodeConfig) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match kind {
        StoreKind::Sqlite => {
            let mut options = SqliteStoreOptions::new(config.db_path());
            options.synchronous = match config.durability {
                Durability::Full => Synchronous::Full,
                Durability::Normal => Synchronous::Normal,
            };
            Arc::new(SqliteStore::open(options).context("cannot open the SQLite store")?)
        }
        StoreKind::Postgres { url, schema } => {
            let mut options = PostgresStoreOptions::new(url.clone());
            options.schema = schema.clone();
            Arc::new(PostgresStore::connect(options).await.context("cannot connect to PostgreSQL")?)
        }
    })
}

/// How a verification ended, as seen by the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Completed with this output.
    Verified(bool),
    /// Anything else (still running, failed, unknown, odd output): described.
    Other(String),
}

impl Outcome {
    fn of_state(state: Option<&InstanceState>) -> Outcome {
        let Some(state) = state else {
            return Outcome::Other("not found".into());
        };
        if state.status != durable_core::RuntimeStatus::Completed {
            let why = state.failure.as_ref().map(|f| format!(": {}", f.message)).unwrap_or_default();
            return Outcome::Other(format!("{}{why}", state.status));
        }
        match state.output.as_ref().map(|p| p.decode::<bool>()) {
            Some(Ok(v)) => Outcome::Verified(v),
            other => Outcome::Other(format!("Completed with output {other:?}")),
        }
    }
}

/// The Durable Functions HTTP API, as a client uses it: keep-alive connections, the system key
/// in `x-functions-key`. The client is hyper's own pooled HTTP/1.1 client rather than reqwest
/// (which wraps it): the load generator shares the 2 cores with the server, and reqwest's URL
/// parsing, redirect policy and per-request timer were ~30 % of the client's CPU.
struct HttpApi {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    base: String,
    key: HeaderValue,
    /// One number per verification (limits are charged).
    own_numbers: bool,
}

impl HttpApi {
    fn new(base: &str, key: &str, own_numbers: bool) -> anyhow::Result<Self> {
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build_http();
        let key = HeaderValue::from_str(key).context("the system key is not a valid header value")?;
        Ok(HttpApi { http, base: base.to_owned(), key, own_numbers })
    }

    async fn start(&self, id: &str) -> anyhow::Result<()> {
        let phone = if self.own_numbers { phone_of(id) } else { PHONE.to_owned() };
        let body = serde_json::to_vec(&phone)?;
        let url = format!("{}/api/orchestrators/{ORCHESTRATOR}/{id}", self.base);
        let (status, body) = self.send(Method::POST, &url, Some(body)).await?;
        expect_status(status, &body, StatusCode::ACCEPTED, "start")
    }

    async fn raise(&self, id: &str, code: &str) -> anyhow::Result<()> {
        let url = format!("{}/runtime/webhooks/durabletask/instances/{id}/raiseEvent/{EVENT}", self.base);
        let (status, body) = self.send(Method::POST, &url, Some(serde_json::to_vec(code)?)).await?;
        expect_status(status, &body, StatusCode::ACCEPTED, "raise event")
    }

    async fn outcome(&self, id: &str) -> anyhow::Result<Outcome> {
        let url = format!("{}/runtime/webhooks/durabletask/instances/{id}", self.base);
        let (status, body) = self.send(Method::GET, &url, None).await?;
        let body: serde_json::Value = serde_json::from_slice(&body).context("status response is not JSON")?;
        if !status.is_success() {
            return Ok(Outcome::Other(format!("HTTP {status}: {body}")));
        }
        if body["runtimeStatus"] != "Completed" {
            return Ok(Outcome::Other(format!("{}", body["runtimeStatus"])));
        }
        match body["output"].as_bool() {
            Some(v) => Ok(Outcome::Verified(v)),
            None => Ok(Outcome::Other(format!("Completed with output {}", body["output"]))),
        }
    }

    /// One request; the whole body is read, which is what returns the connection to the pool.
    async fn send(
        &self,
        method: Method,
        url: &str,
        json: Option<Vec<u8>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request =
            hyper::Request::builder().method(method).uri(url).header("x-functions-key", &self.key);
        if json.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(json.map(Bytes::from).unwrap_or_default()))?;
        let response = tokio::time::timeout(REQUEST_LIMIT, async {
            let response = self.http.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        })
        .await
        .with_context(|| format!("no answer within {REQUEST_LIMIT:?}"))??;
        Ok(response)
    }
}

/// Longest wait for one HTTP request.
const REQUEST_LIMIT: Duration = Duration::from_secs(60);

fn expect_status(status: StatusCode, body: &[u8], expected: StatusCode, what: &str) -> anyhow::Result<()> {
    if status != expected {
        bail!("{what}: HTTP {status} (expected {expected}): {}", String::from_utf8_lossy(body));
    }
    Ok(())
}
