//! The open-file limit and the connection cap derived from it, for the agent and the
//! coordinator alike: the soft limit is raised towards the hard one at start, and client
//! connections get what is left after a reserve for the sampler (and the coordinator's polls).

use std::time::Duration;

use super::connections::Connections;
use crate::config::ConnectionConfig;

/// Descriptors kept out of the clients' reach: the sampler's files under `/proc` and `/sys`,
/// vendor libraries' device files, the listeners and the process's own. An idle agent holds
/// about 15, plus the small /proc and sysfs files the sampler keeps open (`collect::KeptFile`):
/// 12, and 3 per network interface for up to 24 interfaces (36 in all on a host with 4); the
/// sampler opens a few more at a time while it reads.
pub const FD_RESERVE: usize = 128;

/// The agent's default `--max-connections` when the limit allows more: a node exporter has a
/// handful of clients (Prometheus, TrackLab, a coordinator, dashboards), not thousands.
pub const AGENT_DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Fewest connections a derived cap allows, however low the limit: below it the servers would
/// be of no use, and a limit that low is reported.
pub const MIN_CONNECTIONS: usize = 16;

/// The coordinator's descriptors beside its agents' connections (listeners, clients, files).
pub const COORDINATOR_SPARE: usize = 1024;

/// The soft open-file limit once [`raise_open_files`] has run; `None` where it cannot be read
/// (not unix) or is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit now in force.
    pub soft: Option<usize>,
    /// The hard limit it can be raised to.
    pub hard: Option<usize>,
}

impl Default for Connections {
    /// The default timeouts and the agent's default cap, without looking at the open-file
    /// limit: for servers built outside the agent and the coordinator (tests,
    /// [`super::tls_listener::serve`]).
    fn default() -> Self {
        Self::new(AGENT_DEFAULT_MAX_CONNECTIONS, &ConnectionConfig::default())
    }
}

/// The default connection cap of an agent: what the open-file limit leaves after
/// [`FD_RESERVE`], at most [`AGENT_DEFAULT_MAX_CONNECTIONS`].
pub fn agent_max_connections(files: OpenFiles) -> usize {
    files
        .soft
        .map_or(AGENT_DEFAULT_MAX_CONNECTIONS, |soft| {
            soft.saturating_sub(FD_RESERVE)
                .min(AGENT_DEFAULT_MAX_CONNECTIONS)
        })
        .max(MIN_CONNECTIONS)
}

/// The default connection cap of a coordinator polling up to `max_nodes` agents: each agent
/// may hold one kept-alive registration connection to it, as it holds one poll connection to
/// the agent, so the limit beyond the reserve is shared evenly between the two when it is
/// short, and clients get `max_nodes` plus [`COORDINATOR_SPARE`] when it is not.
pub fn coordinator_max_connections(files: OpenFiles, max_nodes: usize) -> usize {
    let wanted = max_nodes.saturating_add(COORDINATOR_SPARE);
    files
        .soft
        .map_or(wanted, |soft| {
            let usable = soft.saturating_sub(FD_RESERVE);
            let polls = max_nodes.min(usable / 2);
            (usable - polls).min(wanted)
        })
        .max(MIN_CONNECTIONS)
}

/// Descriptors a coordinator with `agents` agents needs: one poll and one registration
/// connection each, its own clients, and the spare.
pub fn coordinator_needs(agents: usize) -> usize {
    agents
        .saturating_mul(2)
        .saturating_add(COORDINATOR_SPARE)
        .saturating_add(FD_RESERVE)
}

/// An explicit `--max-connections` the limit cannot hold is cut to what it can, so that clients
/// never take the sampler's descriptors; the caller says so.
pub fn fit_max_connections(wanted: usize, files: OpenFiles) -> usize {
    files.soft.map_or(wanted, |soft| {
        wanted
            .min(soft.saturating_sub(FD_RESERVE))
            .max(MIN_CONNECTIONS.min(wanted))
    })
}

