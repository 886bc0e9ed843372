//! `durable serve`: configuration assembly and the node's lifetime.

use crate::args::{DurabilityArg, LogFormat, MetricsAuthArg, ServeArgs};
use anyhow::{Context, Result, bail};
use durable_phone_verification::{DevOutbox, SmsSender, TwilioSender, VerificationKey, VerificationOptions};
use durable_server::otel::Tracing;
use durable_server::{Durability, MetricsAuth, Server, ServerOptions};
use durable_twilio::{TwilioClient, TwilioConfig};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// Environment variable of the HTTP API's system key.
pub(crate) const SYSTEM_KEY_ENV: &str = "DURABLE_SYSTEM_KEY";
/// Environment variable of the verification MAC key (64 hex digits).
pub(crate) const VERIFICATION_KEY_ENV: &str = "DURABLE_VERIFICATION_KEY";
/// File of the verification MAC key inside the data directory.
pub(crate) const VERIFICATION_KEY_FILE: &str = "verification.key";

/// The config file: every section optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    #[serde(default)]
    pub server: Option<ServerOptions>,
    #[serde(default)]
    pub verification: Option<VerificationOptions>,
    #[serde(default)]
    pub twilio: Option<TwilioSection>,
}

/// `[twilio]` in the config file (same names as the environment variables, in snake case).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TwilioSection {
    pub account_sid: Option<String>,
    pub auth_token: Option<String>,
    pub phone_number: Option<String>,
    pub api_base_url: Option<String>,
    /// This server's public base URL as Twilio reaches it (status callbacks, webhook signatures).
    pub public_base_url: Option<String>,
    /// Deadline of one request to Twilio, e.g. "10s" (the sample retries within the window).
    pub request_timeout: Option<String>,
}

/// Everything `serve` runs with, after merging flags, environment, file and defaults.
pub(crate) struct Settings {
    pub server: ServerOptions,
    pub verification: VerificationOptions,
    pub twilio: Option<TwilioConfig>,
    /// This server's public base URL as Twilio reaches it.
    pub public_base_url: Option<String>,
}

pub(crate) fn settings(args: &ServeArgs) -> Result<Settings> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let mut server = file.server.unwrap_or_default();
    if let Some(bind) = args.bind {
        server.bind = bind;
    }
    if let Some(port) = args.port {
        server.port = port;
    }
    if let Some(dir) = &args.data_dir {
        server.data_dir = dir.clone();
    }
    if let Some(d) = args.durability {
        server.durability = match d {
            DurabilityArg::Full => Durability::Full,
            DurabilityArg::Normal => Durability::Normal,
        };
    }
    if let Some(store) = &args.store {
        server.store = Some(store.clone());
    }
    if let Some(schema) = &args.postgres_schema {
        server.postgres_schema = Some(schema.clone());
    }
    if args.no_auth {
        server.allow_no_auth = true;
    }
    if let Some(port) = args.local_rpc_port {
        server.local_rpc_port = Some(port);
    }
    if args.no_metrics {
        server.metrics.enabled = false;
    }
    if let Some(auth) = args.metrics_auth {
        server.metrics.auth = match auth {
            MetricsAuthArg::Auto => MetricsAuth::Auto,
            MetricsAuthArg::None => MetricsAuth::None,
            MetricsAuthArg::Key => MetricsAuth::Key,
        };
    }
    if args.trust_forwarded_headers {
        server.http.trust_forwarded_headers = true;
    }
    if args.no_dashboard {
        server.dashboard = false;
    }
    if let Some(url) = &args.trace_url {
        server.trace_url = Some(url.clone());
    }
    if let Some(hub) = &args.task_hub {
        server.http.task_hub = hub.clone();
    }
    if let Ok(key) = std::env::var(SYSTEM_KEY_ENV)
        && !key.trim().is_empty()
    {
        server.http.system_keys = vec![key.trim().to_owned()];
    }
    if server.allow_no_auth {
        server.http.system_keys.clear();
    }

    let mut verification = file.verification.unwrap_or_default();
    if let Some(w) = &args.verification_window {
        verification.window = durable_phone_verification::parse_duration(w).map_err(anyhow::Error::msg)?;
    }
    if let Some(a) = args.verification_attempts {
        verification.attempts = a;
    }
    if let Some(d) = args.code_digits {
        verification.code_digits = d;
    }
    if args.no_verification_limits {
        verification.limits.enabled = false;
    }
    if args.fresh_store {
        server.fresh_store = true;
    }
    verification.validate().map_err(anyhow::Error::msg)?;

    let section = file.twilio.unwrap_or_default();
    let account_sid = args.twilio_account_sid.clone().or(section.account_sid);
    let auth_token = std::env::var("TwilioAuthToken").ok().filter(|t| !t.is_empty()).or(section.auth_token);
    let phone_number = args.twilio_phone_number.clone().or(section.phone_number);
    let base_url = args.twilio_base_url.clone().or(section.api_base_url);
    let public_base_url = args.public_url.clone().or(section.public_base_url);
    if let Some(url) = &public_base_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        bail!(
            "the public URL '{url}' must start with https:// (or http:// for local tests), e.g. https://verify.example.com"
        );
    }
    let request_timeout = section
        .request_timeout
        .as_deref()
        .map(durable_phone_verification::parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("[twilio] request_timeout: {e}"))?;
    let twilio = match (account_sid, auth_token, phone_number) {
        (None, None, None) => None,
        (Some(sid), Some(token), Some(from)) => {
            let mut config = TwilioConfig::new(sid, token, from);
            if let Some(url) = base_url {
                config = config.with_base_url(url);
            }
            if let Some(timeout) = request_timeout {
                config.request_timeout = timeout;
            }
            config.validate().context("invalid Twilio settings")?;
            Some(config)
        }
        (sid, token, from) => {
            let missing: Vec<&str> = [
                sid.is_none().then_some("TwilioAccountSid"),
                token.is_none().then_some("TwilioAuthToken"),
                from.is_none().then_some("TwilioPhoneNumber"),
            ]
            .into_iter()
            .flatten()
            .collect();
            bail!("Twilio is partly configured: also set {}", missing.join(" and "));
        }
    };
    Ok(Settings { server, verification, twilio, public_base_url })
}

