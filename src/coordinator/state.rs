//! What the coordinator's handlers share (REST and gRPC): the registry, the client and token
//! agents are asked with, its own host (`--sample-self`), the cluster's history and the
//! encoded frames of `/api/system/ws`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::cluster_history::ClusterHistory;
use super::frames::RoundFrames;
use super::metrics::CoordinatorMetrics;
use super::registry::{Agent, Registry};
use crate::auth::Token;
use crate::model::Snapshot;
use crate::serve::ws;

/// The coordinator's own sampled host (`--sample-self`).
#[derive(Clone)]
pub struct LocalNode {
    /// Its latest snapshot.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Its registry entry (role `master`).
    pub agent: Arc<Agent>,
    /// Its history, kept as an agent keeps its own (`--history.*`).
    pub history: Arc<crate::history::History>,
}

/// What the handlers share.
#[derive(Clone)]
pub struct ClusterState {
    /// The agents.
    pub registry: Arc<Registry>,
    /// The poller's counters.
    pub metrics: Arc<CoordinatorMetrics>,
    /// For fetching agents' `/api/system/info`.
    pub client: reqwest::Client,
    /// The read token: sent to agents when fetching from them (as the poller does).
    pub token: Option<Token>,
    /// The registration secret: required of every registration; without one, registration
    /// is refused.
    pub cluster_token: Option<Token>,
    /// The coordinator's node id (`/metrics` label, health).
    pub node_id: Arc<str>,
    /// Per-request deadline towards agents.
    pub poll_timeout: Duration,
    /// Time between poll rounds (health's stall check).
    pub poll_interval: Duration,
    /// Networks any peer may register addresses in.
    pub allow_cidrs: Arc<[ipnet::IpNet]>,
    /// When the coordinator started.
    pub started_at: SystemTime,
    /// Its own host, with `--sample-self`.
    pub local: Option<LocalNode>,
    /// Cancelled on shutdown: ends streams so that graceful shutdown is not held up.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// When `/api/system/ws` gives up on a subscriber (from `--http.idle-timeout`).
    pub websocket: ws::Keepalive,
    /// The cluster's resources over time (`/api/cluster/history`).
    pub cluster_history: Arc<ClusterHistory>,
    /// Every node's metrics array in each view, encoded once per round for `/api/system/ws`.
    pub frames: Arc<RoundFrames>,
}