/// The agent's connection limits: raises the open-file limit for `--max-connections` (or the
/// default cap) plus the reserve, then caps connections at what the limit allows. `interval`:
/// the time between samples, which a gRPC watch stream may be silent for (see `idle_timeout`).
pub fn agent_connections(config: &ConnectionConfig, interval: Duration) -> Connections {
    let wanted = config
        .max_connections
        .unwrap_or(AGENT_DEFAULT_MAX_CONNECTIONS);
    let files = raise_open_files(wanted.saturating_add(FD_RESERVE));
    let max = match config.max_connections {
        Some(n) => explicit(n, files),
        None => agent_max_connections(files),
    };
    tracing::debug!(max, soft = ?files.soft, "client connections capped");
    Connections::new(max, &idle_timeout(config, interval))
}

/// The coordinator's connection limits, for up to `max_nodes` agents polled every `interval`:
/// raises the open-file limit for their polls and registrations (see [`coordinator_needs`]);
/// whether it is short is told by [`FileBudget::check`] once agents are known.
pub fn coordinator_connections(
    config: &ConnectionConfig,
    max_nodes: usize,
    interval: Duration,
) -> (Connections, FileBudget) {
    let mut wanted = coordinator_needs(max_nodes);
    if let Some(n) = config.max_connections {
        wanted = wanted.max(n.saturating_add(max_nodes).saturating_add(FD_RESERVE));
    }
    let files = raise_open_files(wanted);
    let max = match config.max_connections {
        Some(n) => explicit(n, files),
        None => coordinator_max_connections(files, max_nodes),
    };
    tracing::debug!(max, soft = ?files.soft, "client connections capped");
    let budget = FileBudget {
        soft: files.soft,
        max_nodes,
        warned: false,
    };
    (
        Connections::new(max, &idle_timeout(config, interval)),
        budget,
    )
}

/// A watch stream (gRPC v1 `WatchMetrics`) sends one message per sample or poll, and nothing in
/// between: the idle timeout is kept above two intervals, so that a long `--interval` does not
/// cut live streams.
fn idle_timeout(config: &ConnectionConfig, interval: Duration) -> ConnectionConfig {
    ConnectionConfig {
        idle_timeout: config.idle_timeout.max(interval.saturating_mul(2)),
        ..config.clone()
    }
}

/// An explicit `--max-connections`, cut to what the limit holds, with a warning when it is.
fn explicit(wanted: usize, files: OpenFiles) -> usize {
    let max = fit_max_connections(wanted, files);
    if max < wanted {
        tracing::warn!(
            "--max-connections {wanted} needs {} open files but the limit is {}: serving at \
             most {max} connections; raise the limit (ulimit -n / LimitNOFILE=) or lower \
             --max-connections",
            wanted.saturating_add(FD_RESERVE),
            files.soft.unwrap_or(0),
        );
    }
    max
}

/// The coordinator's open-file limit against the agents it knows: warns once, with the numbers
/// and the fix, when they need more descriptors than the limit gives. Quiet while the limit is
/// enough for the agents actually known, however large `--max-nodes` is.
#[derive(Debug)]
pub struct FileBudget {
    /// The soft limit in force (`None`: unknown or unlimited, never short).
    soft: Option<usize>,
    /// `--max-nodes`, for the message.
    max_nodes: usize,
    /// Whether the warning was given (once per run).
    warned: bool,
}

impl FileBudget {
    /// Whether `agents` need more than the limit; warns the first time they do.
    pub fn check(&mut self, agents: usize) -> bool {
        let needs = coordinator_needs(agents);
        let Some(soft) = self.soft.filter(|&soft| soft < needs) else {
            return false;
        };
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                "open-file limit {soft} is below the {needs} that {agents} agents need (one poll \
                 and one registration connection each, plus {} spare): raise it (ulimit -n / \
                 LimitNOFILE=) or lower --max-nodes (now {})",
                COORDINATOR_SPARE + FD_RESERVE,
                self.max_nodes,
            );
        }
        true
    }
}

#[cfg(unix)]
pub use unix::raise_open_files;

#[cfg(unix)]
mod unix {
    use super::OpenFiles;
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

    /// The soft limit is never raised past this even when the hard limit is unlimited: Linux
    /// refuses more than `fs.nr_open` (2^20 by default).
    const CEILING: u64 = 1 << 20;

