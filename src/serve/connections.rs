//! Client connections, bounded: one permit per open connection from a cap shared by the REST and
//! gRPC listeners ([`Connections`]), a deadline for the first bytes and for idleness on every
//! socket ([`Guarded`]), and REST served connection by connection with hyper's header-read
//! timeout, graceful shutdown and the peer's address for handlers ([`serve_http`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, PollSemaphore};

use crate::config::ConnectionConfig;

/// The bytes a gRPC client sends first (the HTTP/2 connection preface); a connection that has not
/// sent as many within the header-read timeout is dropped.
pub const HTTP2_PREFACE_LEN: usize = 24;

/// How long accepting pauses after an error other than a peer's reset (out of descriptors):
/// retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The cap and timeouts every client connection of one process is held to. Cloned into each
/// listener: the clones share the cap.
#[derive(Debug, Clone)]
pub struct Connections {
    /// One permit per open client connection, REST and gRPC together, held from accept to close.
    gate: Arc<Semaphore>,
    /// The cap the gate was made with (for logs and tests).
    max: usize,
    /// `--http.header-read-timeout`.
    pub header_read_timeout: Duration,
    /// `--http.idle-timeout`.
    pub idle_timeout: Duration,
}

impl Connections {
    /// `max` connections at once, with the timeouts of `config`.
    pub fn new(max: usize, config: &ConnectionConfig) -> Self {
        Self {
            gate: Arc::new(Semaphore::new(max)),
            max,
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
        }
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max - self.gate.available_permits()
    }

    /// The connections of `listener`, each accepted once a permit is free. `first_bytes`: how
    /// many bytes a connection must send within the header-read timeout (the HTTP/2 preface on
    /// gRPC; 0 where the protocol checks it itself).
    pub fn incoming(&self, listener: TcpListener, first_bytes: usize) -> Incoming {
        Incoming {
            listener,
            gate: PollSemaphore::new(Arc::clone(&self.gate)),
            permit: None,
            pause: None,
            first_bytes,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
        }
    }
}

/// The accepted connections of one listener, as a stream (tonic's `serve_with_incoming` takes
/// one; [`serve_http`] reads it too). A permit is taken before `accept`, so that past the cap
/// new connections wait in the kernel's backlog, taking no descriptor of ours. Accept errors are
/// handled here (a reset is skipped, anything else pauses accepting): the stream yields
/// connections only, and ends never.
pub struct Incoming {
    /// The plain listener.
    listener: TcpListener,
    /// The shared cap.
    gate: PollSemaphore,
    /// A permit taken for the next connection.
    permit: Option<OwnedSemaphorePermit>,
    /// After an accept error, the pause before the next try.
    pause: Option<Pin<Box<Sleep>>>,
    /// See [`Connections::incoming`].
    first_bytes: usize,
    /// Deadline for the first bytes.
    header_read_timeout: Duration,
    /// Deadline for a connection that moves nothing.
    idle_timeout: Duration,
}

impl Incoming {
    /// The next connection: waits for a permit, then for a client.
    pub fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Guarded<TcpStream>> {
        loop {
            if let Some(pause) = &mut self.pause {
                ready!(pause.as_mut().poll(cx));
                self.pause = None;
            }
            if self.permit.is_none() {
                // The gate is never closed: `None` cannot come; wait as if it were full.
                let Some(permit) = ready!(self.gate.poll_acquire(cx)) else {
                    return Poll::Pending;
                };
                self.permit = Some(permit);
            }
            match ready!(self.listener.poll_accept(cx)) {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let permit = self.permit.take();
                    return Poll::Ready(Guarded::new(stream, peer, permit, self.deadlines()));
                }
                Err(e) if is_peer_error(&e) => {}
                Err(e) => {
                    tracing::error!("accept error: {e}");
                    self.pause = Some(Box::pin(tokio::time::sleep(ACCEPT_ERROR_PAUSE)));
                }
            }
        }
    }

    fn deadlines(&self) -> Deadlines {
        Deadlines {
            first_bytes: self.first_bytes,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
        }
    }

    /// The next connection.
    pub async fn accept(&mut self) -> Guarded<TcpStream> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }
}

impl tokio_stream::Stream for Incoming {
    type Item = Result<Guarded<TcpStream>, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_accept(cx).map(|c| Some(Ok(c)))
    }
}

/// A connection reset or refused before it was accepted is the peer's business.
fn is_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The deadlines a [`Guarded`] socket enforces.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    /// Bytes to read before `header_read_timeout` (from accept); 0: no such deadline.
    first_bytes: usize,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

/// A client's socket, holding its permit of the cap until it is dropped, and failing with
/// `TimedOut` when a read or write waits past a deadline: the first bytes not in within the
/// header-read timeout of accept, or no byte moved either way for the idle timeout. The server
/// on top (hyper, tonic) then closes the connection.
pub struct Guarded<T> {
    /// The socket.
    inner: T,
    /// The peer's address.
    peer: SocketAddr,
    /// Released (the connection leaves the cap) when the socket is dropped.
    _permit: Option<OwnedSemaphorePermit>,
    /// The rules.
    deadlines: Deadlines,
    /// When the connection was accepted.
    accepted: Instant,
    /// Bytes read so far, up to `deadlines.first_bytes`.
    read: usize,
    /// When a byte last moved.
    last_activity: Instant,
    /// Wakes the connection's task at the deadline while it waits on the socket.
    timer: Pin<Box<Sleep>>,
}

