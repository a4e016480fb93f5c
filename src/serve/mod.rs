//! The servers: REST (with `/metrics`) on one port, gRPC (legacy and v1) on another. Handlers only
//! read the latest [`Snapshot`] from [`AppState`]; encoders are pure functions of a snapshot.

pub mod grpc_legacy;
pub mod grpc_v1;
pub mod prometheus;
pub mod rest;
mod stream;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::collect::unix_ms;
use crate::config::CollectConfig;
use crate::model::Snapshot;

/// A sample older than this many intervals means the sampler has stalled.
pub const STALE_AFTER_INTERVALS: u32 = 3;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The latest snapshot, replaced by the sampler each interval.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// The first snapshot, taken at start: the baseline of "since the monitor started" counters
    /// (legacy `network.sent`, `disk.in`, …).
    pub baseline: Arc<Snapshot>,
    /// The sampling interval, to tell a stalled sampler from a live one.
    pub interval: Duration,
    /// Cancelled to stop the whole monitor (signals, parent gone, an honoured TearDown).
    pub shutdown: CancellationToken,
    /// Whether the legacy TearDown may stop us: only a child monitor (`--portfile`/`--parent-pid`)
    /// listening on loopback.
    pub teardown_allowed: bool,
    /// Collector settings, for the on-demand pid-tree reading of GetStats.
    pub collect: Arc<CollectConfig>,
    /// When the monitor started.
    pub started_at: SystemTime,
}

impl AppState {
    /// The latest snapshot.
    pub fn latest(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshots.borrow())
    }

    /// Why the data is stale, or None while samples are fresh.
    pub fn stale_reason(&self, snapshot: &Snapshot) -> Option<String> {
        let age_ms = unix_ms(SystemTime::now()).saturating_sub(snapshot.timestamp_ms);
        let limit = self.interval * STALE_AFTER_INTERVALS;
        let limit_ms = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
        (age_ms > limit_ms).then(|| {
            format!(
                "last sample is {:.1}s old (more than {} intervals of {:?}): the sampler has stalled",
                age_ms as f64 / 1000.0,
                STALE_AFTER_INTERVALS,
                self.interval
            )
        })
    }
}

/// Serves both gRPC services (legacy and v1) on `listener` until `shutdown` is cancelled; with a
/// token, every call must carry it; with `tls`, over TLS.
pub async fn grpc_serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    token: Option<crate::auth::Token>,
    tls: Option<crate::tls::Identity>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let routes = tonic::service::Routes::new(grpc_legacy::service(state.clone()))
        .add_service(grpc_v1::service(state));
    grpc_serve_routes(listener, routes, token, tls, shutdown).await
}

/// The one place gRPC listeners are served (agent and coordinator): `routes` behind the token
/// check, over TLS when `tls` is given (`--tls-cert`), until `shutdown` is cancelled.
pub async fn grpc_serve_routes(
    listener: tokio::net::TcpListener,
    routes: tonic::service::Routes,
    token: Option<crate::auth::Token>,
    tls: Option<crate::tls::Identity>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let mut server = tonic::transport::Server::builder();
    if let Some(identity) = &tls {
        server = server.tls_config(identity.grpc_server_config())?;
    }
    server
        .layer(tonic::service::InterceptorLayer::new(
            crate::auth::GrpcAuth { token },
        ))
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown.cancelled_owned(),
        )
        .await
}

/// The one place HTTP (REST) listeners are served (agent and coordinator): `router` behind the
/// token check, over TLS when `tls` is given (`--tls-cert`), with each request's peer address
/// available to handlers (`ConnectInfo<SocketAddr>`, which registration checks) either way,
/// until `shutdown` is cancelled.
pub async fn http_serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    token: Option<crate::auth::Token>,
    tls: Option<crate::tls::Identity>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = crate::auth::protect(router, token);
    match tls {
        Some(identity) => {
            crate::tls::serve(listener, identity.rest_server_config(), app, shutdown).await
        }
        None => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        }
    }
}
