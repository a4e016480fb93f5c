//! What every agent handler shares: the latest snapshot and the settings that say how fresh it
//! must be.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::CollectConfig;
use crate::model::{unix_ms, Snapshot};

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

/// What the agent's REST handlers (and its stream) share.
#[derive(Clone)]
pub struct RestState {
    /// The snapshots and settings every server shares.
    pub app: AppState,
    /// The encoded responses of the latest snapshot.
    pub cache: Arc<super::cache::EncodedCache>,
}
