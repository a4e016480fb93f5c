//! The cluster's own history: after every poll round, the `/api/cluster/info` resources (the
//! sums of [`cluster_resources`]) and the agents per status, kept in a history store as a
//! node's history is (the same tiers, the same query code): every round for an hour, per minute
//! for a day. Served by [`super::history`] at `/api/cluster/history`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::registry::{NodeView, Registry, Status};
use crate::config::HistoryConfig;
use crate::history::{Answer, History};
use crate::model::unix_ms;
use crate::model::wire::Resources;
use crate::serve::history_query::{HistoryParams, HistoryRefusal};
use crate::serve::http::round3;

/// The node id of the cluster's own history.
pub const CLUSTER_NODE_ID: &str = "cluster";

/// How long the cluster history keeps every poll round's point.
pub const CLUSTER_RAW: Duration = Duration::from_secs(3600);

/// How long it keeps per-minute min, max and mean.
pub const CLUSTER_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The cluster's total and used resources: the sums over the nodes of `views` that are not
/// offline (an offline node's resources are not the cluster's now), busy cores rounded to
/// thousandths. What `/api/cluster/info` reports and the cluster history keeps.
pub fn cluster_resources(views: &[NodeView]) -> (Resources, Resources) {
    let mut total = Resources::default();
    let mut used = Resources::default();
    for view in views.iter().filter(|v| v.status != Status::Offline) {
        let Some(f) = view.data.as_ref().map(|d| &d.figures) else {
            continue;
        };
        total.cpu += f.cpus as f64;
        total.memory += f.memory_total_bytes;
        total.accelerators += f.accelerators;
        used.cpu += f.cpu_busy_cores;
        used.memory += f.memory_used_bytes;
        used.accelerators += f.accelerators_busy;
    }
    used.cpu = round3(used.cpu);
    (total, used)
}

/// One point of the cluster history: `/api/cluster/info`'s resources and `/api/health`'s
/// agent counts, after a poll round.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPoint {
    /// Logical CPUs, memory bytes and accelerators of the nodes not offline.
    pub total_resources: Resources,
    /// Busy cores, used memory and busy accelerators of those nodes.
    pub used_resources: Resources,
    /// Agents by status.
    pub agents: AgentCounts,
}

/// Agents by status.
#[derive(Debug, Serialize)]
pub struct AgentCounts {
    /// Status online.
    pub online: u64,
    /// Status degraded.
    pub degraded: u64,
    /// Status offline.
    pub offline: u64,
}

/// The cluster's resources over time, in a [`History`] as a node's are (the same tiers and
/// the same query code): every poll round's point for [`CLUSTER_RAW`], per-minute min, max and
/// mean for [`CLUSTER_RETENTION`]. In memory only.
pub struct ClusterHistory {
    /// The tiers (no `--history.path`: in memory only): the feeder appends, queries read.
    history: History,
}

impl ClusterHistory {
    /// An empty history of points every `poll_interval`.
    pub fn new(poll_interval: Duration) -> ClusterHistory {
        let keep = HistoryConfig {
            raw: CLUSTER_RAW,
            retention: CLUSTER_RETENTION,
            path: None,
        };
        ClusterHistory {
            history: History::new(&keep, poll_interval),
        }
    }

    /// Keeps `point` at `timestamp_ms` (a time not after the last is ignored).
    pub fn append(&self, timestamp_ms: i64, point: &ClusterPoint) {
        self.history.append_at(timestamp_ms, point);
    }

    /// Answers `params` (its `node_id` aside) at `now_ms`; without `fields`, every field.
    pub fn query(
        &self,
        params: &HistoryParams,
        now_ms: i64,
    ) -> Result<Answer, HistoryRefusal<'static>> {
        let mut query = params.query(now_ms)?;
        query.fields.get_or_insert_with(|| vec!["*".to_string()]);
        Ok(self.history.query(CLUSTER_NODE_ID, &query)?)
    }

    /// Bytes of memory it holds.
    pub fn heap_bytes(&self) -> usize {
        self.history.heap_bytes()
    }
}

/// The cluster's point now.
pub fn cluster_point(registry: &Registry, now: Instant) -> ClusterPoint {
    let (total_resources, used_resources) = cluster_resources(&registry.nodes(now, false));
    let [online, degraded, offline] = registry.counts(now).map(|n| n as u64);
    ClusterPoint {
        total_resources,
        used_resources,
        agents: AgentCounts {
            online,
            degraded,
            offline,
        },
    }
}

