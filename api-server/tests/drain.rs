//! Graceful shutdown: after the signal, readiness fails at once, in-flight requests finish,
//! new connections are refused, and a request that outlives the shutdown timeout does not hold
//! the process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
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

/// How long a test waits for something that must happen. Generous: on a busy machine (load 6+
/// on 2 cores, multi-second stalls) shutdown is slow, not broken; what never happens still fails.
const WAIT_LIMIT: Duration = Duration::from_secs(300);

/// The `/slow` handler: it tells the test when a request is inside it, then answers only when
/// the test releases it (or never, when it is never released).
#[derive(Clone, Default)]
struct Gate {
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Gate {
    /// Waits until a request is inside the handler.
    async fn entered(&self) {
        tokio::time::timeout(WAIT_LIMIT, self.entered.notified())
            .await
            .expect("the request did not reach the handler");
    }
}

async fn serve(
    extra: &[&str],
    gate: Gate,
) -> (
    TestApp,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let app = TestApp::with_args(Which::Sqlite, extra).await;
    let router: Router = Router::new().route(
        "/slow",
        get(move || {
            let gate = gate.clone();
            async move {
                let released = gate.release.notified();
                gate.entered.notify_one();
                released.await;
                "done"
            }
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

/// Waits (at most [`WAIT_LIMIT`]) until `done` holds, and says how long it took.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < WAIT_LIMIT,
            "{what}: not after {WAIT_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("{what}: after {:?}", started.elapsed());
}

/// Waits (at most [`WAIT_LIMIT`]) for the server task to end, and says how long it took.
async fn stopped(server: tokio::task::JoinHandle<std::io::Result<()>>, since: Instant) -> Duration {
    tokio::time::timeout(WAIT_LIMIT, server)
        .await
        .expect("the server did not stop")
        .unwrap()
        .unwrap();
    let took = since.elapsed();
    eprintln!("server stopped {took:?} after the signal");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_and_new_ones_are_refused() {
    // The shutdown timeout must not cut the in-flight request short, however slow the machine.
    let gate = Gate::default();
    let (app, addr, stop, server) = serve(&["--shutdown-timeout", "10m"], gate.clone()).await;
    let in_flight = tokio::spawn(async move { get_raw(addr, "/slow").await });
    gate.entered().await;
    let signalled = Instant::now();
    stop.send(()).unwrap();
    // Readiness fails while the request is still held in the handler: before it can finish.
    wait_until("readiness fails after the signal", || {
        app.state.is_shutting_down()
    })
    .await;
    assert!(!in_flight.is_finished(), "the request is still held");
    gate.release.notify_one();
    let response = in_flight.await.unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("done"), "{response}");
    stopped(server, signalled).await;
    assert!(get_raw(addr, "/slow").await.is_err(), "listener closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outliving_the_timeout_does_not_hold_shutdown() {
    // The handler is never released: only the shutdown timeout can end the server.
    let gate = Gate::default();
    let (_app, addr, stop, server) = serve(&["--shutdown-timeout", "300ms"], gate.clone()).await;
    let _stuck = tokio::spawn(async move { get_raw(addr, "/slow").await });
    gate.entered().await;
    let signalled = Instant::now();
    stop.send(()).unwrap();
    let took = stopped(server, signalled).await;
    // A lower bound: the request got its shutdown timeout (a busy machine only takes longer).
    assert!(took >= Duration::from_millis(300), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_delay_keeps_serving_while_readiness_fails() {
    // A drain delay no stall outlasts: the request below must come inside it. Whether the
    // server stops after the delay is the business of the tests above (delay 0).
    let gate = Gate::default();
    let (app, addr, stop, server) = serve(&["--drain-delay", "10m"], gate.clone()).await;
    stop.send(()).unwrap();
    wait_until("readiness fails after the signal", || {
        app.state.is_shutting_down()
    })
    .await;
    // Still accepting during the drain delay, so clients routed here before the endpoint
    // update are not refused.
    gate.release.notify_one();
    let response = tokio::time::timeout(WAIT_LIMIT, get_raw(addr, "/slow"))
        .await
        .expect("no answer during the drain delay")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        !server.is_finished(),
        "still serving during the drain delay"
    );
    server.abort();
}

/// Reads until the server closes the connection (EOF or reset), failing after [`WAIT_LIMIT`]:
/// what was read before.
async fn until_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT_LIMIT, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "the connection is still open after {WAIT_LIMIT:?}: {}",
                String::from_utf8_lossy(&seen)
            ),
            Ok(Ok(0) | Err(_)) => return seen,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_disconnected() {
    let (_app, addr, _stop, _server) =
        serve(&["--header-read-timeout", "1s"], Gate::default()).await;

    // Slowloris: headers that never end.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let said = until_closed(&mut slow).await;
    eprintln!(
        "headers unfinished: closed after {:?} ({} bytes answered)",
        started.elapsed(),
        said.len()
    );

    // A silent connection: closed too.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    until_closed(&mut silent).await;
    eprintln!("silent: closed after {:?}", started.elapsed());

    // Kept alive after an answer, then idle: closed once the timeout passes, after the answer.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /nothing-here HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let answered = String::from_utf8(until_closed(&mut idle).await).unwrap();
    assert!(answered.starts_with("HTTP/1.1 404"), "{answered}");
}
