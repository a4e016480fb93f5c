//! What every agent handler shares: the latest snapshot and the settings that say how fresh it
//! must be; what health makes of a snapshot ([`Health`]); and the node id rule every API that
//! takes a `node_id` follows ([`select_nodes`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{CollectConfig, NodeIdOrigin};
use axum::response::Response;

use super::http::{invalid_node_id, unknown_node_id};
use crate::model::{echo, unix_ms, InvalidNodeIdList, NodeId, Snapshot};

/// A sample older than this many intervals means the sampler has stalled.
pub const STALE_AFTER_INTERVALS: u32 = 3;

/// The most distinct ids an unnamed node answers at once (`?node_id=a,b,…`), each with a copy
/// of its sample: beyond a handful there is no use, only an 8 KiB query made into megabytes.
pub const MAX_ANSWERED_IDS: usize = 32;

/// What a `node_id` question selects of this node's sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selected<'q> {
    /// This node under its own id: no `node_id` asked, or only its own.
    Own,
    /// This node's sample under each of these ids (distinct, in the order first asked; its own
    /// may be among them): a node not named with `--node-id` answers to any id.
    As(Vec<&'q str>),
}

/// Why a `node_id` question is not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAnswered<'q> {
    /// A well-formed id this node does not answer to (REST 404, gRPC NOT_FOUND).
    Unknown(&'q str),
    /// More than [`MAX_ANSWERED_IDS`] distinct ids (REST 400, gRPC INVALID_ARGUMENT).
    TooMany,
}

/// The node id rule of the agent's APIs (REST `/api/system/metrics` and `/api/system/info`,
/// gRPC v1), in one place: `requested` are well-formed ids (checked by the caller, whose
/// protocol says how a malformed one is refused). None asked, or only `own`: this node. A node
/// named with `--node-id` (`origin` [`NodeIdOrigin::Flag`]) knows no other id. A node that was
/// not (its hostname is its id) answers any id with its own sample under that id, as
/// TrackLab's own monitor does: a client that names the local monitor gets what it asked for.
pub fn select_nodes<'q>(
    origin: NodeIdOrigin,
    own: &str,
    requested: &[&'q str],
) -> Result<Selected<'q>, NotAnswered<'q>> {
    let Some(other) = requested.iter().find(|id| **id != own) else {
        return Ok(Selected::Own);
    };
    match origin {
        NodeIdOrigin::Flag => Err(NotAnswered::Unknown(other)),
        NodeIdOrigin::Hostname => {
            let mut seen = std::collections::HashSet::new();
            let mut ids = Vec::new();
            for id in requested {
                if seen.insert(*id) {
                    if ids.len() == MAX_ANSWERED_IDS {
                        return Err(NotAnswered::TooMany);
                    }
                    ids.push(*id);
                }
            }
            Ok(Selected::As(ids))
        }
    }
}

/// The collectors whose sections carry the REST contract's fields (`cpu`, `memory`, `disk`,
/// `network`): while one fails those fields read 0, so health is 503. Any other collector
/// failing (temperatures, pressure, accelerators) leaves the contract whole: health is 200 and
/// lists it as degraded.
pub const CONTRACT_COLLECTORS: [&str; 5] = ["cpu", "memory", "diskstats", "filesystem", "network"];

/// A collector that failed in a snapshot, as `/api/health` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedCollector<'a> {
    /// Its name (`memory`, `thermal`, …).
    pub collector: &'a str,
    /// Why.
    pub error: &'a str,
}

/// What `/api/health` says of one snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health<'a> {
    /// Failed collectors whose contract fields read 0: unhealthy.
    pub failing: Vec<FailedCollector<'a>>,
    /// Failed collectors outside the contract: healthy, but degraded.
    pub degraded: Vec<FailedCollector<'a>>,
    /// Why the data is stale (the sampler has stalled), if it is: unhealthy.
    pub stale: Option<String>,
}

