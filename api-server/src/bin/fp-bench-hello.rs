//! The ceiling for `cargo xtask bench api`: a bare axum server answering `GET /` with a short
//! body, built with the same profile and runtime as fp-api-server, so every scenario can be
//! reported as a share of what this machine serves at all.
use std::net::SocketAddr;

fn main() -> std::io::Result<()> {
    let listen: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".to_owned())
        .parse()
        .map_err(std::io::Error::other)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
            let listener = tokio::net::TcpListener::bind(listen).await?;
            axum::serve(listener, app).await
        })
}
