//! Pid-tree metrics for the legacy `GetStats`: CPU time, resident memory and threads of one process
//! and all its descendants, read on demand (the one exception to "handlers never collect").
//!
//! The Linux backend reads `<procfs>/<pid>/stat` through [`HostPaths`](super::HostPaths), so it
//! works against a container's `/host/proc` and on fixture trees; the portable backend asks
//! sysinfo (macOS, Windows, and `--backend portable` on Linux). [`TreeCpu`] turns two reads of
//! the same tree into its CPU %.

mod cpu;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod portable;

pub use cpu::TreeCpu;

use super::CollectError;
use crate::config::CollectConfig;

/// Resource use of a process tree at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TreeUsage {
    /// The requested pid, the root of the tree.
    pub root: u32,
    /// Every pid in the tree, root first: GPU process lists are matched against these.
    pub pids: Vec<u32>,
    /// User + system CPU seconds of the tree's live processes, plus (on Linux) the time of the
    /// children they already reaped (`cutime`/`cstime`), so a short-lived child that exits between
    /// two calls still counts. Monotonic while the tree's processes keep running.
    pub cpu_seconds: f64,
    /// Resident set size summed over the tree.
    pub rss_bytes: u64,
    /// Threads summed over the tree; `None` where the backend cannot count them (sysinfo outside
    /// Linux).
    pub threads: Option<u64>,
    /// Seconds since the root process started, when known: the denominator of the average CPU %
    /// reported on the first call for a pid.
    pub root_age_seconds: Option<f64>,
    /// When the root process started, in the backend's own unit (clock ticks since boot on Linux,
    /// Unix seconds with sysinfo): tells a reused pid from the process seen before.
    pub root_start: u64,
}

/// Why a process tree could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// No process with the requested pid (it never existed or has exited).
    #[error("no process with pid {pid}")]
    NotFound { pid: u32 },
    /// The process table could not be read.
    #[error(transparent)]
    Collect(#[from] CollectError),
}

/// Reads the tree rooted at `pid` with the configured backend.
pub fn read_tree(config: &CollectConfig, pid: u32) -> Result<TreeUsage, ProcessError> {
    match config.backend {
        #[cfg(target_os = "linux")]
        crate::config::Backend::Linux => linux::read_tree(&config.paths, pid),
        _ => portable::read_tree(pid),
    }
}

/// The pids of the tree rooted at `root`, root first then breadth-first, given every process's
/// parent. A process listed as its own ancestor (a pid reused mid-scan) is visited only once.
pub fn descendants(root: u32, parent_of: impl IntoIterator<Item = (u32, u32)>) -> Vec<u32> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    for (pid, ppid) in parent_of {
        if pid != ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    for list in children.values_mut() {
        list.sort_unstable();
    }
    let mut tree = vec![root];
    let mut seen = std::collections::HashSet::from([root]);
    let mut next = 0;
    while let Some(&pid) = tree.get(next) {
        next += 1;
        for &child in children.get(&pid).map_or(&[][..], Vec::as_slice) {
            if seen.insert(child) {
                tree.push(child);
            }
        }
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_walks_breadth_first_and_ignores_other_branches() {
        let parents = [(2, 1), (3, 1), (4, 2), (5, 4), (6, 9), (7, 3)];
        assert_eq!(descendants(1, parents), [1, 2, 3, 4, 7, 5]);
        assert_eq!(descendants(4, parents), [4, 5]);
        assert_eq!(descendants(5, parents), [5]);
    }

    #[test]
    fn descendants_survives_cycles() {
        // Only possible when pids are reused between reading two stat files; must not loop.
        let parents = [(2, 1), (1, 2), (3, 3)];
        assert_eq!(descendants(1, parents), [1, 2]);
        assert_eq!(descendants(3, parents), [3]);
    }
}