impl<'a> Health<'a> {
    /// Sorts the failed collectors of `snapshot` into failing and degraded. A partial result
    /// (`ok` with an error, e.g. one mount timed out) is not a failure.
    pub fn of(snapshot: &'a Snapshot, stale: Option<String>) -> Health<'a> {
        let mut health = Health {
            stale,
            ..Health::default()
        };
        for status in snapshot.collectors.iter().filter(|c| !c.ok) {
            let failed = FailedCollector {
                collector: &status.name,
                error: status.error.as_deref().unwrap_or("no reason given"),
            };
            if CONTRACT_COLLECTORS.contains(&status.name.as_str()) {
                health.failing.push(failed);
            } else {
                health.degraded.push(failed);
            }
        }
        health
    }

    /// Why the node is unhealthy, in one sentence; None while it is healthy.
    pub fn reason(&self) -> Option<String> {
        let failing = match self.failing.as_slice() {
            [] => None,
            [one] => Some(format!(
                "collector {} failed ({}): its REST fields read 0",
                one.collector, one.error
            )),
            many => Some(format!(
                "collectors {} failed: their REST fields read 0",
                many.iter()
                    .map(|f| f.collector)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        match (&self.stale, failing) {
            (Some(stale), Some(failing)) => Some(format!("{stale}; {failing}")),
            (Some(stale), None) => Some(stale.clone()),
            (None, failing) => failing,
        }
    }
}

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
    /// Whether the node was named (`--node-id`): decides what a `node_id` that is not its own
    /// gets ([`select_nodes`]).
    pub node_id_origin: NodeIdOrigin,
    /// The node's history (`/api/system/history`, gRPC `GetHistory`), fed by the agent.
    pub history: Arc<crate::history::History>,
    /// When `/api/system/ws` gives up on a subscriber (from `--http.idle-timeout`).
    pub websocket: Keepalive,
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
                "last sample is {:.1}s old (more than {} intervals of {}): the sampler has stalled",
                age_ms as f64 / 1000.0,
                STALE_AFTER_INTERVALS,
                humantime::format_duration(self.interval)
            )
        })
    }
}

/// What the agent's REST handlers (and its stream) share.
#[derive(Clone)]
pub struct RestState {
    /// The snapshots and settings every server shares.
    pub app: AppState,
    /// The encoded responses of the latest snapshot.
    pub cache: Arc<super::cache::EncodedCache>,
}

/// Why a `node_id` query is refused; [`Refused::response`] is the JSON error it gets.
#[derive(Debug)]
pub enum Refused<'q> {
    /// Not a list of well-formed ids: 400.
    Malformed(&'q str, InvalidNodeIdList<'q>),
    /// Not answered under the node id rule: 404 for an unknown id, 400 for too many.
    NotAnswered(&'q str, NotAnswered<'q>),
}

impl Refused<'_> {
    pub fn response(self) -> Response {
        match self {
            Self::Malformed(requested, reason) => invalid_node_id(requested, reason),
            Self::NotAnswered(_, NotAnswered::Unknown(id)) => unknown_node_id(id),
            Self::NotAnswered(requested, NotAnswered::TooMany) => invalid_node_id(
                requested,
                format!("at most {MAX_ANSWERED_IDS} different node ids at once"),
            ),
        }
    }

    /// The gRPC status of the same refusal: INVALID_ARGUMENT for a malformed list or too many
    /// ids, NOT_FOUND for an unknown one.
    pub fn status(&self) -> tonic::Status {
        match self {
            Self::Malformed(_, reason) => {
                tonic::Status::invalid_argument(format!("invalid node_id: {reason}"))
            }
            Self::NotAnswered(_, NotAnswered::Unknown(id)) => {
                tonic::Status::not_found(format!("unknown node_id {:?}", echo(id)))
            }
            Self::NotAnswered(_, NotAnswered::TooMany) => tonic::Status::invalid_argument(format!(
                "invalid node_id: at most {MAX_ANSWERED_IDS} different node ids at once"
            )),
        }
    }
}

