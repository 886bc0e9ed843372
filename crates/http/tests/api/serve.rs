//! The server loop over real loopback sockets: requests, slow clients, graceful shutdown.

use crate::support::*;
use durable_http::{ServeOptions, serve_with};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn serves_over_tcp_closes_slow_clients_and_drains_requests_on_shutdown() {
    let app = App::start();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions {
        header_read_timeout: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(20),
    };
    let server = tokio::spawn(serve_with(
        listener,
        app.router.clone(),
        async move {
            let _ = stopped.await;
        },
        options,
    ));

    let list = format!(
        "GET /runtime/webhooks/durabletask/instances?code={KEY} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let response = exchange(addr, &list).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("x-ms-continuation-token"), "{response}");

    // A client that never finishes its headers is cut off by the header-read timeout.
    let started = Instant::now();
    let response = exchange(addr, "GET / HTTP/1.1\r\nHost: x\r\n").await;
    assert!(!response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(started.elapsed() < Duration::from_secs(10), "closed after {:?}", started.elapsed());

    // A request in flight when shutdown starts still gets its answer.
    let waiting = format!(
        "POST /runtime/webhooks/durabletask/orchestrators/WaitForAnswer/drain?timeout=1&pollingInterval=1&code={KEY} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnull"
    );
    let in_flight = tokio::spawn(async move { exchange(addr, &waiting).await });
    let client = app.client.clone();
    eventually("the waiting request reached the handler", || {
        let client = client.clone();
        async move { client.status("drain").await.unwrap().is_some() }
    })
    .await;
    stop.send(()).unwrap();
    let response = in_flight.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    tokio::time::timeout(DEADLINE, server).await.expect("serve returns after shutdown").unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
}
