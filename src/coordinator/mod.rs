//! Coordinator mode (`system_monitor coordinator`): learns agents by registration, DNS and a
//! static list, keeps each one's latest metrics element fresh by polling, and serves the same
//! REST, gRPC v1 and `/metrics` surface for the whole cluster. Reads [`Config`] (ports, bind,
//! node id, the read and cluster tokens, collectors for `--sample-self`) and
//! [`CoordinatorConfig`].
//!
//! - [`registry`]: the agents, keyed by URL and indexed by node id; raw element bytes.
//! - [`discovery`] and [`dns`]: the static list and `--discover-dns`.
//! - [`poller`]: the fan-out; [`metrics`]: its counters.
//! - [`api`]: REST (and registration); [`grpc`]: v1 for the cluster; [`element`]: agents' JSON.
//! - [`state`]: what the handlers share; [`history`]: nodes' history asked of their agents;
//!   [`cluster_history`]: the cluster's own.

pub mod api;
pub mod cluster_history;
pub mod discovery;
pub mod dns;
pub mod element;
pub mod frames;
pub mod grpc;
pub mod history;
pub mod metrics;
pub mod poller;
pub mod registry;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, ReadAuth, Token, TokenKind};
use crate::config::{Config, CoordinatorConfig};
use crate::http_client::{self, ClientOptions};
use crate::model::wire::REGISTER_PATH;
use crate::serve::{self, ListenError, PortfileError};
use crate::tls::{Identity, TrustRoots};
use registry::{AgentUrl, Registry, RegistrySettings};
use state::{ClusterState, LocalNode};

