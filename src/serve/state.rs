//! What every agent handler shares: the latest snapshot and the settings that say how fresh it
//! must be; and what health makes of a snapshot ([`Health`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::CollectConfig;
use crate::model::{unix_ms, Snapshot};

/// A sample older than this many intervals means the sampler has stalled.
pub const STALE_AFTER_INTERVALS: u32 = 3;

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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::CollectorStatus;

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