fn verification_key(data_dir: &Path) -> Result<VerificationKey> {
    match std::env::var(VERIFICATION_KEY_ENV) {
        Ok(hex) if !hex.trim().is_empty() => {
            VerificationKey::from_hex(&hex).map_err(|e| anyhow::anyhow!("{VERIFICATION_KEY_ENV}: {e}"))
        }
        _ => {
            let path = data_dir.join(VERIFICATION_KEY_FILE);
            VerificationKey::load_or_create(&path)
                .with_context(|| format!("cannot use the verification key {}", path.display()))
        }
    }
}

/// One line with the limits in force, or a loud warning when they are lifted.
fn log_limits(limits: &durable_phone_verification::LimitOptions) {
    let rate = |r: durable_phone_verification::RateSetting| {
        format!("{} per {}", r.max, durable_store::limits::describe_period(r.per))
    };
    if !limits.enabled {
        tracing::warn!(
            "verification limits are LIFTED (--no-verification-limits / enabled = false): anyone with the system key \
             can send SMS without bound and guess codes across verifications; see SECURITY.md"
        );
        return;
    }
    tracing::info!(
        sms_per_number = %rate(limits.sms_per_number),
        failed_answers_per_number = %rate(limits.failed_answers_per_number),
        starts_per_client = %rate(limits.starts_per_client),
        sms_global = %rate(limits.sms_global),
        country_codes = %if limits.country_codes.is_empty() { "all".to_owned() } else { limits.country_codes.join(", ") },
        "verification limits in force"
    );
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), and, when `tracing` is given, its
/// span exporter beside them (each with its own filter, so `RUST_LOG` never silences spans).
pub(crate) fn init_logging(format: LogFormat, tracing: Option<&Tracing>) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().boxed(),
    };
    tracing_subscriber::registry().with(logs.with_filter(filter)).with(tracing.map(Tracing::layer)).init();
}