/// The node id rule of both endpoints ([`select_nodes`]), for this node (`own`, named by
/// `origin`): without `node_id`, this node; with it, every listed id must be well-formed (else
/// 400); then either this node's own id, or, on a node not named with `--node-id`, any ids (at
/// most [`MAX_ANSWERED_IDS`], else 400), answered with its sample under each; else 404. Returns
/// what to answer, or why not.
pub(crate) fn check_node_query<'q>(
    requested: Option<&'q str>,
    own: &str,
    origin: NodeIdOrigin,
) -> Result<Selected<'q>, Refused<'q>> {
    let Some(requested) = requested else {
        return Ok(Selected::Own);
    };
    let ids =
        NodeId::parse_list(requested).map_err(|reason| Refused::Malformed(requested, reason))?;
    select_nodes(origin, own, &ids).map_err(|why| Refused::NotAnswered(requested, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::CollectorStatus;

    #[test]
    fn a_named_node_answers_to_its_own_id_only() {
        let select =
            |requested: &[&'static str]| select_nodes(NodeIdOrigin::Flag, "node-a", requested);
        assert_eq!(select(&[]), Ok(Selected::Own));
        assert_eq!(select(&["node-a", "node-a"]), Ok(Selected::Own));
        assert_eq!(select(&["x"]), Err(NotAnswered::Unknown("x")));
        assert_eq!(
            select(&["node-a", "y", "z"]),
            Err(NotAnswered::Unknown("y"))
        );
    }

    #[test]
    fn an_unnamed_node_answers_any_id_once_each_in_order() {
        let select =
            |requested: &[&'static str]| select_nodes(NodeIdOrigin::Hostname, "host-1", requested);
        assert_eq!(select(&[]), Ok(Selected::Own));
        assert_eq!(select(&["host-1"]), Ok(Selected::Own));
        assert_eq!(select(&["test-node"]), Ok(Selected::As(vec!["test-node"])));
        assert_eq!(
            select(&["b", "host-1", "b", "a"]),
            Ok(Selected::As(vec!["b", "host-1", "a"]))
        );
        let many: Vec<String> = (0..=MAX_ANSWERED_IDS).map(|i| format!("n{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let limit = select_nodes(NodeIdOrigin::Hostname, "host-1", &many[..MAX_ANSWERED_IDS]);
        assert!(matches!(limit, Ok(Selected::As(ids)) if ids.len() == MAX_ANSWERED_IDS));
        assert_eq!(
            select_nodes(NodeIdOrigin::Hostname, "host-1", &many),
            Err(NotAnswered::TooMany)
        );
        // Repeats count once.
        let repeated = vec!["same"; 1000];
        assert_eq!(
            select_nodes(NodeIdOrigin::Hostname, "host-1", &repeated),
            Ok(Selected::As(vec!["same"]))
        );
    }

    fn status(name: &str, ok: bool, error: Option<&str>) -> CollectorStatus {
        CollectorStatus {
            name: name.into(),
            ok,
            error: error.map(str::to_string),
            no_data: false,
            duration_seconds: 0.0,
        }
    }

    #[test]
    fn contract_collectors_fail_health_and_others_degrade_it() {
        let snapshot = Snapshot {
            collectors: vec![
                status("cpu", true, None),
                status("memory", false, Some("reading /x/proc/meminfo: gone")),
                status("thermal", false, Some("no sensors")),
                status("filesystem", true, Some("statvfs timed out on /mnt")),
                // Nothing to read on this host (no conntrack module): neither.
                CollectorStatus {
                    no_data: true,
                    ..status("conntrack", true, Some("no conntrack"))
                },
            ],
            ..Snapshot::default()
        };
        let health = Health::of(&snapshot, None);
        let memory = FailedCollector {
            collector: "memory",
            error: "reading /x/proc/meminfo: gone",
        };
        assert_eq!(health.failing, [memory]);
        assert_eq!(
            health.degraded,
            [FailedCollector {
                collector: "thermal",
                error: "no sensors"
            }]
        );
        assert_eq!(
            health.reason().as_deref(),
            Some("collector memory failed (reading /x/proc/meminfo: gone): its REST fields read 0")
        );

        let degraded_only = Snapshot {
            collectors: vec![status("pressure", false, Some("bad line"))],
            ..Snapshot::default()
        };
        assert_eq!(Health::of(&degraded_only, None).reason(), None);
        let stalled = Health::of(&degraded_only, Some("stalled".into()));
        assert_eq!(stalled.reason().as_deref(), Some("stalled"));
    }
}

/// `/api/system/ws`'s keepalive ([`super::ws`]): time between two server pings at most; also how long a client may stay silent after one.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);

/// How long one frame may take at most to be handed to the client's socket before the client
/// is dropped as too slow.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// When a subscriber is given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Time between two server pings; a client that has sent nothing since the last ping when
    /// the next one is due is dropped.
    pub ping_interval: Duration,
    /// How long one frame may take to be handed to the client's socket.
    pub send_timeout: Duration,
}

impl Keepalive {
    /// Within `--http.idle-timeout`: the connection layer closes a connection that moves no
    /// byte for that long, so a ping goes out at least twice in it, and a send blocked for
    /// half of it gives up first (and says why in the log) rather than leaving it to the cut.
    pub fn for_idle_timeout(idle_timeout: Duration) -> Keepalive {
        let half = (idle_timeout / 2).max(Duration::from_millis(10));
        Keepalive {
            ping_interval: PING_INTERVAL.min(half),
            send_timeout: SEND_TIMEOUT.min(half),
        }
    }
}

impl Default for Keepalive {
    fn default() -> Keepalive {
        Keepalive {
            ping_interval: PING_INTERVAL,
            send_timeout: SEND_TIMEOUT,
        }
    }
}
