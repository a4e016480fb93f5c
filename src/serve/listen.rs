//! Listening, shared by the agent and the coordinator: binding a port (naming it when taken), the
//! portfile, and the one place REST and gRPC listeners are served (token check, optional TLS,
//! graceful shutdown).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::connections::{serve_http, Connections, HTTP2_PREFACE_LEN};
use crate::auth::{self, ReadAuth, Token};
use crate::tls::Identity;

/// Why a port could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen for {what} on {addr}: port {port} is already in use")]
    PortInUse {
        what: &'static str,
        addr: SocketAddr,
        port: u16,
    },
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Why the portfile could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the portfile {path}: {source}")]
pub struct PortfileError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Binds `addr` for `what` (`REST`, `gRPC`), naming the port when it is taken.
pub async fn listen(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ListenError::PortInUse {
                what,
                addr,
                port: addr.port(),
            }
        } else {
            ListenError::Bind { what, addr, source }
        }
    })
}

/// What both modes serve: the REST routes (with `/metrics`) when REST is on, and the gRPC
/// routes, each on its bound listener.
pub struct Servers {
    /// The REST listener and its router, or `None` with `--disable-rest-api`.
    pub rest: Option<(TcpListener, axum::Router)>,
    /// The gRPC listener and its services.
    pub grpc: (TcpListener, tonic::service::Routes),
}

impl Servers {
    /// Serves both in `tasks`, behind the read token of `auth`, over TLS when `tls` is given,
    /// held to `connections`, until `shutdown`. A server that fails logs why and stops the
    /// process (cancels `shutdown`): a monitor that lost one of its servers must not go on
    /// half-deaf.
    pub fn spawn(
        self,
        tasks: &mut tokio::task::JoinSet<()>,
        auth: ReadAuth,
        tls: Option<Identity>,
        connections: &Connections,
        shutdown: &CancellationToken,
    ) {
        let token = auth.token.clone();
        if let Some((listener, router)) = self.rest {
            let tls = tls.clone();
            let (connections, stop) = (connections.clone(), shutdown.clone());
            tasks.spawn(async move {
                let served = http_serve(listener, router, auth, tls, &connections, stop.clone());
                if let Err(e) = served.await {
                    tracing::error!("REST server failed: {e}");
                    stop.cancel();
                }
            });
        }
        let (listener, routes) = self.grpc;
        let (connections, stop) = (connections.clone(), shutdown.clone());
        tasks.spawn(async move {
            let served = grpc_serve(listener, routes, token, tls, &connections, stop.clone());
            if let Err(e) = served.await {
                tracing::error!("gRPC server failed: {e}");
                stop.cancel();
            }
        });
    }
}

/// Writes the portfile at `path`, when one is asked for, with the `(gRPC, REST)` ports (see
/// [`write_portfile`]). When it cannot be written, cancels `shutdown` and waits for `tasks`
/// (the servers already started), so the caller returns the error with nothing left running.
pub async fn portfile_or_stop(
    path: Option<&Path>,
    (grpc_port, rest_port): (u16, Option<u16>),
    shutdown: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<Option<Portfile>, PortfileError> {
    let Some(path) = path else {
        return Ok(None);
    };
    match write_portfile(path, grpc_port, rest_port) {
        Ok(written) => Ok(Some(written)),
        Err(e) => {
            shutdown.cancel();
            while tasks.join_next().await.is_some() {}
            Err(e)
        }
    }
}

/// Writes the portfile atomically (a temporary file beside it, then a rename), so a reader never
/// sees a half-written one: first line `sock=<grpc port>`, then `rest=<rest port>` when REST is on.
/// The file is removed when the returned value is dropped (at a clean exit).
pub fn write_portfile(
    path: &Path,
    grpc_port: u16,
    rest_port: Option<u16>,
) -> Result<Portfile, PortfileError> {
    let mut text = format!("sock={grpc_port}\n");
    if let Some(rest) = rest_port {
        text.push_str(&format!("rest={rest}\n"));
    }
    let name = path
        .file_name()
        .map_or_else(|| "portfile".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(source) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(PortfileError {
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(Portfile {
        path: path.to_path_buf(),
        text,
    })
}

/// A portfile this process wrote. Dropping it removes the file if it still holds what was
/// written: a launcher may have handed the path to another monitor since, whose file stays.
#[derive(Debug)]
#[must_use = "the portfile is removed when this is dropped"]
pub struct Portfile {
    /// Where it was written.
    path: PathBuf,
    /// What was written.
    text: String,
}

impl Drop for Portfile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path).is_ok_and(|now| now == self.text);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!("cannot remove the portfile {}: {e}", self.path.display());
            }
        }
    }
}

/// Serves `routes` on `listener` behind the token check, over TLS when `tls` is given
/// (`--tls-cert`), within `limits`, until `shutdown` is cancelled.
///
/// A connection counts against the cap from accept (TLS handshake included: tonic bounds it by
/// [`crate::tls::HANDSHAKE_TIMEOUT`]); it must send the HTTP/2 preface within the header-read
/// timeout and is closed after the idle timeout without a byte either way. No HTTP/2 keep-alive
/// pings: they would keep an idle connection busy for ever; a gone peer is found by the idle
/// timeout instead.
pub async fn grpc_serve(
    listener: TcpListener,
    routes: tonic::service::Routes,
    token: Option<Token>,
    tls: Option<Identity>,
    limits: &Connections,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let mut server = tonic::transport::Server::builder();
    if let Some(identity) = &tls {
        server = server.tls_config(identity.grpc_server_config())?;
    }
    server
        .layer(tonic::service::InterceptorLayer::new(auth::GrpcAuth {
            token,
        }))
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            limits.incoming(listener, HTTP2_PREFACE_LEN),
            shutdown.cancelled_owned(),
        )
        .await
}

/// Serves `router` on `listener` behind the read token check of `read`, over TLS when `tls` is
/// given (`--tls-cert`), with each request's peer address available to handlers
/// (`ConnectInfo<SocketAddr>`, which registration checks) either way, within `limits`, until
/// `shutdown` is cancelled.
pub async fn http_serve(
    listener: TcpListener,
    router: axum::Router,
    read: ReadAuth,
    tls: Option<Identity>,
    limits: &Connections,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = auth::protect(router, read);
    let tls = tls.map(|identity| identity.rest_server_config());
    serve_http(listener, tls, app, limits, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portfile_has_sock_then_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ports");
        let first = write_portfile(&path, 4242, Some(8080)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "sock=4242\nrest=8080\n"
        );
        let second = write_portfile(&path, 1, None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "sock=1\n");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        drop(first);
        assert!(path.exists(), "replaced since: not ours to remove");
        drop(second);
        assert!(!path.exists(), "removed when dropped");
    }

    #[test]
    fn a_portfile_rewritten_by_another_process_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ports");
        let written = write_portfile(&path, 4242, Some(8080)).unwrap();
        std::fs::write(&path, "sock=1\nrest=2\n").unwrap();
        drop(written);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "sock=1\nrest=2\n");
        let written = write_portfile(&path, 4242, None).unwrap();
        std::fs::remove_file(&path).unwrap();
        drop(written);
        assert!(!path.exists());
    }

    #[test]
    fn portfile_in_missing_directory_is_a_clear_error() {
        let err = write_portfile(Path::new("/nonexistent/dir/ports"), 1, None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dir/ports"), "{err}");
    }
}