    /// Raises the soft open-file limit towards `wanted`, as far as the hard limit allows, and
    /// returns the limits then in force. A limit already at or above `wanted` is left alone.
    pub fn raise_open_files(wanted: usize) -> OpenFiles {
        let limit = getrlimit(Resource::Nofile);
        let wanted = (wanted as u64).min(CEILING);
        let target = limit.maximum.map_or(wanted, |max| max.min(wanted));
        if let Some(current) = limit.current.filter(|&current| current < target) {
            let raised = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(target),
                    maximum: limit.maximum,
                },
            );
            match raised {
                Ok(()) => tracing::debug!(from = current, to = target, "open-file limit raised"),
                Err(e) => tracing::debug!("cannot raise the open-file limit to {target}: {e}"),
            }
        }
        let now = getrlimit(Resource::Nofile);
        OpenFiles {
            soft: now.current.map(to_usize),
            hard: now.maximum.map(to_usize),
        }
    }

    fn to_usize(n: u64) -> usize {
        usize::try_from(n).unwrap_or(usize::MAX)
    }
}

/// Other systems: the limit is left as it is and not known.
#[cfg(not(unix))]
pub fn raise_open_files(_wanted: usize) -> OpenFiles {
    OpenFiles {
        soft: None,
        hard: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soft(n: usize) -> OpenFiles {
        OpenFiles {
            soft: Some(n),
            hard: Some(n),
        }
    }

    #[test]
    fn the_agent_keeps_a_reserve() {
        assert_eq!(agent_max_connections(soft(256)), 128);
        assert_eq!(agent_max_connections(soft(1024)), 896);
        assert_eq!(agent_max_connections(soft(1_048_576)), 1024);
        assert_eq!(agent_max_connections(soft(64)), MIN_CONNECTIONS);
        let unknown = OpenFiles {
            soft: None,
            hard: None,
        };
        assert_eq!(agent_max_connections(unknown), 1024);
    }

    #[test]
    fn the_coordinator_shares_a_short_limit_with_its_polls() {
        // Plenty: every agent may keep a registration connection, plus the spare.
        assert_eq!(coordinator_max_connections(soft(1_048_576), 20_000), 21_024);
        // Short: half of what the reserve leaves.
        assert_eq!(coordinator_max_connections(soft(20_000), 20_000), 9_936);
        // Few agents: the polls take their share, clients the rest up to the spare.
        assert_eq!(coordinator_max_connections(soft(4096), 10), 1034);
        assert_eq!(coordinator_needs(10_000), 21_152);
    }

    #[test]
    fn an_explicit_cap_fits_the_limit() {
        assert_eq!(fit_max_connections(100, soft(1024)), 100);
        assert_eq!(fit_max_connections(5000, soft(1024)), 896);
        assert_eq!(fit_max_connections(5000, soft(100)), MIN_CONNECTIONS);
        assert_eq!(fit_max_connections(4, soft(100)), 4);
    }

    #[test]
    fn the_coordinator_warns_only_when_its_agents_need_more() {
        let mut budget = FileBudget {
            soft: Some(20_000),
            max_nodes: 20_000,
            warned: false,
        };
        assert!(!budget.check(0));
        assert!(!budget.check(9_000));
        assert!(budget.check(9_500));
        assert!(budget.warned);
        let mut unlimited = FileBudget {
            soft: None,
            max_nodes: 20_000,
            warned: false,
        };
        assert!(!unlimited.check(20_000));
    }

    #[test]
    fn watch_streams_outlast_the_idle_timeout() {
        let config = ConnectionConfig::default();
        let short = idle_timeout(&config, Duration::from_secs(1));
        assert_eq!(short.idle_timeout, config.idle_timeout);
        let long = idle_timeout(&config, Duration::from_secs(300));
        assert_eq!(long.idle_timeout, Duration::from_secs(600));
    }

    #[cfg(unix)]
    #[test]
    fn raising_never_lowers() {
        let before = raise_open_files(0);
        let after = raise_open_files(before.soft.unwrap_or(1024));
        assert_eq!(before.soft, after.soft);
    }
}
