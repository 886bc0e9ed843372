//! [`serve`]: an HTTP/1.1 server loop with a header-read timeout and a bounded graceful
//! shutdown.
//!
//! `axum::serve` builds hyper connections without a timer, which silently disables hyper's
//! header-read timeout: a client that never finishes its headers (slowloris) would hold a
//! connection, and a graceful shutdown, forever. This loop sets the timer.

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Connection-level settings of [`serve_with`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeOptions {
    /// A client must send a request's complete headers within this time (milliseconds) of the
    /// connection opening or of the previous response; otherwise the connection is closed.
    /// This also closes idle keep-alive connections.
    #[serde(with = "crate::options::duration_ms")]
    pub header_read_timeout: Duration,
    /// After the shutdown signal, how long (milliseconds) requests in flight may take to
    /// finish before their connections are dropped.
    #[serde(with = "crate::options::duration_ms")]
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { header_read_timeout: Duration::from_secs(10), shutdown_grace: Duration::from_secs(30) }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets requests
/// in flight finish (up to 30 s), and returns. Uses [`ServeOptions::default`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, ServeOptions::default()).await
}

/// [`serve`] with explicit connection settings.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(options.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually out of file descriptors: a pause beats a hot loop, and the
                    // connections already open keep being served.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // The peer address rides along as axum's `ConnectInfo`, for per-client throttling.
        let service =
            TowerToHyperService::new(router.clone().map_request(move |req: hyper::Request<Incoming>| {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req
            }));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Errors here are the client's doing (reset, timeout, malformed request).
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            grace_ms = options.shutdown_grace.as_millis() as u64,
            "requests still running after the shutdown grace period were dropped"
        );
    }
    Ok(())
}
