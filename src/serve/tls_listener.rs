//! REST over TLS: [`super::connections::serve_http`] with the configuration
//! [`crate::tls::Identity`] builds; each connection's handshake runs in its own task, bounded by
//! [`crate::tls::HANDSHAKE_TIMEOUT`] and counted against the connection cap.

use std::io;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::connections::{serve_http, Connections};

/// Serves `app` over TLS with `config` on `listener` with the default connection limits until
/// `shutdown` is cancelled, then lets in-flight requests finish and returns. Each request carries
/// its peer's address as `ConnectInfo<SocketAddr>`, as over plain TCP (registration checks it).
/// The agent and the coordinator go through [`super::http_serve`], which passes their limits.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: axum::Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_http(
        listener,
        Some(config),
        app,
        &Connections::default(),
        shutdown,
    )
    .await
}
