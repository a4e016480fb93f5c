//! node_exporter's `conntrack` collector: the netfilter connection-tracking table's size and limit
//! (/proc/sys/net/netfilter/nf_conntrack_{count,max}) and its per-CPU statistics summed
//! (/proc/net/stat/nf_conntrack). A host without the conntrack module has none of these files:
//! like node_exporter, the collector then reports no data (`node_scrape_collector_success` 0).

use crate::collect::{CollectError, Collector, HostPaths, KeptFile};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// Columns of a /proc/net/stat/nf_conntrack row (`entries clashres found new invalid ignore
/// delete chainlength insert insert_failed drop early_drop icmp_error expect_new expect_create
/// expect_delete search_restart`). node_exporter 1.5's procfs requires exactly this many; a row
/// with more (a later kernel adding a column at the end) is accepted here.
const STAT_COLUMNS: usize = 17;

/// The statistics node_exporter reports: column, name and help.
const STATS: [(usize, &str, &str); 8] = [
    (
        2,
        "node_nf_conntrack_stat_found",
        "Number of searched entries which were successful.",
    ),
    (
        4,
        "node_nf_conntrack_stat_invalid",
        "Number of packets seen which can not be tracked.",
    ),
    (
        5,
        "node_nf_conntrack_stat_ignore",
        "Number of packets seen which are already connected to a conntrack entry.",
    ),
    (
        8,
        "node_nf_conntrack_stat_insert",
        "Number of entries inserted into the list.",
    ),
    (
        9,
        "node_nf_conntrack_stat_insert_failed",
        "Number of entries for which list insertion was attempted but failed.",
    ),
    (
        10,
        "node_nf_conntrack_stat_drop",
        "Number of packets dropped due to conntrack failure.",
    ),
    (
        11,
        "node_nf_conntrack_stat_early_drop",
        "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.",
    ),
    (
        16,
        "node_nf_conntrack_stat_search_restart",
        "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
    ),
];

/// Sums the reported columns of /proc/net/stat/nf_conntrack over its rows (one per CPU, in
/// hexadecimal, after a header line), in [`STATS`] order.
pub(crate) fn parse_stat(text: &str) -> Result<[u64; STATS.len()], String> {
    let mut sums = [0u64; STATS.len()];
    for (index, line) in text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        let columns: Vec<&str> = line.split_ascii_whitespace().collect();
        if columns.len() < STAT_COLUMNS {
            return Err(format!(
                "row {}: {} columns, {STAT_COLUMNS} expected",
                index + 1,
                columns.len()
            ));
        }
        for (sum, (column, _, _)) in sums.iter_mut().zip(STATS) {
            let value = u64::from_str_radix(columns[column], 16).map_err(|_| {
                format!("row {}: {:?} is not a counter", index + 1, columns[column])
            })?;
            *sum = sum.wrapping_add(value);
        }
    }
    Ok(sums)
}

/// Reads the three files each sample, kept open.
pub struct ConntrackCollector {
    /// <procfs>/sys/net/netfilter/nf_conntrack_count.
    count: KeptFile,
    /// <procfs>/sys/net/netfilter/nf_conntrack_max.
    max: KeptFile,
    /// <procfs>/net/stat/nf_conntrack.
    stat: KeptFile,
}

impl ConntrackCollector {
    pub fn new(paths: &HostPaths) -> Self {
        Self {
            count: KeptFile::new(paths.proc("sys/net/netfilter/nf_conntrack_count")),
            max: KeptFile::new(paths.proc("sys/net/netfilter/nf_conntrack_max")),
            stat: KeptFile::new(paths.proc("net/stat/nf_conntrack")),
        }
    }
}

/// node_exporter's answer to a missing file: conntrack is probably not loaded.
fn no_conntrack(file: &KeptFile) -> CollectError {
    CollectError::NoData(format!(
        "no conntrack ({} does not exist)",
        file.path().display()
    ))
}

/// One number of a /proc/sys file.
fn read_number(file: &mut KeptFile) -> Result<u64, CollectError> {
    let error = match file.read_value() {
        Ok(text) => match text.parse() {
            Ok(value) => return Ok(value),
            Err(_) => format!("{text:?} is not a number"),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_conntrack(file)),
        Err(source) => {
            return Err(CollectError::Io {
                path: file.path().to_path_buf(),
                source,
            })
        }
    };
    Err(CollectError::parse(file.path(), error))
}

impl Collector for ConntrackCollector {
    fn name(&self) -> &'static str {
        "conntrack"
    }

    /// Families are appended as the files are read: like node_exporter, which sends each
    /// metric as it goes, a file missing half-way (nf_conntrack_max is hidden in unprivileged
    /// user namespaces on older kernels) keeps what came before it.
    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let families = &mut snapshot.kernel_families;
        let count = read_number(&mut self.count)?;
        families.push(KernelFamily::single(
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
            KernelMetricKind::Gauge,
            count as f64,
        ));
        let max = read_number(&mut self.max)?;
        families.push(KernelFamily::single(
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            KernelMetricKind::Gauge,
            max as f64,
        ));
        let sums = match self.stat.read_if_present()? {
            Some(text) => match parse_stat(text) {
                Ok(sums) => sums,
                Err(m) => return Err(CollectError::parse(self.stat.path(), m)),
            },
            None => return Err(no_conntrack(&self.stat)),
        };
        for ((_, name, help), sum) in STATS.into_iter().zip(sums) {
            // node_exporter 1.5 declares these gauges, without `_total`.
            families.push(KernelFamily::single(
                name,
                help,
                KernelMetricKind::Gauge,
                sum as f64,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