pub(crate) async fn run(args: ServeArgs) -> Result<()> {
    let tracing = Tracing::from_env()?;
    init_logging(args.log_format, tracing.as_ref());
    if let Some(tracing) = &tracing {
        tracing.install();
        tracing::info!(
            "OpenTelemetry tracing is on: spans go to the OTLP endpoint of OTEL_EXPORTER_OTLP_ENDPOINT"
        );
    }
    let mut settings = settings(&args)?;
    let data_dir = settings.server.data_dir.clone();
    let allow_no_auth = settings.server.allow_no_auth;
    let store_description = durable_server::describe_store(&settings.server);
    // Before any key file is written: a data directory that was used before must still have
    // its database; a new one gets a new store.
    durable_server::check_data_dir(&settings.server)?;
    if durable_server::data_dir_marker(&data_dir).is_none() {
        settings.server.fresh_store = true;
    }
    // The port first: a clash must not leave a new data directory and keys behind.
    let dashboard = settings.server.dashboard;
    let webhook_forwarding = settings.server.http.trust_forwarded_headers;
    let bound = Server::bind(settings.server).await?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let key = verification_key(&data_dir)?;
    let mut outbox: Option<Arc<dyn durable_dashboard::Outbox>> = None;
    let webhooks =
        settings.twilio.as_ref().map(|config| durable_phone_verification::webhooks::WebhookOptions {
            auth_token: config.auth_token.clone(),
            account_sid: config.account_sid.clone(),
            public_base_url: settings.public_base_url.clone(),
            trust_forwarded_headers: webhook_forwarding,
            key: key.clone(),
            code_digits: settings.verification.code_digits,
        });
    let sms: Arc<dyn SmsSender> = match settings.twilio {
        Some(config) => {
            let sender = TwilioSender::new(TwilioClient::new(config).context("invalid Twilio settings")?);
            match &settings.public_base_url {
                Some(url) => Arc::new(sender.with_status_callbacks(url)),
                None => {
                    tracing::info!("no public URL set (--public-url): SMS delivery status callbacks are off");
                    Arc::new(sender)
                }
            }
        }
        None => {
            tracing::warn!(
                "Twilio is NOT configured (set TwilioAccountSid, TwilioAuthToken and TwilioPhoneNumber): \
                 verification SMS go to the development outbox instead; see them with `durable outbox --data-dir {}`",
                data_dir.display()
            );
            outbox = Some(Arc::new(crate::outbox::OutboxReader::new(&data_dir)));
            Arc::new(DevOutbox::new(&data_dir))
        }
    };
    // The dashboard's try-it page runs the sample; it learns about it only from this.
    let extras = durable_server::DashboardExtras {
        try_it: Some(durable_dashboard::TryIt {
            orchestrator: durable_phone_verification::ORCHESTRATOR.into(),
            answer_event: durable_phone_verification::EVENT.into(),
            code_digits: settings.verification.code_digits,
            window: settings.verification.window,
            outbox,
        }),
        event_names: vec![durable_phone_verification::EVENT.into()],
    };
    let sms_description = sms.describe();
    let registry = durable_phone_verification::register(
        durable_runtime::Registry::new(),
        sms,
        key,
        settings.verification.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    if allow_no_auth {
        tracing::warn!(
            "authentication is DISABLED (--no-auth): anyone who can reach the port can manage instances"
        );
    }
    log_limits(&settings.verification.limits);
    let server = bound
        .start_with(registry, extras, |client| match webhooks {
            Some(options) => durable_phone_verification::webhooks::router(client, options),
            None => axum::Router::new(),
        })
        .await?;
    tracing::info!(
        addr = %server.local_addr(),
        store = %store_description,
        data_dir = %data_dir.display(),
        sms = %sms_description,
        window_secs = settings.verification.window.as_secs(),
        attempts = settings.verification.attempts,
        code_digits = settings.verification.code_digits,
        "durable serve is ready; the system key is in {}/system.key unless DURABLE_SYSTEM_KEY is set (`durable key` prints it)",
        data_dir.display()
    );
    if let Some(addr) = server.local_rpc_addr() {
        tracing::info!(
            %addr,
            "the local RPC endpoint serves the API WITHOUT a key on {addr} (loopback only): for the Durable Functions \
             client SDKs, rpcBaseUrl = http://{addr}/durabletask/"
        );
    }
    // Machine-readable lines on stdout, for scripts and tests that bind port 0; "listening on"
    // comes last, so a reader that stops there has seen the other.
    if let Some(addr) = server.local_rpc_addr() {
        println!("local rpc listening on http://{addr}/durabletask/");
    }
    println!("listening on http://{}", server.local_addr());
    if dashboard {
        tracing::info!("dashboard: http://{}/ (sign in with the system key)", server.local_addr());
    }
    server.run_until_signal().await;
    if let Some(tracing) = tracing {
        tracing.shutdown();
    }
    tracing::info!("stopped");
    Ok(())
}
