//! An approval workflow behind the Durable Functions HTTP API (the example of README.md).
use durable::{ActivityContext, Either, Error, OrchestrationContext, Registry, Server, ServerOptions};
use std::process::ExitCode;
use std::time::Duration;

/// Asks for approval, then waits up to an hour for an `Approval` event: `true` or `false`.
async fn approval(ctx: OrchestrationContext, request: String) -> Result<bool, Error> {
    ctx.call_activity::<(), _>("Notify", &request).await?;
    let deadline = ctx.sleep(Duration::from_secs(3600));
    let approved = match ctx.select(ctx.wait_for_external_event::<bool>("Approval"), &deadline).await {
        Either::Left(answer) => answer?,
        Either::Right(()) => false,
    };
    deadline.cancel();
    Ok(approved)
}

/// A side effect (send a mail, post to a chat, …): runs at least once.
async fn notify(_ctx: ActivityContext, request: String) -> Result<(), Error> {
    println!("approval needed: {request}");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let registry = Registry::new().orchestrator("Approval", approval).activity("Notify", notify);
    // Not `durable serve`'s port and data directory, so both can run side by side.
    let options = ServerOptions { port: 7073, data_dir: "approval-data".into(), ..ServerOptions::default() };
    match Server::start(options, registry).await {
        Ok(server) => {
            println!("listening on http://{}; the key is in approval-data/system.key", server.local_addr());
            server.run_until_signal().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
