//! REST over TLS: a TCP listener that completes TLS handshakes (with the configuration
//! [`crate::tls::Identity`] builds) before handing connections to axum.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::{Listener, ListenerExt};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::tls::HANDSHAKE_TIMEOUT;

/// At most this many handshakes run at once on one listener; past it, accepting waits. Bounds the
/// memory a connection flood can take (each pending handshake holds a socket and TLS state).
const MAX_PENDING_HANDSHAKES: usize = 1024;

/// A TCP listener that completes TLS handshakes before handing connections to axum.
///
/// Handshakes run concurrently in their own tasks (one slow client never holds up the others) and
/// each is bounded by [`HANDSHAKE_TIMEOUT`]. A failed handshake is logged at debug level and
/// dropped: it is the client's problem (wrong CA, plain HTTP on a TLS port), not the server's.
pub struct TlsListener {
    /// The plain listener.
    tcp: TcpListener,
    /// Wraps each accepted socket in TLS.
    acceptor: TlsAcceptor,
    /// Handshakes in progress, each yielding the stream (or why not) and the peer.
    handshakes: JoinSet<(HandshakeResult, SocketAddr)>,
}

/// How one handshake ended: the stream, an I/O or TLS error, or the timeout.
type HandshakeResult = Result<io::Result<tokio_rustls::server::TlsStream<TcpStream>>, ()>;

impl TlsListener {
    /// Serves TLS with `config` on `tcp`.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> Self {
        Self {
            tcp,
            acceptor: TlsAcceptor::from(config),
            handshakes: JoinSet::new(),
        }
    }

    fn start_handshake(&mut self, stream: TcpStream, peer: SocketAddr) {
        let acceptor = self.acceptor.clone();
        self.handshakes.spawn(async move {
            let done = timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                .await
                .map_err(|_elapsed| ());
            (done, peer)
        });
    }
}

impl Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    // Cancel-safe, as axum needs (it drops this future when shutdown starts): both awaited
    // operations are, and a started handshake lives in `self.handshakes`, not in the future.
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let room = self.handshakes.len() < MAX_PENDING_HANDSHAKES;
            tokio::select! {
                accepted = self.tcp.accept(), if room => match accepted {
                    Ok((stream, peer)) => self.start_handshake(stream, peer),
                    Err(e) => accept_error(e).await,
                },
                Some(done) = self.handshakes.join_next() => match done {
                    Ok((Ok(Ok(stream)), peer)) => return (stream, peer),
                    Ok((Ok(Err(e)), peer)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Ok((Err(()), peer)) => tracing::debug!(%peer, "TLS handshake timed out"),
                    Err(e) => tracing::debug!("TLS handshake task ended: {e}"),
                },
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// What axum's own TCP listener does on an accept error: a connection reset before it was
/// accepted is the peer's business; anything else (out of file descriptors) is logged and retried
/// after a pause rather than spun on.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept error: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves `app` over TLS with `config` on `listener` until `shutdown` is cancelled, then lets
/// in-flight requests finish and returns — the TLS twin of the plain listener in
/// [`super::http_serve`]. Each request carries its peer's address as `ConnectInfo<SocketAddr>`,
/// as over plain TCP (registration checks it).
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: axum::Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    // axum gives `ConnectInfo<SocketAddr>` for its own TcpListener and for any tapped listener
    // whose `Addr` is one (ours is: the peer's); a no-op tap is the way in for a foreign listener.
    let listener = TlsListener::new(listener, config).tap_io(|_| {});
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}
