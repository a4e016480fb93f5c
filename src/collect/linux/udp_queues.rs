//! node_exporter's `udp_queues` collector: bytes waiting in UDP sockets' send and receive queues,
//! summed over /proc/net/udp and /proc/net/udp6, as `node_udp_queues{ip,queue}`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::collect::{stream_lines, CollectError, Collector, HostPaths};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// Chunk size for streaming the tables (a host with many sockets should not get a resident
/// buffer of their size); procfs hands over at most a page per read anyway.
const CHUNK_BYTES: usize = 8 * 1024;

/// Sums the `tx_queue:rx_queue` column of a /proc/net/udp or udp6 table fed in pieces of whole
/// lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueSums {
    /// Whether the header line has gone by.
    header_skipped: bool,
    /// Rows seen so far, to name a malformed one.
    rows: usize,
    /// Bytes in send queues.
    pub tx: u64,
    /// Bytes in receive queues.
    pub rx: u64,
}

impl QueueSums {
    /// Adds the rows in `lines` (whole lines; the last may lack its newline).
    pub fn feed(&mut self, lines: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(lines)
            .map_err(|e| format!("not text after row {}: {e}", self.rows))?;
        for line in text.split('\n') {
            if !self.header_skipped {
                self.header_skipped = true;
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            self.rows += 1;
            let (tx, rx) = queues(line).ok_or_else(|| format!("row {} is malformed", self.rows))?;
            self.tx = self.tx.saturating_add(tx);
            self.rx = self.rx.saturating_add(rx);
        }
        Ok(())
    }
}

/// A row's send and receive queues: its 5th word, `tx:rx` in hex. Rows have at least 10 words
/// (`sl local rem st tx:rx tr:when retrnsmt uid timeout inode …`), as node_exporter checks.
fn queues(line: &str) -> Option<(u64, u64)> {
    let mut words = line.split_ascii_whitespace();
    let queues = words.nth(4)?;
    words.nth(4)?;
    let (tx, rx) = queues.split_once(':')?;
    Some((
        u64::from_str_radix(tx, 16).ok()?,
        u64::from_str_radix(rx, 16).ok()?,
    ))
}

/// The family of the tables' sums (`None`: the table does not exist).
pub(crate) fn family(v4: Option<QueueSums>, v6: Option<QueueSums>) -> KernelFamily {
    let mut family = KernelFamily::new(
        "node_udp_queues",
        "Number of allocated memory in the kernel for UDP datagrams in bytes.",
        KernelMetricKind::Gauge,
    );
    for (ip, sums) in [("v4", v4), ("v6", v6)] {
        if let Some(sums) = sums {
            family.push(&[("ip", ip), ("queue", "rx")], sums.rx as f64);
            family.push(&[("ip", ip), ("queue", "tx")], sums.tx as f64);
        }
    }
    family
}

/// What the last scan found: the IPv4 and IPv6 sums (`None`: no such table).
type Scan = [Option<QueueSums>; 2];

/// Scans the UDP tables every scan interval.
pub struct UdpQueuesCollector {
    /// <procfs>/net/udp and <procfs>/net/udp6.
    tables: [PathBuf; 2],
    /// Fixed buffer the tables stream through (allocated on first use).
    chunk: Vec<u8>,
    /// How often the tables are scanned. Each read walks the kernel's whole UDP hash table
    /// (16,384 slots on a 24 GiB host, up to 65,536 on larger ones), and the read that finds the
    /// end walks it again: about 50 µs a sample on the development VM for two empty tables.
    scan_interval: Duration,
    /// The last scan: when, and what it found (reused until the next scan is due).
    last: Option<(Instant, Scan)>,
}

impl UdpQueuesCollector {
    pub fn new(paths: &HostPaths, scan_interval: Duration) -> Self {
        Self {
            tables: [paths.proc("net/udp"), paths.proc("net/udp6")],
            chunk: Vec::new(),
            scan_interval,
            last: None,
        }
    }

    fn scan(&mut self) -> Result<Scan, CollectError> {
        if self.chunk.is_empty() {
            self.chunk = vec![0; CHUNK_BYTES];
        }
        let mut scan = [None, None];
        for (path, found) in self.tables.iter().zip(&mut scan) {
            let mut sums = QueueSums::default();
            if stream_lines(path, &mut self.chunk, |lines| sums.feed(lines))? {
                *found = Some(sums);
            }
        }
        Ok(scan)
    }
}

impl Collector for UdpQueuesCollector {
    fn name(&self) -> &'static str {
        "udp_queues"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let now = Instant::now();
        let scan = match self.last {
            Some((at, scan)) if now.duration_since(at) < self.scan_interval => scan,
            _ => {
                self.last = None;
                let scan = self.scan()?;
                self.last = Some((now, scan));
                scan
            }
        };
        let [v4, v6] = scan;
        if v4.is_none() && v6.is_none() {
            return Err(CollectError::NoData(format!(
                "neither {} nor {} exists",
                self.tables[0].display(),
                self.tables[1].display()
            )));
        }
        snapshot.kernel_families.push(family(v4, v6));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
