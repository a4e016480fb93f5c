//! Local and agent mode: one sampler, the REST and gRPC servers, the portfile, the registration
//! with a coordinator ([`register`]), and the watchers that end the process (signals, parent
//! gone, TearDown) — all stopped by one shutdown token. Built from the shared pieces in
//! [`crate::serve`] and [`crate::collect`].

pub mod register;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{ReadAuth, Token, TokenKind};
use crate::collect::plugin::{PluginSetupError, Plugins};
use crate::collect::{start_sampling, SamplerError};
use crate::config::Config;
use crate::history::History;
use crate::serve::{self, grpc_legacy, grpc_v1, AppState, ListenError, PortfileError};
use crate::tls::Identity;

/// How often `--parent-pid` is checked.
const PARENT_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Why the agent could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Portfile(#[from] PortfileError),
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Register(#[from] register::RegisterError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Plugin(#[from] PluginSetupError),
    #[error("the gRPC listener has no address: {0}")]
    GrpcAddress(#[source] std::io::Error),
    #[error(transparent)]
    History(#[from] crate::history::log::LogError),
}

/// The agent with its ports bound, ready to [`run`](BoundAgent::run).
pub struct BoundAgent {
    config: Config,
    rest: Option<TcpListener>,
    grpc: TcpListener,
    /// The read token (`--auth-token-file`): guards every API but health.
    token: Option<Token>,
    /// The registration secret (`--cluster-token-file`), sent to the coordinator.
    cluster_token: Option<Token>,
    /// `--tls-cert`/`--tls-key`, read: both servers speak TLS.
    tls: Option<Identity>,
    /// The history, restored from `--history.path` before the ports are announced.
    history: Arc<History>,
}

/// Reads the tokens and the TLS files, binds the REST and gRPC ports of `config` and restores the
/// history from `--history.path`. Fails with the file named when one cannot be used (a history
/// directory that cannot be written too; a damaged history file is reported and skipped), with
/// the port named when one is taken.
pub async fn bind(config: Config) -> Result<BoundAgent, AgentError> {
    let token = Token::load(TokenKind::Auth, config.auth_token_file.as_deref())?;
    let cluster_token = Token::load(TokenKind::Cluster, config.cluster_token_file.as_deref())?;
    let tls = Identity::from_config(&config.tls)?;
    let rest = if config.rest_enabled {
        Some(serve::listen("REST", SocketAddr::new(config.bind, config.rest_port)).await?)
    } else {
        None
    };
    let grpc = serve::listen("gRPC", SocketAddr::new(config.bind, config.grpc_port)).await?;
    let history = Arc::new(History::open(&config.history, config.collect.interval)?);
    Ok(BoundAgent {
        config,
        rest,
        grpc,
        token,
        cluster_token,
        tls,
        history,
    })
}

impl BoundAgent {
    /// The REST address, when REST is served.
    pub fn rest_addr(&self) -> Option<SocketAddr> {
        self.rest.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The gRPC address.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.local_addr().ok()
    }

    /// Samples and serves until `shutdown` is cancelled (or the parent dies, or TearDown), then
    /// lets in-flight requests finish and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let config = self.config;
        // Before the sampler opens anything: the limit it leaves decides the connection cap.
        let connections =
            serve::limits::agent_connections(&config.connections, config.collect.interval);
        let collect = Arc::new(config.collect.clone());
        let plugins = Plugins::new(&config.collect.plugins)?;
        let mut tasks = tokio::task::JoinSet::new();
        let history = self.history;
        let (baseline, snapshots) = start_sampling(
            config.node_id.to_string(),
            Arc::clone(&collect),
            plugins.iter().map(Plugins::collector).collect(),
            Some(Arc::clone(&history)),
            &shutdown,
            &mut tasks,
        )
        .await?;
        if let Some(plugins) = &plugins {
            // The names of the first sample's own families: those no plugin may take.
            let reserved = serve::prometheus::family_names(&baseline);
            plugins.start(reserved, &shutdown, &mut tasks);
        }
        let found = baseline.hardware_summary();

        let state = AppState {
            snapshots,
            baseline,
            interval: config.collect.interval,
            shutdown: shutdown.clone(),
            teardown_allowed: config.is_child() && config.bind.is_loopback(),
            collect,
            started_at: SystemTime::now(),
            node_id_origin: config.node_id_origin,
            history,
            websocket: serve::ws::Keepalive::for_idle_timeout(config.connections.idle_timeout),
        };

        let rest_addr = self.rest.as_ref().and_then(|l| l.local_addr().ok());
        let rest_port = rest_addr.map(|a| a.port());
        let grpc_addr = self.grpc.local_addr().map_err(AgentError::GrpcAddress)?;
        let grpc_port = grpc_addr.port();
        let addresses = serve::announce::Addresses {
            rest: rest_addr,
            grpc: grpc_addr,
            tls: self.tls.is_some(),
            token: self.token.is_some(),
        };

        let guard = serve::Guard::new(config.bind, &config.browser);
        let servers = serve::Servers {
            rest: self
                .rest
                .map(|listener| (listener, serve::rest::router(state.clone(), &guard))),
            grpc: (
                self.grpc,
                tonic::service::Routes::new(grpc_legacy::service(state.clone()))
                    .add_service(grpc_v1::service(state.clone())),
            ),
        };
        let read = ReadAuth {
            token: self.token.clone(),
            own_credential_paths: &[],
            public_paths: serve::dashboard::PATHS,
        };
        servers.spawn(&mut tasks, read, self.tls.clone(), &connections, &shutdown);
        if let Some(pid) = config.parent_pid {
            tasks.spawn(watch_parent(pid, shutdown.clone()));
        }

        if let Some(register) = &config.register {
            let registration = register::Registration::new(
                register,
                &config,
                rest_port,
                self.cluster_token.clone(),
            );
            match registration {
                Ok(registration) => {
                    tasks.spawn(registration.run(shutdown.clone()));
                }
                Err(e) => {
                    shutdown.cancel();
                    while tasks.join_next().await.is_some() {}
                    return Err(e.into());
                }
            }
        }

        // Removed when dropped, after the servers have stopped.
        let _portfile = serve::portfile_or_stop(
            config.portfile.as_deref(),
            (grpc_port, rest_port),
            &shutdown,
            &mut tasks,
        )
        .await?;
        tracing::info!(
            "system_monitor {} serving node {}: found {}",
            crate::VERSION,
            config.node_id,
            found
        );
        addresses.log();

        shutdown.cancelled().await;
        while tasks.join_next().await.is_some() {}
        tracing::info!("system_monitor stopped");
        Ok(())
    }
}

/// Cancels `shutdown` once process `pid` is gone.
async fn watch_parent(pid: u32, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(PARENT_CHECK_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if !parent::alive(pid) {
            tracing::info!(pid, "parent process is gone; shutting down");
            shutdown.cancel();
            return;
        }
    }
}

#[cfg(unix)]
mod parent {
    /// Whether a process with this pid exists (signal 0: EPERM still means it exists).
    pub fn alive(pid: u32) -> bool {
        let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        match rustix::process::test_kill_process(pid) {
            Ok(()) => true,
            Err(e) => e != rustix::io::Errno::SRCH,
        }
    }
}

#[cfg(not(unix))]
mod parent {
    /// Whether a process with this pid exists.
    pub fn alive(pid: u32) -> bool {
        use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
        let Ok(mut system) = System::new() else {
            // Cannot tell: keep running rather than exit on a guess.
            return true;
        };
        let pid = Pid::from_u32(pid);
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing(),
        );
        system.process(pid).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive() {
        assert!(parent::alive(std::process::id()));
        assert!(!parent::alive(u32::MAX - 1));
    }
}
