//! node_exporter's `softnet` collector: packets each CPU's receive softirq processed, dropped
//! (backlog full) and stopped on (budget or time ran out), from /proc/net/softnet_stat.

use crate::collect::{CollectError, Collector, HostPaths, KeptFile};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// The fewest columns a row has (Linux 2.6.23's layout); later kernels append more.
const MIN_COLUMNS: usize = 9;

/// One row of softnet_stat: the counters node_exporter reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SoftnetRow {
    pub processed: u32,
    pub dropped: u32,
    pub times_squeezed: u32,
}

/// Parses softnet_stat: one row per online CPU, hexadecimal 32-bit counters.
pub(crate) fn parse(text: &str) -> Result<Vec<SoftnetRow>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(index, line)| {
            let columns: Vec<&str> = line.split_ascii_whitespace().collect();
            if columns.len() < MIN_COLUMNS {
                return Err(format!(
                    "row {}: {} columns were detected, but at least {MIN_COLUMNS} were expected",
                    index + 1,
                    columns.len()
                ));
            }
            let hex = |i: usize| {
                u32::from_str_radix(columns[i], 16)
                    .map_err(|_| format!("row {}: {:?} is not a counter", index + 1, columns[i]))
            };
            Ok(SoftnetRow {
                processed: hex(0)?,
                dropped: hex(1)?,
                times_squeezed: hex(2)?,
            })
        })
        .collect()
}

/// The three families of `rows`. The `cpu` label is the row's position, as node_exporter 1.5
/// numbers it (rows are online CPUs, so with CPUs offline it is not the CPU's number).
pub(crate) fn families(rows: &[SoftnetRow]) -> Vec<KernelFamily> {
    type Counter = (&'static str, &'static str, fn(&SoftnetRow) -> u32);
    let counters: [Counter; 3] = [
        (
            "node_softnet_dropped_total",
            "Number of dropped packets",
            |r| r.dropped,
        ),
        (
            "node_softnet_processed_total",
            "Number of processed packets",
            |r| r.processed,
        ),
        (
            "node_softnet_times_squeezed_total",
            "Number of times processing packets ran out of quota",
            |r| r.times_squeezed,
        ),
    ];
    let cpus: Vec<String> = (0..rows.len()).map(|i| i.to_string()).collect();
    counters
        .into_iter()
        .map(|(name, help, value)| {
            let mut family = KernelFamily::new(name, help, KernelMetricKind::Counter);
            for (row, cpu) in rows.iter().zip(&cpus) {
                family.push(&[("cpu", cpu)], f64::from(value(row)));
            }
            family
        })
        .collect()
}

/// Reads softnet_stat each sample, kept open.
pub struct SoftnetCollector {
    /// <procfs>/net/softnet_stat.
    file: KeptFile,
}

impl SoftnetCollector {
    pub fn new(paths: &HostPaths) -> Self {
        Self {
            file: KeptFile::new(paths.proc("net/softnet_stat")),
        }
    }
}

impl Collector for SoftnetCollector {
    fn name(&self) -> &'static str {
        "softnet"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let text = self.file.read()?;
        let rows = parse(text).map_err(|m| CollectError::parse(self.file.path(), m))?;
        snapshot.kernel_families.extend(families(&rows));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