/// Appends the cluster's point after every poll round, until `shutdown`.
pub async fn feed_cluster_history(
    registry: Arc<Registry>,
    history: Arc<ClusterHistory>,
    shutdown: CancellationToken,
) {
    let mut rounds = registry.rounds();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = rounds.changed() => if changed.is_err() { return },
        }
        let point = cluster_point(&registry, Instant::now());
        history.append(unix_ms(SystemTime::now()), &point);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::flatten::Number;
    use crate::history::store::MINUTE_MS;
    use crate::history::HistoryError;
    use axum::extract::Query;

    fn point(used_cpu: f64) -> ClusterPoint {
        ClusterPoint {
            total_resources: Resources {
                cpu: 64.0,
                memory: 1 << 40,
                accelerators: 8,
            },
            used_resources: Resources {
                cpu: used_cpu,
                memory: 1 << 39,
                accelerators: 2,
            },
            agents: AgentCounts {
                online: 3,
                degraded: 0,
                offline: 1,
            },
        }
    }

    /// A query string as REST reads it.
    fn params(query: &str) -> HistoryParams {
        let uri: axum::http::Uri = format!("/?{query}").parse().unwrap();
        Query::<HistoryParams>::try_from_uri(&uri).unwrap().0
    }

    fn float(n: Number) -> f64 {
        match n {
            Number::Unsigned(v) => v as f64,
            Number::Signed(v) => v as f64,
            Number::Float(v) => v,
        }
    }

    #[test]
    fn a_day_is_kept_per_minute_and_the_last_hour_per_round() {
        let history = ClusterHistory::new(Duration::from_secs(1));
        let t0: i64 = 1_700_000_000_000 / MINUTE_MS * MINUTE_MS;
        // Three minutes and a bit of rounds, one a second: busy cores = the second's number.
        for i in 0..190 {
            history.append(t0 + i * 1_000, &point(i as f64));
        }
        let latest = t0 + 189_000;

        // The last hour (the window starts in the raw tier): every round.
        let answer = history
            .query(
                &params(&format!("from={}&to={latest}", latest - 3_600_000)),
                latest,
            )
            .unwrap();
        assert_eq!(answer.node_id, CLUSTER_NODE_ID);
        assert_eq!(answer.step_ms, 1_000);
        assert_eq!(answer.timestamps.len(), 190);
        let fields: Vec<&str> = answer.series.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "totalResources.cpu",
                "totalResources.memory",
                "totalResources.accelerators",
                "usedResources.cpu",
                "usedResources.memory",
                "usedResources.accelerators",
                "agents.online",
                "agents.degraded",
                "agents.offline",
            ]
        );

        // A day, per minute (the window starts before the raw tier): 1,441 points, the closed
        // minutes' means, minima and maxima; the current minute not yet.
        let day = |agg: &str| {
            history
                .query(
                    &params(&format!(
                        "from={}&to={latest}&step=1m&agg={agg}&fields=usedResources.cpu",
                        latest - 24 * 3_600_000
                    )),
                    latest,
                )
                .unwrap()
        };
        let mean = day("mean");
        assert_eq!(mean.step_ms, 60_000);
        assert_eq!(mean.timestamps.len(), 1_441);
        let values = &mean.series[0].1;
        let last = values.len() - 1;
        let at = |i: usize| values[i].map(float);
        // Minutes t0, t0+1, t0+2 are the last four buckets but the current one.
        assert_eq!(at(last - 3), Some(29.5));
        assert_eq!(at(last - 2), Some(89.5));
        assert_eq!(at(last - 1), Some(149.5));
        assert_eq!(at(last), None);
        assert!(values[..last - 3].iter().all(Option::is_none));
        let max = day("max");
        assert_eq!(max.series[0].1[last - 1].map(float), Some(179.0));
        let min = day("min");
        assert_eq!(min.series[0].1[last - 2].map(float), Some(60.0));

        // Without fields, every field; a bad question is refused as on a node.
        assert!(matches!(
            history.query(&params("step=soon"), latest),
            Err(HistoryRefusal::Question(_))
        ));
        assert!(matches!(
            history.query(&params("from=0&to=86400000000&step=1s"), latest),
            Err(HistoryRefusal::History(HistoryError::Query(_)))
        ));
        assert!(history.heap_bytes() > 0);
    }
}
