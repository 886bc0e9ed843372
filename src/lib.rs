//! **durable**: Durable Functions for Rust.
//!
//! Write orchestrators as plain `async fn`s; the engine replays them deterministically from an
//! event-sourced history, runs activities at least once, keeps durable timers and external
//! events, and serves a Durable Functions compatible HTTP API. One binary, `durable serve`, runs
//! all of it on an embedded SQLite file.
//!
//! ```no_run
//! use durable::{ActivityContext, Either, Error, OrchestrationContext, Registry, Server, ServerOptions};
//! use std::time::Duration;
//!
//! async fn approval(ctx: OrchestrationContext, request: String) -> Result<bool, Error> {
//!     ctx.call_activity::<(), _>("Notify", &request).await?;
//!     let deadline = ctx.sleep(Duration::from_secs(3600));
//!     let approved = match ctx.select(ctx.wait_for_external_event::<bool>("Approval"), &deadline).await {
//!         Either::Left(answer) => answer?,
//!         Either::Right(()) => false,
//!     };
//!     deadline.cancel();
//!     Ok(approved)
//! }
//!
//! async fn notify(_ctx: ActivityContext, request: String) -> Result<(), Error> {
//!     println!("please approve {request}");
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let registry = Registry::new().orchestrator("Approval", approval).activity("Notify", notify);
//!     let server = Server::start(ServerOptions::default(), registry).await?;
//!     server.run_until_signal().await;
//!     Ok(())
//! }
//! ```
//!
//! ## Features
//!
//! | Feature | Default | Gives |
//! |---|---|---|
//! | `sqlite` | yes | [`store::SqliteStore`], the embedded store |
//! | `postgres` | | [`store::PostgresStore`], one database shared by several nodes |
//! | `server` | | [`Server`]: store + runtime + the Durable Functions HTTP API ([`http`]) |
//! | `twilio` | | [`twilio`]: the Twilio Messages client |
//!
//! The `durable` command (`durable serve`, the CLI client, `durable bench`) is the separate
//! package `durable-cli`: `cargo install --path crates/cli`.

pub use durable_core::{
    ActivityCall, ContinueAsNewOptions, Either, Error, EventKind, ExternalEvent, FailureDetails,
    HistoryEvent, OrchestrationContext, ParentInstance, Payload, RetryPolicy, RuntimeStatus,
    SubOrchestrationCall, Timer, Timestamp, join, join_all, select, select_all,
};
pub use durable_runtime::{
    ActivityContext, Client, EventHook, Registry, Rejected, Runtime, RuntimeMetrics, RuntimeOptions, client,
};
#[cfg(feature = "server")]
pub use durable_server::{Durability, Server, ServerOptions};

/// Stores: the contract and the implementations the enabled features bring.
pub mod store {
    pub use durable_store::*;
    #[cfg(feature = "postgres")]
    pub use durable_store_postgres::{PostgresStore, PostgresStoreOptions};
    #[cfg(feature = "sqlite")]
    pub use durable_store_sqlite::{SqliteStore, SqliteStoreOptions, Synchronous};
}

/// The Durable Functions compatible HTTP API.
#[cfg(feature = "server")]
pub use durable_http as http;

/// The Twilio Messages client.
#[cfg(feature = "twilio")]
pub use durable_twilio as twilio;

/// The engine's core types (history, replay engine), for tools and tests.
pub use durable_core as core;
