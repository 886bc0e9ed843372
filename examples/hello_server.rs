//! Your own orchestrators behind the Durable Functions HTTP API, in a few lines.
//!
//! ```text
//! cargo run --example hello_server
//! curl -X POST "http://127.0.0.1:7072/api/orchestrators/Hello" \
//!      -H "x-functions-key: $(cat hello-data/system.key)" -H 'content-type: application/json' -d '"Tokyo"'
//! ```

use durable::{ActivityContext, Error, OrchestrationContext, Registry, Server, ServerOptions};

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
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::new().orchestrator("Hello", hello).activity("SayHello", say_hello);
    let options = ServerOptions { port: 7072, data_dir: "hello-data".into(), ..ServerOptions::default() };
    let server = Server::start(options, registry).await?;
    println!("listening on http://{}; key in hello-data/system.key", server.local_addr());
    server.run_until_signal().await;
    Ok(())
}
