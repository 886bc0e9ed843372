//! Your own orchestrators behind the Durable Functions HTTP API, in a few lines: an
//! orchestrator that calls an activity three times in a row.
//!
//! ```text
//! cargo run --example hello_server
//! durable start Hello --input Tokyo --url http://127.0.0.1:7072 --data-dir hello-data
//! ```

use durable::{ActivityContext, Error, OrchestrationContext, Registry, Server, ServerOptions};
use std::process::ExitCode;

async fn hello(ctx: OrchestrationContext, city: String) -> Result<Vec<String>, Error> {
    let mut greetings = Vec::new();
    for c in [city.as_str(), "Seattle", "London"] {
        greetings.push(ctx.call_activity("SayHello", c).await?);
    }
    Ok(greetings)
}

async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(format!("Hello {city}!"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let registry = Registry::new().orchestrator("Hello", hello).activity("SayHello", say_hello);
    // Its own port and data directory, so it runs beside `durable serve` and the approval example.
    let options = ServerOptions { port: 7072, data_dir: "hello-data".into(), ..ServerOptions::default() };
    match Server::start(options, registry).await {
        Ok(server) => {
            println!("listening on http://{}; the key is in hello-data/system.key", server.local_addr());
            server.run_until_signal().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