/// Why the coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Portfile(#[from] PortfileError),
    #[error(transparent)]
    Sampler(#[from] crate::collect::SamplerError),
    #[error("cannot start the poller thread: {0}")]
    PollerThread(#[source] std::io::Error),
    #[error("the gRPC listener has no address: {0}")]
    GrpcAddress(#[source] std::io::Error),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Static(#[from] discovery::StaticError),
    #[error(transparent)]
    Client(#[from] http_client::ClientError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("the coordinator serves REST: --disable-rest-api does not apply to it")]
    RestDisabled,
    #[error(transparent)]
    History(#[from] crate::history::log::LogError),
}

/// The coordinator with its ports bound and its static agents read, ready to
/// [`run`](BoundCoordinator::run).
pub struct BoundCoordinator {
    config: Config,
    coordinator: CoordinatorConfig,
    rest: TcpListener,
    grpc: TcpListener,
    /// The read token (`--auth-token-file`): guards reads, and is sent when polling agents.
    token: Option<Token>,
    /// The registration secret (`--cluster-token-file`): without it registration is refused.
    cluster_token: Option<Token>,
    static_agents: Vec<AgentUrl>,
    /// `--tls-cert`/`--tls-key`, read: REST and gRPC are served over TLS.
    tls: Option<Identity>,
    /// What https agents are verified against (see [`client_roots`]).
    roots: Option<TrustRoots>,
}

/// Reads the tokens, the TLS files and the static agents and binds the ports: every mistake in
/// the flags or files shows before anything runs. The two tokens must differ: with one secret
/// for both, anyone who may read could register agents.
pub async fn bind(
    config: Config,
    coordinator: CoordinatorConfig,
) -> Result<BoundCoordinator, CoordinatorError> {
    if !config.rest_enabled {
        return Err(CoordinatorError::RestDisabled);
    }
    let token = Token::load(TokenKind::Auth, config.auth_token_file.as_deref())?;
    let cluster_token = Token::load(TokenKind::Cluster, config.cluster_token_file.as_deref())?;
    if let (Some(read), Some(register)) = (&token, &cluster_token) {
        if read.same_secret(register) {
            return Err(AuthError::Same.into());
        }
    }
    let tls = Identity::from_config(&config.tls)?;
    let static_agents =
        discovery::static_agents(&coordinator.agents, coordinator.agents_file.as_deref())?;
    let roots = client_roots(&config, &static_agents)?;
    let rest = serve::listen("REST", SocketAddr::new(config.bind, config.rest_port)).await?;
    let grpc = serve::listen("gRPC", SocketAddr::new(config.bind, config.grpc_port)).await?;
    Ok(BoundCoordinator {
        config,
        coordinator,
        rest,
        grpc,
        token,
        cluster_token,
        static_agents,
        tls,
        roots,
    })
}

/// The scheme of agents found by DNS: `https` when the coordinator is given a CA to verify
/// agents with (`--tls-ca`: the coordinator's only use of it), else plain HTTP.
fn agent_scheme(config: &Config) -> &'static str {
    if config.tls.ca.is_some() {
        "https"
    } else {
        "http"
    }
}

/// What https agents are verified against: the `--tls-ca` bundle; else, when an https agent is
/// already known (a static one), the system's roots read now, so that a host without them fails
/// at start; else `None`: the system's roots read at the first https handshake (a registration
/// may bring an https agent later; a plain-http cluster never reads them).
fn client_roots(
    config: &Config,
    static_agents: &[AgentUrl],
) -> Result<Option<TrustRoots>, crate::tls::TlsError> {
    let https_now = static_agents.iter().any(|a| a.base.scheme() == "https");
    if config.tls.ca.is_some() || https_now {
        TrustRoots::load(config.tls.ca.as_deref()).map(Some)
    } else {
        Ok(None)
    }
}

impl BoundCoordinator {
    /// The REST address.
    pub fn rest_addr(&self) -> Option<SocketAddr> {
        self.rest.local_addr().ok()
    }

    /// Discovers, polls and serves until `shutdown`, then lets in-flight requests finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), CoordinatorError> {
        let Self {
            config,
            coordinator,
            rest,
            grpc,
            token,
            cluster_token,
            static_agents,
            tls,
            roots,
        } = self;
        let (connections, budget) = serve::limits::coordinator_connections(
            &config.connections,
            coordinator.max_nodes,
            coordinator.poll_interval,
        );
        let registry = Arc::new(Registry::new(RegistrySettings {
            offline_after: coordinator.offline_after,
            max_nodes: coordinator.max_nodes,
            heartbeat: config.register_interval,
        }));
        let refused = registry.add_static(static_agents);
        if refused > 0 {
            tracing::warn!(refused, "--max-nodes reached: static agents left out");
        }
        let client_options = ClientOptions {
            connect_timeout: coordinator.poll_timeout,
            roots,
            ..ClientOptions::default()
        };
        let client = http_client::build(&client_options)?;
        let metrics = Arc::new(metrics::CoordinatorMetrics::default());
        let mut tasks = tokio::task::JoinSet::new();

        let local = if coordinator.sample_self {
            let collect = Arc::new(config.collect.clone());
            let (first, snapshots) = crate::collect::start_sampling(
                config.node_id.to_string(),
                collect,
                Vec::new(),
                None,
                &shutdown,
                &mut tasks,
            )
            .await?;
            tracing::info!(
                "own host sampled too (--sample-self): found {}",
                first.hardware_summary()
            );
            let agent = registry.add_master(config.node_id.as_str());
            let local = LocalNode {
                snapshots,
                agent,
                history: Arc::new(crate::history::History::open(
                    &config.history,
                    config.collect.interval,
                )?),
            };
            tasks.spawn(publish_local(
                Arc::clone(&registry),
                local.clone(),
                shutdown.clone(),
            ));
            Some(local)
        } else {
            None
        };

        let state = ClusterState {
            registry: Arc::clone(&registry),
            metrics: Arc::clone(&metrics),
            client: client.clone(),
            token: token.clone(),
            cluster_token,
            node_id: config.node_id.as_str().into(),
            poll_timeout: coordinator.poll_timeout,
            poll_interval: coordinator.poll_interval,
            allow_cidrs: coordinator.allow_register_cidrs.clone().into(),
            started_at: SystemTime::now(),
            local,
            shutdown: shutdown.clone(),
            websocket: serve::ws::Keepalive::for_idle_timeout(config.connections.idle_timeout),
            cluster_history: Arc::new(cluster_history::ClusterHistory::new(
                coordinator.poll_interval,
            )),
            frames: Arc::default(),
        };
        tasks.spawn(cluster_history::feed_cluster_history(
            Arc::clone(&registry),
            Arc::clone(&state.cluster_history),
            shutdown.clone(),
        ));

        // The poller gets its own client: a client's pooled connections live on the runtime
        // that opened them, and the poller runs on a runtime of its own.
        let poller = poller::Poller {
            registry: Arc::clone(&registry),
            client: http_client::build(&client_options)?,
            token: token.clone(),
            timeout: coordinator.poll_timeout,
            metrics,
        };
        let poller_thread = poller::spawn_thread(
            poller,
            coordinator.poll_interval,
            coordinator.poll_concurrency,
            shutdown.clone(),
        )
        .map_err(CoordinatorError::PollerThread)?;
        if !coordinator.dns_names.is_empty() {
            let dns = discovery::DnsDiscovery {
                targets: coordinator.dns_names.clone(),
                interval: coordinator.dns_interval,
                server: coordinator.dns_server,
                scheme: agent_scheme(&config),
            };
            tasks.spawn(discovery::run_dns(
                Arc::clone(&registry),
                dns,
                shutdown.clone(),
            ));
        }
        tasks.spawn(expire_registrations(
            Arc::clone(&registry),
            budget,
            shutdown.clone(),
        ));

        let rest_addr = rest.local_addr().ok();
        let rest_port = rest_addr.map(|a| a.port());
        let grpc_addr = grpc.local_addr().map_err(CoordinatorError::GrpcAddress)?;
        let grpc_port = grpc_addr.port();
        let addresses = serve::announce::Addresses {
            rest: rest_addr,
            grpc: grpc_addr,
            tls: tls.is_some(),
            token: token.is_some(),
        };
        let guard = serve::Guard::new(config.bind, &config.browser);
        let servers = serve::Servers {
            rest: Some((rest, api::router(state.clone(), &guard))),
            grpc: (grpc, tonic::service::Routes::new(grpc::service(state))),
        };
        // Registration checks the cluster token itself: the read token is not asked of it.
        let read = ReadAuth {
            token,
            own_credential_paths: &[REGISTER_PATH],
            public_paths: serve::dashboard::PATHS,
        };
        servers.spawn(&mut tasks, read, tls, &connections, &shutdown);
        // Removed when dropped, after the servers have stopped.
        let _portfile = serve::portfile_or_stop(
            config.portfile.as_deref(),
            (grpc_port, rest_port),
            &shutdown,
            &mut tasks,
        )
        .await?;
        tracing::info!(
            "system_monitor {} coordinator serving as node {}: {} known, polled every {}",
            crate::VERSION,
            config.node_id,
            match registry.workers().len() {
                1 => "1 agent".to_string(),
                n => format!("{n} agents"),
            },
            humantime::format_duration(coordinator.poll_interval)
        );
        addresses.log();
        shutdown.cancelled().await;
        while tasks.join_next().await.is_some() {}
        if tokio::task::spawn_blocking(move || poller_thread.join())
            .await
            .map_or(true, |joined| joined.is_err())
        {
            tracing::error!("the poller thread panicked");
        }
        tracing::info!("system_monitor coordinator stopped");
        Ok(())
    }
}

/// Stores each new snapshot of the coordinator's own host as its `master` node's element,
/// encoded exactly as an agent encodes it, and keeps it in the host's history.
async fn publish_local(registry: Arc<Registry>, local: LocalNode, shutdown: CancellationToken) {
    let mut snapshots = local.snapshots;
    loop {
        let snapshot = Arc::clone(&snapshots.borrow_and_update());
        local
            .history
            .append(&crate::model::wire::NodeMetrics::of(&snapshot));
        let stored = crate::model::wire::metrics_array_json([&*snapshot])
            .map_err(|e| e.to_string())
            .and_then(|json| element::split_agent_answer(&json).map_err(|e| e.to_string()))
            .and_then(|(element, figures)| {
                registry.record_data(&local.agent, element.into(), figures, Instant::now())
            });
        if let Err(e) = stored {
            tracing::error!("cannot store the coordinator's own sample: {e}");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = snapshots.changed() => if changed.is_err() { break },
        }
    }
    // Written out what `--history.path` lacks, as the agent does.
    local.history.close();
}

/// Drops lapsed registrations of dead agents, once per heartbeat interval, and checks that the
/// open-file limit holds the agents known (warning once when it does not).
async fn expire_registrations(
    registry: Arc<Registry>,
    mut budget: serve::limits::FileBudget,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(registry.settings().heartbeat);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {
                registry.expire(Instant::now());
                budget.check(registry.len());
            }
        }
    }
}
