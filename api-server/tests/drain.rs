//! Graceful shutdown: after the signal, readiness fails at once, in-flight requests finish,
//! new connections are refused, and a request that outlives the shutdown timeout does not hold
//! the process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{TestApp, Which};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get_raw(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut out = String::new();
    stream.read_to_string(&mut out).await?;
    Ok(out)
}

async fn serve(
    extra: &[&str],
    handler_sleep: Duration,
) -> (
    TestApp,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let app = TestApp::with_args(Which::Sqlite, extra).await;
    let router: Router = Router::new().route(
        "/slow",
        get(move || async move {
            tokio::time::sleep(handler_sleep).await;
            "done"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = app.state.clone();
    let server = tokio::spawn(fp_api_server::server::serve_until(
        listener,
        router,
        state,
        async {
            let _ = rx.await;
        },
    ));
    (app, addr, tx, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_and_new_ones_are_refused() {
    let (app, addr, stop, server) =
        serve(&["--shutdown-timeout", "5s"], Duration::from_millis(800)).await;
    let in_flight = tokio::spawn(async move { get_raw(addr, "/slow").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        app.state.is_shutting_down(),
        "readiness fails as soon as the signal arrives"
    );
    let response = in_flight.await.unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("done"), "{response}");
    server.await.unwrap().unwrap();
    assert!(get_raw(addr, "/slow").await.is_err(), "listener closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outliving_the_timeout_does_not_hold_shutdown() {
    let (_app, addr, stop, server) =
        serve(&["--shutdown-timeout", "300ms"], Duration::from_secs(30)).await;
    let _stuck = tokio::spawn(async move { get_raw(addr, "/slow").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_delay_keeps_serving_while_readiness_fails() {
    let (app, addr, stop, server) =
        serve(&["--drain-delay", "700ms"], Duration::from_millis(1)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.state.is_shutting_down());
    // Still accepting during the drain delay, so clients routed here before the endpoint
    // update are not refused.
    let response = get_raw(addr, "/slow").await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    server.await.unwrap().unwrap();
}