impl<T> Guarded<T> {
    fn new(
        inner: T,
        peer: SocketAddr,
        permit: Option<OwnedSemaphorePermit>,
        deadlines: Deadlines,
    ) -> Self {
        let now = Instant::now();
        Self {
            inner,
            peer,
            _permit: permit,
            deadlines,
            accepted: now,
            read: 0,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now + deadlines.idle_timeout)),
        }
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The deadline now in force: the first bytes', until they are in, else idleness'.
    fn deadline(&self) -> (Instant, &'static str) {
        if self.read < self.deadlines.first_bytes {
            let first = self.accepted + self.deadlines.header_read_timeout;
            let idle = self.last_activity + self.deadlines.idle_timeout;
            if first <= idle {
                return (first, "no request within the header-read timeout");
            }
        }
        (
            self.last_activity + self.deadlines.idle_timeout,
            "idle past the idle timeout",
        )
    }

    /// Called when the socket is not ready: an error once the deadline has passed, else the
    /// task is woken at the deadline.
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let (deadline, why) = self.deadline();
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            tracing::debug!(peer = %self.peer, "connection closed: {why}");
            return Err(io::Error::new(io::ErrorKind::TimedOut, why));
        }
        Ok(())
    }

    fn moved(&mut self) {
        self.last_activity = Instant::now();
    }

    /// A write's outcome: bytes written count as activity; a write that cannot go on is held
    /// to the deadline.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) if n > 0 => self.moved(),
            Poll::Ready(_) => {}
            Poll::Pending => self.check_deadline(cx)?,
        }
        polled
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                if n > 0 {
                    this.read = this.read.saturating_add(n);
                    this.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.check_deadline(cx)?;
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, data);
        this.wrote(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => {
                this.check_deadline(cx)?;
                Poll::Pending
            }
            done => done,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => {
                this.check_deadline(cx)?;
                Poll::Pending
            }
            done => done,
        }
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for Guarded<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Serves `app` on `listener`, over TLS with `tls` when given, within `limits`, until `shutdown`
/// is cancelled; then stops accepting (the listening socket is closed), lets in-flight requests
/// finish, closes idle connections and returns once every connection is gone.
///
/// Each connection runs in its own task: the TLS handshake (bounded by
/// [`crate::tls::HANDSHAKE_TIMEOUT`]), then HTTP/1.1 with hyper's header-read timeout, which
/// also bounds the wait for the next request on a kept-alive connection. Each request carries the
/// peer's address as `ConnectInfo<SocketAddr>` (registration checks it).
pub async fn serve_http(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    limits: &Connections,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut incoming = limits.incoming(listener, 0);
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    // Every connection task holds a receiver; all gone = all connections closed.
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    loop {
        let conn = tokio::select! {
            () = shutdown.cancelled() => break,
            conn = incoming.accept() => conn,
        };
        let peer = conn.peer();
        let app = app.clone();
        let http = http.clone();
        let stop = shutdown.clone();
        let open = open_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => serve_connection(&http, conn, peer, app, stop).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(conn));
                    match handshake.await {
                        Ok(Ok(stream)) => serve_connection(&http, stream, peer, app, stop).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            Ok(())
                        }
                        Err(_elapsed) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            drop(open);
        });
    }
    drop(incoming);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// One HTTP/1.1 connection, until the client closes it, a timeout does, or shutdown (after the
/// request in flight, if any).
async fn serve_connection<I>(
    http: &hyper::server::conn::http1::Builder,
    io: I,
    peer: SocketAddr,
    app: axum::Router,
    shutdown: CancellationToken,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        // A Router is always ready: calling it without `poll_ready` is what axum does too.
        tower_service::Service::call(&mut app.clone(), request)
    });
    // With upgrades: a WebSocket (serve::ws) keeps the socket, and with it its permit of the
    // cap, so subscribers count against --max-connections like any other connection.
    let conn = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => served,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(max: usize, header: u64, idle: u64) -> Connections {
        Connections::new(
            max,
            &ConnectionConfig {
                max_connections: Some(max),
                header_read_timeout: Duration::from_millis(header),
                idle_timeout: Duration::from_millis(idle),
            },
        )
    }

    async fn listener() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    #[tokio::test]
    async fn the_cap_holds_accepting_until_a_connection_closes() {
        let (listener, addr) = listener().await;
        let limits = limits(1, 10_000, 10_000);
        let mut incoming = limits.incoming(listener, 0);
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let first = incoming.accept().await;
        assert_eq!(limits.open(), 1);
        let second = tokio::time::timeout(Duration::from_millis(200), incoming.accept()).await;
        assert!(second.is_err(), "accepted past the cap");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), incoming.accept()).await;
        assert!(second.is_ok(), "not accepted once a slot freed");
    }

    #[tokio::test]
    async fn silent_and_idle_connections_time_out() {
        let (listener, addr) = listener().await;
        let limits = limits(4, 200, 400);
        let mut incoming = limits.incoming(listener, HTTP2_PREFACE_LEN);

        // Nothing sent: cut at the header-read timeout.
        let _silent = TcpStream::connect(addr).await.unwrap();
        let mut conn = incoming.accept().await;
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let err = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_millis(390), "{err}");

        // The first bytes in: then only idleness counts.
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut conn = incoming.accept().await;
        client.write_all(&[b'x'; HTTP2_PREFACE_LEN]).await.unwrap();
        assert_eq!(conn.read(&mut buf).await.unwrap(), HTTP2_PREFACE_LEN);
        let started = Instant::now();
        let err = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(390), "{err}");
        drop(conn);
        assert_eq!(
            limits.open(),
            1,
            "the first connection still holds its permit"
        );
    }
}
