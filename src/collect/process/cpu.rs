//! A pid tree's CPU % between two reads: the last cumulative CPU time of each tree asked about,
//! turned into a percent of the whole machine at the next read of the same pid. Reads nothing;
//! the caller passes each [`TreeUsage`] as read.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::TreeUsage;
use crate::model::percent;

/// How many pids the CPU-% bookkeeping remembers; beyond it the least recently read is dropped.
const MAX_TRACKED_PIDS: usize = 1024;

/// A pid's CPU reading is replaced only once it is this old, so callers polling faster than this
/// (or two callers watching the same pid) measure over a window of useful length rather than over
/// a few clock ticks.
const MIN_CPU_WINDOW: Duration = Duration::from_secs(1);

/// The last CPU-time reading of each pid tree asked about.
#[derive(Debug, Default)]
pub struct TreeCpu {
    /// By root pid.
    readings: HashMap<u32, CpuReading>,
}

/// One reading of a tree's cumulative CPU time.
#[derive(Debug, Clone, Copy)]
struct CpuReading {
    /// When it was read.
    at: Instant,
    /// The tree's CPU seconds then.
    cpu_seconds: f64,
    /// The root's start time, to notice a pid reused by another process.
    root_start: u64,
}

impl TreeCpu {
    /// The tree's CPU % normalised to the whole machine (0–100): CPU seconds used since the last
    /// reading of the same pid over wall seconds × logical CPUs. On the first reading of a pid (or
    /// of a reused one) there is no previous reading, so it is the average since the root process
    /// started; 0 when its age is unknown.
    pub fn percent(&mut self, tree: &TreeUsage, now: Instant, logical_cpus: u32) -> f64 {
        let previous = self
            .readings
            .get(&tree.root)
            .filter(|r| r.root_start == tree.root_start && now > r.at)
            .copied();
        let (used, wall) = match previous {
            Some(r) => (
                tree.cpu_seconds - r.cpu_seconds,
                now.duration_since(r.at).as_secs_f64(),
            ),
            None => (tree.cpu_seconds, tree.root_age_seconds.unwrap_or(0.0)),
        };
        if previous.is_none_or(|r| now.duration_since(r.at) >= MIN_CPU_WINDOW) {
            self.readings.insert(
                tree.root,
                CpuReading {
                    at: now,
                    cpu_seconds: tree.cpu_seconds,
                    root_start: tree.root_start,
                },
            );
        }
        self.evict();
        // A child that exits unreaped leaves the tree and takes its time with it: never below 0.
        percent(used.max(0.0), wall * f64::from(logical_cpus.max(1)))
    }

    /// Keeps the table bounded: drops the least recently read pids.
    fn evict(&mut self) {
        while self.readings.len() > MAX_TRACKED_PIDS {
            let oldest = self
                .readings
                .iter()
                .min_by_key(|(_, r)| r.at)
                .map(|(pid, _)| *pid);
            match oldest {
                Some(pid) => self.readings.remove(&pid),
                None => break,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree rooted at `pid` that used 12 CPU seconds in its 60 s of life.
    fn tree(pid: u32) -> TreeUsage {
        TreeUsage {
            root: pid,
            pids: vec![pid],
            cpu_seconds: 12.0,
            rss_bytes: 512 << 20,
            threads: Some(7),
            root_age_seconds: Some(60.0),
            root_start: 1,
        }
    }

    #[test]
    fn tree_cpu_percent_uses_deltas_after_the_first_call() {
        let mut cpu = TreeCpu::default();
        let start = Instant::now();
        let mut usage = tree(7);
        // First call: 12 CPU seconds over 60 s of life on 2 CPUs = 10 %.
        assert_eq!(cpu.percent(&usage, start, 2), 10.0);
        // 2 s later, 3 more CPU seconds on 2 CPUs = 75 %.
        usage.cpu_seconds = 15.0;
        let later = start + Duration::from_secs(2);
        assert_eq!(cpu.percent(&usage, later, 2), 75.0);
        // CPU time that went down (a child left the tree) gives 0, not a negative number.
        usage.cpu_seconds = 1.0;
        assert_eq!(cpu.percent(&usage, later + Duration::from_secs(2), 2), 0.0);
        // A reused pid (another start time) starts over from its own average.
        usage.root_start = 99;
        usage.cpu_seconds = 30.0;
        let reused = cpu.percent(&usage, later + Duration::from_secs(4), 1);
        assert_eq!(reused, 50.0);
        // Unknown age and no previous reading: 0, never NaN.
        let mut fresh = tree(8);
        fresh.root_age_seconds = None;
        assert_eq!(cpu.percent(&fresh, start, 2), 0.0);
    }

    #[test]
    fn rapid_calls_keep_the_older_reading() {
        let mut cpu = TreeCpu::default();
        let start = Instant::now();
        let mut usage = tree(7);
        cpu.percent(&usage, start, 1);
        usage.cpu_seconds += 0.5;
        cpu.percent(&usage, start + Duration::from_millis(500), 1);
        // No CPU used since the call 0.5 s ago, but measured from `start`: 0.5 s over 1 s.
        assert_eq!(
            cpu.percent(&usage, start + Duration::from_millis(1000), 1),
            50.0
        );
    }

    #[test]
    fn cpu_table_is_bounded() {
        let mut cpu = TreeCpu::default();
        let start = Instant::now();
        for pid in 0..(MAX_TRACKED_PIDS as u32 + 10) {
            let usage = tree(pid + 1);
            cpu.percent(&usage, start + Duration::from_millis(u64::from(pid)), 1);
        }
        assert_eq!(cpu.readings.len(), MAX_TRACKED_PIDS);
        // The oldest were dropped.
        assert!(!cpu.readings.contains_key(&1));
        assert!(cpu.readings.contains_key(&(MAX_TRACKED_PIDS as u32 + 10)));
    }
}
